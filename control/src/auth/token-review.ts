// Kubernetes mode: an agent presents a projected ServiceAccount token (an audience of Egret's own,
// short expiry). Control asks the API server (TokenReview) whether it is valid for that audience,
// accepts only the agent's ServiceAccount(s), and binds the stream to the node of the pod the token
// is bound to — read from the API (the pod's spec.nodeName, its UID checked against the token's),
// never from anything the caller sends. Results are cached (bounded; never past the token's expiry)
// so a reconnecting agent or a flood of streams with one token costs one review.
import { createHash } from "node:crypto";
import { bearerToken, type AgentAuthenticator, type AgentIdentity, AuthFailure } from "./agent-auth.js";

/** TokenReview status as the API returns it (authentication.k8s.io/v1). */
export interface TokenReviewStatus {
  authenticated?: boolean;
  user?: { username?: string; uid?: string; groups?: string[]; extra?: Record<string, string[]> };
  audiences?: string[];
  error?: string;
}

/** Creates a TokenReview; throws when the API cannot be reached (→ UNAVAILABLE, not cached). */
export interface TokenReviewer {
  review(token: string, audiences: string[]): Promise<TokenReviewStatus>;
}

/** Reads a pod from the API; undefined when it does not exist. */
export interface BoundPodReader {
  pod(namespace: string, name: string): Promise<{ uid?: string; nodeName?: string } | undefined>;
}

export interface TokenCacheLimits {
  /** Tokens remembered (least recently used forgotten first). */
  maxEntries: number;
  /** A positive review is trusted this long (ms), and never past the token's `exp`. */
  ttlMs: number;
  /** A refused token is refused from the cache this long (ms) — a flood of it costs one review. */
  negativeTtlMs: number;
}

export const DEFAULT_TOKEN_CACHE: TokenCacheLimits = { maxEntries: 4096, ttlMs: 60_000, negativeTtlMs: 10_000 };

export interface TokenReviewOptions {
  reviewer: TokenReviewer;
  pods: BoundPodReader;
  /** The audience agent tokens must carry (the projected volume's `audience`). */
  audience: string;
  /** Accepted ServiceAccounts as "NAMESPACE:NAME". */
  serviceAccounts: string[];
  cache?: Partial<TokenCacheLimits>;
  now?: () => number;
  /** Counts each authentication's path: cache_hit, reviewed, error. */
  onReview?: (outcome: "cache_hit" | "reviewed" | "error") => void;
}

const EXTRA = "authentication.kubernetes.io/";

interface Entry {
  result: Promise<AgentIdentity>;
  expiresAt: number;
}

export class TokenReviewAuthenticator implements AgentAuthenticator {
  private readonly cache = new Map<string, Entry>();
  private readonly limits: TokenCacheLimits;
  private readonly now: () => number;
  private readonly accepted: Set<string>;

  constructor(private readonly o: TokenReviewOptions) {
    this.limits = { ...DEFAULT_TOKEN_CACHE, ...o.cache };
    this.now = o.now ?? Date.now;
    this.accepted = new Set(o.serviceAccounts.map((sa) => `system:serviceaccount:${sa}`));
  }

  get cachedTokens(): number {
    return this.cache.size;
  }

  async authenticate(authorization: string | undefined): Promise<AgentIdentity> {
    const token = bearerToken(authorization);
    const exp = jwtExpiry(token);
    if (exp === undefined) throw new AuthFailure("malformed", "the bearer token is not a ServiceAccount token (a JWT with `exp`)");
    const now = this.now();
    if (exp <= now) throw new AuthFailure("expired", `the token expired at ${new Date(exp).toISOString()}; the agent re-reads its rotated token on reconnect`);
    const key = createHash("sha256").update(token, "utf8").digest("hex");
    const hit = this.cache.get(key);
    if (hit && hit.expiresAt > now) {
      this.cache.delete(key); // most recently used last
      this.cache.set(key, hit);
      this.o.onReview?.("cache_hit");
      return hit.result;
    }
    const result = this.review(token, exp);
    const entry: Entry = { result, expiresAt: Math.min(now + this.limits.ttlMs, exp) };
    this.remember(key, entry);
    result.then(
      () => this.o.onReview?.("reviewed"),
      (err: unknown) => {
        const transient = !(err instanceof AuthFailure) || err.reason === "unavailable";
        this.o.onReview?.(transient ? "error" : "reviewed");
        if (transient) this.cache.delete(key);
        else entry.expiresAt = Math.min(this.now() + this.limits.negativeTtlMs, entry.expiresAt);
      },
    );
    return result;
  }

