// Who may read control's operator views (`egret observe`, `egret status`), and which namespaces.
// An OperatorAuthenticator turns a call's `authorization: Bearer TOKEN` into an OperatorAccess:
// the namespaces whose verdicts and status rows the caller may see, and whether it may see the
// cluster-wide rows. Kubernetes mode asks the API server (TokenReview, then a SubjectAccessReview
// per namespace: may this user `list` `egresspolicies.egret.dev` there?), caching answers briefly;
// file mode reads `--operator-token-file` (`TOKEN NAMESPACES [WHO]`, parsed by operator-auth.ts). Nothing is open by default: without either, every call
// is refused.
import { readFileSync } from "node:fs";
import type { Logger } from "../common/log.js";
import { AuthFailure, bearerToken } from "./agent-auth.js";
import { OperatorTokenFileError, parseOperatorTokens, type OperatorIdentity } from "./operator-auth.js";
import { ReloadingFile, tokenDigest as digestOf } from "./reloading-file.js";

export interface OperatorAccess {
  /** Who was authenticated (logs). */
  readonly subject: string;
  /** The cached answer for `namespace`, or undefined when it must be asked (canReadNamespace). */
  cachedNamespace(namespace: string): boolean | undefined;
  /** May the caller read this namespace's verdicts and status rows? Rejects (AuthFailure) if the credential stopped being valid. */
  canReadNamespace(namespace: string): Promise<boolean>;
  /** May the caller read the cluster-wide rows (replicas, agents, ClusterEgressPolicies)? */
  canReadCluster(): Promise<boolean>;
}

export interface OperatorAuthenticator {
  /** `authorization` is the metadata value ("Bearer TOKEN"); rejects with AuthFailure. */
  authenticate(authorization: string | undefined): Promise<OperatorAccess>;
}

/** Control without operator credentials: every operator call is refused. */
export class NoOperatorCredentials implements OperatorAuthenticator {
  async authenticate(): Promise<OperatorAccess> {
    throw new AuthFailure(
      "not_configured",
      "this control accepts no operator credentials: start it with --operator-token-file FILE (file mode) or --kubernetes (RBAC decides)",
    );
  }
}


// ---- file mode --------------------------------------------------------------------------------

type OperatorGrant = OperatorIdentity;

class GrantAccess implements OperatorAccess {
  readonly subject: string;
  constructor(private readonly grant: OperatorGrant) {
    this.subject = `operator-token-file:${grant.who}`;
  }
  cachedNamespace(namespace: string): boolean {
    return this.grant.namespaces === "*" || this.grant.namespaces.has(namespace);
  }
  async canReadNamespace(namespace: string): Promise<boolean> {
    return this.cachedNamespace(namespace);
  }
  async canReadCluster(): Promise<boolean> {
    return this.grant.namespaces === "*";
  }
}

/** `--operator-token-file FILE` (the format of operator-auth.ts, shared with /debug/names): re-read when it changes; a broken edit keeps the previous tokens. */
export class FileOperatorAuthenticator implements OperatorAuthenticator {
  private readonly grants: ReloadingFile<Map<string, OperatorGrant>>;

  constructor(file: string, log: Logger) {
    this.grants = new ReloadingFile(file, readOperatorTokens, (outcome) => {
      if ("value" in outcome) log.info({ file, operators: outcome.value.size }, "operator token file reloaded");
      else log.error({ err: outcome.error.message }, "operator token file not reloaded; the previous tokens stay in force");
    });
  }

  async authenticate(authorization: string | undefined): Promise<OperatorAccess> {
    const grant = this.grants.value.get(digestOf(bearerToken(authorization)));
    if (!grant) throw new AuthFailure("invalid", "the bearer token is not in the operator token file");
    return new GrantAccess(grant);
  }
}

