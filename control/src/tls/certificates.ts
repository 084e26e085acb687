// Control's TLS material: a private CA and the serving certificate it signs, written as X.509 v3
// (ECDSA P-256, SHA-256) with Node's own crypto — no openssl binary or certificate library in the
// image. Reading and checking use crypto.X509Certificate, the same parser TLS uses.
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, sign, X509Certificate, type KeyObject } from "node:crypto";
import { isIP } from "node:net";
import * as der from "./der.js";

/** A certificate and its private key, PEM (the key PKCS#8). */
export interface CertificateAndKey {
  certPem: string;
  keyPem: string;
}

const OID = {
  commonName: "2.5.4.3",
  organization: "2.5.4.10",
  ecPublicKey: "1.2.840.10045.2.1",
  ecdsaWithSha256: "1.2.840.10045.4.3.2",
  basicConstraints: "2.5.29.19",
  keyUsage: "2.5.29.15",
  extKeyUsage: "2.5.29.37",
  subjectAltName: "2.5.29.17",
  subjectKeyIdentifier: "2.5.29.14",
  authorityKeyIdentifier: "2.5.29.35",
  serverAuth: "1.3.6.1.5.5.7.3.1",
};

/** Certificates start this much before "now", so a node whose clock is a little behind accepts them. */
const BACKDATE_MS = 5 * 60_000;
const DAY_MS = 86_400_000;

const signatureAlgorithm = () => der.sequence(der.oid(OID.ecdsaWithSha256));

function name(commonName: string): Buffer {
  const rdn = (type: string, value: string) => der.set(der.sequence(der.oid(type), der.utf8String(value)));
  return der.sequence(rdn(OID.organization, "egret"), rdn(OID.commonName, commonName));
}

function extension(id: string, critical: boolean, value: Buffer): Buffer {
  return der.sequence(der.oid(id), ...(critical ? [der.boolean(true)] : []), der.octetString(value));
}

/** RFC 5280 §4.2.1.2 method 1: SHA-1 of the subjectPublicKey BIT STRING's bytes. */
function keyIdentifier(publicKey: KeyObject): Buffer {
  const spki = publicKey.export({ type: "spki", format: "der" });
  // For a P-256 key the SPKI ends with the 65-byte uncompressed point (the BIT STRING's contents).
  return createHash("sha1").update(spki.subarray(spki.length - 65)).digest();
}

function subjectAltNames(names: string[]): Buffer {
  const general = names.map((n) => {
    if (isIP(n) === 4) return der.implicitPrimitive(7, Buffer.from(n.split(".").map(Number)));
    if (isIP(n) === 6) return der.implicitPrimitive(7, ipv6Bytes(n));
    return der.implicitPrimitive(2, Buffer.from(n, "ascii"));
  });
  return der.sequence(...general);
}

function ipv6Bytes(address: string): Buffer {
  const [head, tail] = address.split("::") as [string, string | undefined];
  const groups = (s: string | undefined) => (s ? s.split(":") : []);
  const h = groups(head);
  const t = groups(tail);
  const all = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill("0"), ...t];
  const out = Buffer.alloc(16);
  all.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
  return out;
}

interface Draft {
  subject: string;
  issuer: string;
  publicKey: KeyObject;
  signingKey: KeyObject;
  authorityKeyId: Buffer;
  notBefore: Date;
  notAfter: Date;
  extensions: Buffer[];
}

function signCertificate(d: Draft): string {
  const spki = d.publicKey.export({ type: "spki", format: "der" });
  const tbs = der.sequence(
    der.explicit(0, der.smallInteger(2)), // v3
    der.unsignedInteger(Buffer.concat([Buffer.from([0x40]), randomBytes(15)])), // positive, 16 bytes
    signatureAlgorithm(),
    name(d.issuer),
    der.sequence(der.time(d.notBefore), der.time(d.notAfter)),
    name(d.subject),
    spki,
    der.explicit(3, der.sequence(
      ...d.extensions,
      extension(OID.subjectKeyIdentifier, false, der.octetString(keyIdentifier(d.publicKey))),
      extension(OID.authorityKeyIdentifier, false, der.sequence(der.implicitPrimitive(0, d.authorityKeyId))),
    )),
  );
  const signature = sign("sha256", tbs, d.signingKey); // DER ECDSA-Sig-Value
  const cert = der.sequence(tbs, signatureAlgorithm(), der.bitStringBytes(signature));
  return toPem("CERTIFICATE", cert);
}

