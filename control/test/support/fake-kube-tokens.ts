// ServiceAccount tokens for the in-test API server, behaving as the real one does
// (kubernetes pkg/serviceaccount: claims.go, jwt.go; authentication.k8s.io/v1 TokenReview):
// - tokens are RS256 JWTs signed by the server's key, with `iss`, `sub`
//   (system:serviceaccount:NS:NAME), `aud`, `iat`/`nbf`/`exp`, `jti` and the private claim
//   `kubernetes.io` {namespace, serviceaccount{name,uid}, pod{name,uid}, node{name,uid}};
// - a TokenReview checks the signature and issuer, the audiences (the review's `spec.audiences`, or
//   the server's own API audiences when it names none; the token must carry at least one of them,
//   and `status.audiences` is the intersection), `exp`/`nbf` with go-jose's one-minute leeway, that
//   the ServiceAccount and the bound pod still exist with the UIDs the token names; on success the
//   user is the ServiceAccount with extra `authentication.kubernetes.io/pod-name`, `pod-uid`,
//   `node-name`, `node-uid` (Kubernetes ≥ 1.30) and `credential-id` (JTI=…);
// - a refused token is answered 201 with `authenticated: false` and an `error`, never an HTTP error.
import { createSign, createVerify, generateKeyPairSync, randomUUID, type KeyObject } from "node:crypto";
import type { FakeKube } from "./fake-kube.js";

export const TOKEN_REVIEW_PATH = "/apis/authentication.k8s.io/v1/tokenreviews";
/** The API server's own audience (kube-apiserver --api-audiences; kind/kubeadm default). */
export const API_AUDIENCE = "https://kubernetes.default.svc.cluster.local";
const ISSUER = "https://kubernetes.default.svc.cluster.local";
/** go-jose jwt.DefaultLeeway, used by the service account validator for exp and nbf. */
const LEEWAY_S = 60;

export interface IssueOptions {
  namespace: string;
  serviceAccount: string;
  /** The pod the token is bound to (TokenRequest boundObjectRef kind Pod; projected volumes always bind). */
  pod?: string;
  audiences: string[];
  expirationSeconds?: number;
  /** Issue "as of" this time (ms); default the issuer's clock. */
  issuedAtMs?: number;
}

export interface JwtParts {
  header: Record<string, unknown>;
  payload: Record<string, unknown>;
  signature: string;
}

const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString("base64url");

/** Splits a JWT without verifying it (tests use it to forge claims). */
export function decodeJwt(token: string): JwtParts {
  const [h, p, s] = token.split(".");
  return { header: JSON.parse(Buffer.from(h!, "base64url").toString()), payload: JSON.parse(Buffer.from(p!, "base64url").toString()), signature: s ?? "" };
}

/** A JWT with these parts, keeping the given signature (which then no longer matches). */
export function encodeJwt(parts: JwtParts): string {
  return `${b64(parts.header)}.${b64(parts.payload)}.${parts.signature}`;
}

interface Review {
  authenticated: boolean;
  user?: { username: string; uid: string; groups: string[]; extra: Record<string, string[]> };
  audiences?: string[];
  error?: string;
}

export class FakeServiceAccountTokens {
  private readonly privateKey: KeyObject;
  private readonly publicKey: KeyObject;
  /** The API server's clock (ms); tests move it to expire tokens without sleeping. */
  now: () => number = Date.now;
  /** TokenReviews answered (tests check the cache in front of it). */
  reviews = 0;
  /** The next this-many TokenReviews fail with 503 (the API server is unavailable). */
  failReviews = 0;

  constructor(private readonly api: FakeKube) {
    const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
    this.privateKey = privateKey;
    this.publicKey = publicKey;
    api.handlePost(TOKEN_REVIEW_PATH, (body) => {
      if (this.failReviews > 0) {
        this.failReviews--;
        return { status: 503, body: { apiVersion: "v1", kind: "Status", status: "Failure", code: 503, reason: "ServiceUnavailable", message: "injected fault", metadata: {} } };
      }
      return { status: 201, body: this.tokenReview(body) };
    });
  }

  /** Creates the ServiceAccount (as the real server does for a namespace's SAs). */
  serviceAccount(namespace: string, name: string): void {
    this.api.upsert("serviceaccounts", { metadata: { name, namespace } });
  }

  /** A token as TokenRequest / the kubelet's projected volume would get it. */
  issue(o: IssueOptions): string {
    const sa = this.api.get("serviceaccounts", o.namespace, o.serviceAccount);
    if (!sa) throw new Error(`serviceaccount ${o.namespace}/${o.serviceAccount} not found`);
    const iat = Math.floor((o.issuedAtMs ?? this.now()) / 1000);
    const priv: Record<string, unknown> = { namespace: o.namespace, serviceaccount: { name: o.serviceAccount, uid: sa.metadata.uid } };
    if (o.pod !== undefined) {
      const pod = this.api.get("pods", o.namespace, o.pod);
      if (!pod) throw new Error(`pod ${o.namespace}/${o.pod} not found`);
      priv.pod = { name: o.pod, uid: pod.metadata.uid };
      const nodeName = (pod.spec as { nodeName?: string } | undefined)?.nodeName;
      if (nodeName) priv.node = { name: nodeName, uid: `uid-node-${nodeName}` };
    }
    const payload = {
      aud: o.audiences,
      exp: iat + (o.expirationSeconds ?? 3600),
      iat,
      iss: ISSUER,
      jti: randomUUID(),
      "kubernetes.io": priv,
      nbf: iat,
      sub: `system:serviceaccount:${o.namespace}:${o.serviceAccount}`,
    };
    return this.sign({ alg: "RS256", kid: "fake-kube-key" }, payload);
  }