function readOperatorTokens(file: string): Map<string, OperatorGrant> {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new OperatorTokenFileError(`${file}: cannot read the operator token file (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  return parseOperatorTokens(text, file);
}

// ---- Kubernetes mode --------------------------------------------------------------------------

/** A user as TokenReview reports it (what SubjectAccessReview needs). */
export interface ReviewedUser {
  username: string;
  uid?: string;
  groups: string[];
  extra?: Record<string, string[]>;
}

/** The two API calls, implemented against the Kubernetes API by k8s/access-review.ts. */
export interface AccessReviewer {
  /** undefined when the API server does not authenticate the token. */
  reviewToken(token: string): Promise<ReviewedUser | undefined>;
  /** May `user` `list` EgressPolicies in `namespace` (or ClusterEgressPolicies when namespace is undefined)? */
  mayList(user: ReviewedUser, namespace: string | undefined): Promise<boolean>;
}

export interface ReviewCacheOptions {
  /** How long a TokenReview or SubjectAccessReview answer is reused (ms). */
  ttlMs: number;
  /** Entries kept per cache (oldest evicted). */
  maxEntries: number;
  /** Reviews in flight at once; more are refused (UNAVAILABLE) rather than queued. */
  maxInFlight: number;
  now: () => number;
}

export const DEFAULT_REVIEW_CACHE: ReviewCacheOptions = { ttlMs: 10_000, maxEntries: 10_000, maxInFlight: 32, now: Date.now };

/** A size-bounded map of answers that expire. */
class ExpiringCache<V> {
  private readonly map = new Map<string, { value: V; expires: number }>();
  constructor(private readonly o: ReviewCacheOptions) {}

  get(key: string): V | undefined {
    const hit = this.map.get(key);
    if (!hit) return undefined;
    if (hit.expires <= this.o.now()) {
      this.map.delete(key);
      return undefined;
    }
    return hit.value;
  }

  set(key: string, value: V): void {
    this.map.delete(key);
    if (this.map.size >= this.o.maxEntries) this.map.delete(this.map.keys().next().value!);
    this.map.set(key, { value, expires: this.o.now() + this.o.ttlMs });
  }
}

/**
 * Kubernetes RBAC decides: the caller's token is reviewed (TokenReview), and each namespace is
 * checked with a SubjectAccessReview (`list egresspolicies.egret.dev` in it; cluster rows:
 * `list clusteregresspolicies.egret.dev`). Answers are cached for `ttlMs`, so a revoked
 * RoleBinding or token takes effect on open streams within that time. An API failure denies.
 */
export class KubernetesOperatorAuthenticator implements OperatorAuthenticator {
  private readonly o: ReviewCacheOptions;
  private readonly users: ExpiringCache<ReviewedUser | null>;
  private readonly decisions: ExpiringCache<boolean>;
  private inFlight = 0;

  constructor(private readonly reviewer: AccessReviewer, private readonly log: Logger, options: Partial<ReviewCacheOptions> = {}) {
    this.o = { ...DEFAULT_REVIEW_CACHE, ...options };
    this.users = new ExpiringCache(this.o);
    this.decisions = new ExpiringCache(this.o);
  }

  async authenticate(authorization: string | undefined): Promise<OperatorAccess> {
    const token = bearerToken(authorization);
    const user = await this.user(token);
    const key = userKey(user);
    return {
      subject: user.username,
      cachedNamespace: (ns) => this.decisions.get(`${key}\u0000ns\u0000${ns}`),
      canReadNamespace: (ns) => this.decide(token, `ns\u0000${ns}`, ns),
      canReadCluster: () => this.decide(token, "cluster", undefined),
    };
  }

  private async user(token: string): Promise<ReviewedUser> {
    const digest = digestOf(token);
    let user = this.users.get(digest);
    if (user === undefined) {
      user = (await this.limited(() => this.reviewer.reviewToken(token))) ?? null;
      this.users.set(digest, user);
    }
    if (user === null) throw new AuthFailure("invalid", "the Kubernetes API server does not accept this token (TokenReview)");
    return user;
  }

  /** Re-reviews the token when its cached answer expired, so a revoked token ends open streams. */
  private async decide(token: string, what: string, namespace: string | undefined): Promise<boolean> {
    const user = await this.user(token);
    const key = `${userKey(user)}\u0000${what}`;
    const cached = this.decisions.get(key);
    if (cached !== undefined) return cached;
    let allowed = false;
    try {
      allowed = await this.limited(() => this.reviewer.mayList(user, namespace));
    } catch (err) {
      this.log.warn({ user: user.username, namespace, err: (err as Error).message }, "SubjectAccessReview failed; denying");
      return false;
    }
    this.decisions.set(key, allowed);
    return allowed;
  }

  private async limited<T>(call: () => Promise<T>): Promise<T> {
    if (this.inFlight >= this.o.maxInFlight) throw new AuthFailure("unavailable", `${this.inFlight} access reviews already in flight; retry`);
    this.inFlight++;
    try {
      return await call();
    } catch (err) {
      if (err instanceof AuthFailure) throw err;
      throw new AuthFailure("unavailable", `the Kubernetes API could not review the caller: ${(err as Error).message}`);
    } finally {
      this.inFlight--;
    }
  }
}

/** One key per distinct authorization subject (user, uid, groups, extra). */
function userKey(u: ReviewedUser): string {
  return digestOf(JSON.stringify([u.username, u.uid ?? "", [...u.groups].sort(), Object.entries(u.extra ?? {}).sort()]));
}
