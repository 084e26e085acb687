// `egret tls bootstrap`: makes sure control's TLS material exists and is fresh, by state, so it can
// run at every install and on a schedule (the rendered Job and CronJob):
//   Secret    egret-ca          (ca.crt, ca.key)          the private CA; only this step reads it
//   Secret    egret-control-tls (tls.crt, tls.key, ca.crt) mounted by control (--tls-cert/--tls-key)
//   ConfigMap egret-control-ca  (ca.crt)                  agents' --ca-file; Istio's DestinationRule
//                                                          (credentialName configmap://…) for filters
// A CA is made only when none exists; an unreadable CA is an error, never replaced silently (that
// would cut every agent and filter off). The serving certificate is re-issued when it is missing,
// broken, not signed by the CA, for other names, or within `renewBeforeDays` of its end; control
// reloads the mounted files (kubelet updates them) without a restart.
import { certificateFacts, issueCa, issueServing, signedBy, type CertificateAndKey } from "./certificates.js";

/** The objects the bootstrap reads and writes (Kubernetes in production, a map in tests). */
export interface TlsObjectStore {
  /** `data` decoded to text; undefined when the object does not exist. */
  get(kind: "Secret" | "ConfigMap", name: string): Promise<{ data: Record<string, string>; resourceVersion?: string } | undefined>;
  /** Rejects with `{ code: 409 }` when it already exists. */
  create(kind: "Secret" | "ConfigMap", name: string, data: Record<string, string>): Promise<void>;
  /** Rejects with `{ code: 409 }` when `resourceVersion` is stale. */
  replace(kind: "Secret" | "ConfigMap", name: string, data: Record<string, string>, resourceVersion: string | undefined): Promise<void>;
}

export interface BootstrapOptions {
  store: TlsObjectStore;
  now: () => Date;
  /** The serving certificate's names; the first is the name agents and filters verify. */
  serverNames: string[];
  caSecret: string;
  tlsSecret: string;
  caConfigMap: string;
  caDays: number;
  certDays: number;
  renewBeforeDays: number;
}

export const DEFAULT_LIFETIMES = { caDays: 3650, certDays: 90, renewBeforeDays: 30 };

export type BootstrapAction = "created" | "kept" | "renewed";
export interface BootstrapResult {
  ca: "created" | "kept";
  serving: BootstrapAction;
  caConfigMap: BootstrapAction;
  servingNotAfter: Date;
}

export class TlsBootstrapError extends Error {}

const DAY_MS = 86_400_000;
const isConflict = (err: unknown) => (err as { code?: number }).code === 409;

/** Runs the bootstrap; a write race with another run (409) is answered by reading again. */
export async function ensureControlTls(o: BootstrapOptions): Promise<BootstrapResult> {
  if (o.renewBeforeDays >= o.certDays) throw new TlsBootstrapError(`renew-before (${o.renewBeforeDays} days) must be shorter than the certificate lifetime (${o.certDays} days)`);
  for (let attempt = 0; ; attempt++) {
    try {
      const ca = await ensureCa(o);
      const serving = await ensureServing(o, ca.pair);
      const caConfigMap = await ensureCaConfigMap(o.store, o.caConfigMap, ca.pair.certPem);
      return { ca: ca.action, serving: serving.action, caConfigMap, servingNotAfter: serving.notAfter };
    } catch (err) {
      if (!isConflict(err) || attempt >= 3) throw err;
    }
  }
}

async function ensureCa(o: BootstrapOptions): Promise<{ pair: CertificateAndKey; action: "created" | "kept" }> {
  const stored = await o.store.get("Secret", o.caSecret);
  if (!stored) {
    const pair = issueCa({ commonName: "egret-control-ca", now: o.now(), days: o.caDays });
    await o.store.create("Secret", o.caSecret, { "ca.crt": pair.certPem, "ca.key": pair.keyPem });
    return { pair, action: "created" };
  }
  const pair = { certPem: stored.data["ca.crt"] ?? "", keyPem: stored.data["ca.key"] ?? "" };
  const problem = caProblem(pair, o.now());
  if (problem) {
    throw new TlsBootstrapError(`Secret ${o.caSecret}: ${problem}. Egret never replaces a CA by itself (agents and sidecars trust it); to start over with a new CA, delete the Secret and run the bootstrap again, then restart the agents (docs/operations.md "TLS material")`);
  }
  return { pair, action: "kept" };
}