function toPem(label: string, bytes: Buffer): string {
  const lines = bytes.toString("base64").match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join("\n")}\n-----END ${label}-----\n`;
}

function newKeyPair() {
  return generateKeyPairSync("ec", { namedCurve: "prime256v1" });
}

function validity(now: Date, days: number) {
  return { notBefore: new Date(now.getTime() - BACKDATE_MS), notAfter: new Date(now.getTime() + days * DAY_MS) };
}

/** A self-signed CA that may sign end-entity certificates only (pathLen 0). */
export function issueCa(o: { commonName: string; now: Date; days: number }): CertificateAndKey {
  const { publicKey, privateKey } = newKeyPair();
  const certPem = signCertificate({
    subject: o.commonName,
    issuer: o.commonName,
    publicKey,
    signingKey: privateKey,
    authorityKeyId: keyIdentifier(publicKey),
    ...validity(o.now, o.days),
    extensions: [
      extension(OID.basicConstraints, true, der.sequence(der.boolean(true), der.smallInteger(0))),
      extension(OID.keyUsage, true, der.namedBits([5, 6])), // keyCertSign, cRLSign
    ],
  });
  return { certPem, keyPem: privateKey.export({ type: "pkcs8", format: "pem" }) as string };
}

/** A TLS server certificate for `names` (DNS names and IP addresses), signed by `ca`. */
export function issueServing(o: { ca: CertificateAndKey; names: string[]; now: Date; days: number }): CertificateAndKey {
  if (o.names.length === 0) throw new Error("a serving certificate needs at least one name");
  const ca = new X509Certificate(o.ca.certPem);
  const caKey = createPrivateKey(o.ca.keyPem);
  const { publicKey, privateKey } = newKeyPair();
  const caNotAfter = new Date(ca.validTo);
  const { notBefore, notAfter } = validity(o.now, o.days);
  const certPem = signCertificate({
    subject: o.names[0]!,
    issuer: commonNameOf(ca),
    publicKey,
    signingKey: caKey,
    authorityKeyId: keyIdentifier(createPublicKey(o.ca.certPem)),
    notBefore,
    // Never outlive the CA: a verifier would refuse the chain from then on anyway.
    notAfter: notAfter < caNotAfter ? notAfter : caNotAfter,
    extensions: [
      extension(OID.basicConstraints, true, der.sequence()),
      extension(OID.keyUsage, true, der.namedBits([0])), // digitalSignature (ECDHE key agreement)
      extension(OID.extKeyUsage, false, der.sequence(der.oid(OID.serverAuth))),
      extension(OID.subjectAltName, false, subjectAltNames(o.names)),
    ],
  });
  return { certPem, keyPem: privateKey.export({ type: "pkcs8", format: "pem" }) as string };
}

function commonNameOf(cert: X509Certificate): string {
  const cn = /(?:^|\n)CN=([^\n]*)/.exec(cert.subject);
  if (!cn) throw new Error("the CA certificate has no common name");
  return cn[1]!;
}

/** What the bootstrap needs to know about a stored certificate. */
export interface CertificateFacts {
  notAfter: Date;
  isCa: boolean;
  /** DNS names and IP addresses of subjectAltName, in order. */
  names: string[];
  /** Whether `keyPem` is this certificate's private key. */
  keyMatches: boolean;
}

/** Reads a certificate and key; throws with what is wrong (not PEM, not a certificate, no key). */
export function certificateFacts(pair: CertificateAndKey): CertificateFacts {
  const cert = new X509Certificate(pair.certPem);
  const names = (cert.subjectAltName ?? "").split(", ").filter(Boolean).map((n) => n.replace(/^DNS:|^IP Address:/, ""));
  return { notAfter: new Date(cert.validTo), isCa: cert.ca, names, keyMatches: cert.checkPrivateKey(createPrivateKey(pair.keyPem)) };
}

/** Whether `certPem` carries a valid signature by `caPem`'s key. */
export function signedBy(certPem: string, caPem: string): boolean {
  return new X509Certificate(certPem).verify(createPublicKey(caPem));
}