  private remember(key: string, entry: Entry): void {
    this.cache.delete(key);
    this.cache.set(key, entry);
    while (this.cache.size > this.limits.maxEntries) this.cache.delete(this.cache.keys().next().value!);
  }

  private async review(token: string, exp: number): Promise<AgentIdentity> {
    let status: TokenReviewStatus;
    try {
      status = await this.o.reviewer.review(token, [this.o.audience]);
    } catch (err) {
      throw new AuthFailure("unavailable", `TokenReview failed: ${(err as Error).message}`);
    }
    if (status.authenticated !== true) throw new AuthFailure("invalid", `TokenReview: ${status.error ?? "not authenticated"}`);
    // A server that ignored spec.audiences would answer for its own audience: check it said ours.
    if (!(status.audiences ?? []).includes(this.o.audience)) {
      throw new AuthFailure("wrong_audience", `the token is not valid for the audience ${JSON.stringify(this.o.audience)} (TokenReview audiences ${JSON.stringify(status.audiences ?? [])})`);
    }
    const username = status.user?.username ?? "";
    if (!this.accepted.has(username)) throw new AuthFailure("forbidden", `${username || "(no user)"} is not an agent ServiceAccount (${[...this.accepted].join(", ")})`);
    const node = await this.boundNode(username, status.user?.extra ?? {});
    return { node, subject: username, expiresAtMs: exp };
  }

  /** The token's bound pod → that pod's spec.nodeName, read from the API. */
  private async boundNode(username: string, extra: Record<string, string[]>): Promise<string> {
    const podName = extra[`${EXTRA}pod-name`]?.[0];
    const podUid = extra[`${EXTRA}pod-uid`]?.[0];
    if (!podName || !podUid) throw new AuthFailure("forbidden", `${username}: the token is not bound to a pod (use the projected serviceAccountToken volume)`);
    const namespace = username.split(":")[2]!;
    let pod: { uid?: string; nodeName?: string } | undefined;
    try {
      pod = await this.o.pods.pod(namespace, podName);
    } catch (err) {
      throw new AuthFailure("unavailable", `reading the agent's pod ${namespace}/${podName}: ${(err as Error).message}`);
    }
    if (!pod || pod.uid !== podUid) throw new AuthFailure("forbidden", `the token's pod ${namespace}/${podName} (uid ${podUid}) no longer exists`);
    if (!pod.nodeName) throw new AuthFailure("forbidden", `the token's pod ${namespace}/${podName} is not scheduled on a node`);
    const claimedNode = extra[`${EXTRA}node-name`]?.[0];
    if (claimedNode !== undefined && claimedNode !== pod.nodeName) {
      throw new AuthFailure("forbidden", `the token names node ${claimedNode} but its pod ${namespace}/${podName} runs on ${pod.nodeName}`);
    }
    return pod.nodeName;
  }
}

/**
 * The `exp` claim (ms) of a JWT, read without verifying it: only to bound the cache and the
 * stream by the token's lifetime once the API server has said the token is valid. Undefined when
 * the token is not a JWT with a numeric `exp`.
 */
export function jwtExpiry(token: string): number | undefined {
  const parts = token.split(".");
  if (parts.length !== 3) return undefined;
  try {
    const payload = JSON.parse(Buffer.from(parts[1]!, "base64url").toString("utf8")) as { exp?: unknown };
    return typeof payload.exp === "number" && Number.isFinite(payload.exp) ? payload.exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}