function caProblem(pair: CertificateAndKey, now: Date): string | undefined {
  try {
    const facts = certificateFacts(pair);
    if (!facts.isCa) return "ca.crt is not a CA certificate";
    if (!facts.keyMatches) return "ca.key is not ca.crt's private key";
    if (facts.notAfter <= now) return `the CA expired on ${facts.notAfter.toISOString()}`;
    return undefined;
  } catch (err) {
    return `ca.crt / ca.key are not a PEM certificate and key (${(err as Error).message})`;
  }
}

async function ensureServing(o: BootstrapOptions, ca: CertificateAndKey): Promise<{ action: BootstrapAction; notAfter: Date }> {
  const stored = await o.store.get("Secret", o.tlsSecret);
  const current = stored && servingFacts(stored.data, ca, o.serverNames);
  const renewAt = (notAfter: Date) => notAfter.getTime() - o.renewBeforeDays * DAY_MS;
  if (current && o.now().getTime() < renewAt(current.notAfter)) return { action: "kept", notAfter: current.notAfter };
  const pair = issueServing({ ca, names: o.serverNames, now: o.now(), days: o.certDays });
  const data = { "tls.crt": pair.certPem, "tls.key": pair.keyPem, "ca.crt": ca.certPem };
  if (stored) await o.store.replace("Secret", o.tlsSecret, data, stored.resourceVersion);
  else await o.store.create("Secret", o.tlsSecret, data);
  return { action: stored ? "renewed" : "created", notAfter: certificateFacts(pair).notAfter };
}

/** The stored serving certificate's end, when it is usable as is; undefined when it must be re-issued. */
function servingFacts(data: Record<string, string>, ca: CertificateAndKey, names: string[]): { notAfter: Date } | undefined {
  const pair = { certPem: data["tls.crt"] ?? "", keyPem: data["tls.key"] ?? "" };
  try {
    const facts = certificateFacts(pair);
    const sameNames = facts.names.length === names.length && facts.names.every((n, i) => n === names[i]);
    if (!facts.keyMatches || facts.isCa || !sameNames || !signedBy(pair.certPem, ca.certPem) || data["ca.crt"] !== ca.certPem) return undefined;
    return { notAfter: facts.notAfter };
  } catch {
    return undefined;
  }
}

async function ensureCaConfigMap(store: TlsObjectStore, name: string, caPem: string): Promise<BootstrapAction> {
  const stored = await store.get("ConfigMap", name);
  if (stored?.data["ca.crt"] === caPem) return "kept";
  if (stored) await store.replace("ConfigMap", name, { "ca.crt": caPem }, stored.resourceVersion);
  else await store.create("ConfigMap", name, { "ca.crt": caPem });
  return stored ? "renewed" : "created";
}

/**
 * cert-manager mode: cert-manager owns the CA and the serving Secret; this only publishes the
 * CA (the serving Secret's ca.crt) into the ConfigMap agents and Istio read.
 */
export async function publishCa(o: { store: TlsObjectStore; tlsSecret: string; caConfigMap: string }): Promise<BootstrapAction> {
  const stored = await o.store.get("Secret", o.tlsSecret);
  if (!stored) throw new TlsBootstrapError(`Secret ${o.tlsSecret} does not exist yet: cert-manager has not issued the Certificate (kubectl -n egret-system describe certificate ${o.tlsSecret})`);
  const caPem = stored.data["ca.crt"];
  if (!caPem || !/-----BEGIN CERTIFICATE-----/.test(caPem)) throw new TlsBootstrapError(`Secret ${o.tlsSecret} has no ca.crt: issue it from a CA Issuer (the rendered egret-ca Issuer), not a self-signed one`);
  for (let attempt = 0; ; attempt++) {
    try {
      return await ensureCaConfigMap(o.store, o.caConfigMap, caPem);
    } catch (err) {
      if (!isConflict(err) || attempt >= 3) throw err;
    }
  }
}
