// The in-test API server's authentication and authorization reviews, as the real API server
// serves them: POST /apis/authentication.k8s.io/v1/tokenreviews (spec.token → status.authenticated,
// status.user) and POST /apis/authorization.k8s.io/v1/subjectaccessreviews (spec.user/groups +
// resourceAttributes → status.allowed), decided by RBAC-like grants the test sets. The caller's
// own credential (control's) must be present, as the real server requires.
import type { FakeKube } from "./fake-kube.js";

export interface FakeUser {
  username: string;
  uid?: string;
  groups?: string[];
}

/** What a grant allows: a verb on a group/resource, in one namespace, or cluster-wide ("*"). */
export interface Grant {
  subject: string;
  verb: string;
  group: string;
  resource: string;
  namespace: string | "*";
}

interface ReviewBody {
  apiVersion?: string;
  kind?: string;
  spec?: {
    token?: string;
    user?: string;
    groups?: string[];
    resourceAttributes?: { namespace?: string; verb?: string; group?: string; resource?: string };
  };
}

export class FakeAccessReviews {
  private readonly tokens = new Map<string, FakeUser>();
  private readonly grants: Grant[] = [];
  readonly tokenReviews: string[] = [];
  readonly accessReviews: { user: string; namespace?: string; resource?: string; verb?: string; allowed: boolean }[] = [];

  /** Installs both routes on `kube`. */
  install(kube: FakeKube): this {
    kube.addRoute({ method: "POST", path: "/apis/authentication.k8s.io/v1/tokenreviews", handle: (b, h) => this.tokenReview(b as ReviewBody, h.authorization) });
    kube.addRoute({ method: "POST", path: "/apis/authorization.k8s.io/v1/subjectaccessreviews", handle: (b, h) => this.accessReview(b as ReviewBody, h.authorization) });
    return this;
  }

  addToken(token: string, user: FakeUser): void {
    this.tokens.set(token, user);
  }

  revokeToken(token: string): void {
    this.tokens.delete(token);
  }

  /** `subject` is a username or "group:NAME". */
  allow(grant: Grant): void {
    this.grants.push(grant);
  }

  /** Removes every grant of `subject` (a RoleBinding deleted). */
  revoke(subject: string): void {
    for (let i = this.grants.length - 1; i >= 0; i--) if (this.grants[i]!.subject === subject) this.grants.splice(i, 1);
  }

  private tokenReview(body: ReviewBody, caller: string | undefined) {
    if (!caller) return { status: 401, body: { kind: "Status", code: 401, reason: "Unauthorized" } };
    if (body.kind !== "TokenReview" || typeof body.spec?.token !== "string") return { status: 400, body: { kind: "Status", code: 400, message: "spec.token required" } };
    this.tokenReviews.push(body.spec.token);
    const user = this.tokens.get(body.spec.token);
    const status = user ? { authenticated: true, user: { username: user.username, uid: user.uid ?? "", groups: user.groups ?? [] } } : { authenticated: false, error: "invalid bearer token" };
    return { status: 201, body: { apiVersion: "authentication.k8s.io/v1", kind: "TokenReview", spec: body.spec, status } };
  }

  private accessReview(body: ReviewBody, caller: string | undefined) {
    if (!caller) return { status: 401, body: { kind: "Status", code: 401, reason: "Unauthorized" } };
    const spec = body.spec;
    const attrs = spec?.resourceAttributes;
    if (body.kind !== "SubjectAccessReview" || !spec?.user || !attrs) return { status: 400, body: { kind: "Status", code: 400, message: "spec.user and spec.resourceAttributes required" } };
    const subjects = new Set([spec.user, ...(spec.groups ?? []).map((g) => `group:${g}`)]);
    const allowed = this.grants.some(
      (g) =>
        subjects.has(g.subject) &&
        g.verb === attrs.verb &&
        g.group === (attrs.group ?? "") &&
        g.resource === attrs.resource &&
        (g.namespace === "*" || g.namespace === (attrs.namespace ?? "")),
    );
    this.accessReviews.push({ user: spec.user, namespace: attrs.namespace, resource: attrs.resource, verb: attrs.verb, allowed });
    return { status: 201, body: { apiVersion: "authorization.k8s.io/v1", kind: "SubjectAccessReview", spec, status: { allowed } } };
  }
}