  /** Signs arbitrary header and claims with the server's key (tests: a validly signed token with odd claims). */
  sign(header: Record<string, unknown>, payload: Record<string, unknown>): string {
    const input = `${b64(header)}.${b64(payload)}`;
    const signature = createSign("RSA-SHA256").update(input).sign(this.privateKey).toString("base64url");
    return `${input}.${signature}`;
  }

  private tokenReview(body: unknown): unknown {
    this.reviews++;
    const review = body as { apiVersion?: string; kind?: string; spec?: { token?: string; audiences?: string[] } };
    const spec = review.spec ?? {};
    const status = this.review(spec.token ?? "", spec.audiences && spec.audiences.length > 0 ? spec.audiences : [API_AUDIENCE]);
    return { apiVersion: "authentication.k8s.io/v1", kind: "TokenReview", metadata: { creationTimestamp: null }, spec, status };
  }

  private review(token: string, wanted: string[]): Review {
    const refuse = (why: string): Review => ({ authenticated: false, error: `[invalid bearer token, ${why}]` });
    const parts = token.split(".");
    if (parts.length !== 3) return refuse("token is not a JWT");
    let jwt: JwtParts;
    try {
      jwt = decodeJwt(token);
    } catch {
      return refuse("square/go-jose: compact JWS format must have three parts");
    }
    if (jwt.header.alg !== "RS256") return refuse(`unexpected signing algorithm ${String(jwt.header.alg)}`);
    const verified = createVerify("RSA-SHA256").update(`${parts[0]}.${parts[1]}`).verify(this.publicKey, Buffer.from(parts[2]!, "base64url"));
    if (!verified) return refuse("square/go-jose: error in cryptographic primitive");
    const c = jwt.payload as { iss?: string; aud?: string[] | string; exp?: number; nbf?: number; jti?: string; "kubernetes.io"?: PrivateClaims };
    if (c.iss !== ISSUER) return refuse("token issuer is not trusted");
    const tokenAudiences = typeof c.aud === "string" ? [c.aud] : c.aud ?? [];
    const audiences = wanted.filter((a) => tokenAudiences.includes(a));
    if (audiences.length === 0) return refuse(`token audiences ${JSON.stringify(tokenAudiences)} is invalid for the target audiences ${JSON.stringify(wanted)}`);
    const nowS = this.now() / 1000;
    if (c.exp !== undefined && nowS > c.exp + LEEWAY_S) return refuse("service account token has expired");
    if (c.nbf !== undefined && nowS < c.nbf - LEEWAY_S) return refuse("service account token is not valid yet");
    const k = c["kubernetes.io"];
    if (!k?.namespace || !k.serviceaccount?.name) return refuse("service account token claims could not be validated");
    const sa = this.api.get("serviceaccounts", k.namespace, k.serviceaccount.name);
    if (!sa) return refuse(`serviceaccounts "${k.serviceaccount.name}" not found`);
    if (sa.metadata.uid !== k.serviceaccount.uid) return refuse(`service account UID (${sa.metadata.uid}) does not match claim (${k.serviceaccount.uid})`);
    const extra: Record<string, string[]> = {};
    if (c.jti) extra["authentication.kubernetes.io/credential-id"] = [`JTI=${c.jti}`];
    if (k.pod) {
      const pod = this.api.get("pods", k.namespace, k.pod.name);
      if (!pod) return refuse("service account token has been invalidated");
      if (pod.metadata.uid !== k.pod.uid) return refuse(`pod UID (${pod.metadata.uid}) does not match service account pod ref claim (${k.pod.uid})`);
      extra["authentication.kubernetes.io/pod-name"] = [k.pod.name];
      extra["authentication.kubernetes.io/pod-uid"] = [k.pod.uid];
      if (k.node) {
        extra["authentication.kubernetes.io/node-name"] = [k.node.name];
        extra["authentication.kubernetes.io/node-uid"] = [k.node.uid];
      }
    }
    return {
      authenticated: true,
      user: {
        username: `system:serviceaccount:${k.namespace}:${k.serviceaccount.name}`,
        uid: k.serviceaccount.uid ?? "",
        groups: ["system:serviceaccounts", `system:serviceaccounts:${k.namespace}`, "system:authenticated"],
        extra,
      },
      audiences,
    };
  }
}

interface PrivateClaims {
  namespace?: string;
  serviceaccount?: { name: string; uid?: string };
  pod?: { name: string; uid: string };
  node?: { name: string; uid: string };
}
