// The in-test API server's SubjectAccessReview (authorization.k8s.io/v1), as the real one answers
// it: POST /apis/authorization.k8s.io/v1/subjectaccessreviews with spec.user/groups and
// resourceAttributes → 201 with status.allowed, decided by RBAC-like grants the test sets (by user
// or group). Who a token belongs to is the TokenReview of fake-kube-tokens.ts.
import type { FakeKube } from "./fake-kube.js";

export const SUBJECT_ACCESS_REVIEW_PATH = "/apis/authorization.k8s.io/v1/subjectaccessreviews";

/** What a grant allows: a verb on a group/resource, in one namespace, or cluster-wide ("*"). */
export interface Grant {
  /** A username, or "group:NAME". */
  subject: string;
  verb: string;
  group: string;
  resource: string;
  namespace: string | "*";
}

interface ReviewBody {
  kind?: string;
  spec?: {
    user?: string;
    groups?: string[];
    resourceAttributes?: { namespace?: string; verb?: string; group?: string; resource?: string };
  };
}

export class FakeAccessReviews {
  private readonly grants: Grant[] = [];
  readonly accessReviews: { user: string; namespace?: string; resource?: string; verb?: string; allowed: boolean }[] = [];

  /** Serves SubjectAccessReview on `kube`. */
  install(kube: FakeKube): this {
    kube.handlePost(SUBJECT_ACCESS_REVIEW_PATH, (b) => this.accessReview(b as ReviewBody));
    return this;
  }

  allow(grant: Grant): void {
    this.grants.push(grant);
  }

  /** Removes every grant of `subject` (a RoleBinding deleted). */
  revoke(subject: string): void {
    for (let i = this.grants.length - 1; i >= 0; i--) if (this.grants[i]!.subject === subject) this.grants.splice(i, 1);
  }

  private accessReview(body: ReviewBody) {
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
