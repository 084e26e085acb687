// The Kubernetes side of operator authorization (auth/operator-auth.ts): TokenReview says who a
// bearer token belongs to, SubjectAccessReview whether that user may `list` EgressPolicies in a
// namespace (or ClusterEgressPolicies, for the cluster-wide rows). Control's ServiceAccount needs
// `create` on tokenreviews and subjectaccessreviews (control/src/deploy/install/rbac.ts).
import { AuthenticationV1Api, AuthorizationV1Api, type KubeConfig } from "@kubernetes/client-node";
import type { AccessReviewer, ReviewedUser } from "../auth/operator-access.js";
import { POLICY_GROUP } from "./source.js";

/** The rights an operator view needs, as SubjectAccessReview resource attributes. */
export function operatorReadAttributes(namespace: string | undefined) {
  return namespace === undefined
    ? { group: POLICY_GROUP, resource: "clusteregresspolicies", verb: "list" }
    : { group: POLICY_GROUP, resource: "egresspolicies", verb: "list", namespace };
}

export class KubeAccessReviewer implements AccessReviewer {
  private readonly authn: AuthenticationV1Api;
  private readonly authz: AuthorizationV1Api;

  constructor(kc: KubeConfig) {
    this.authn = kc.makeApiClient(AuthenticationV1Api);
    this.authz = kc.makeApiClient(AuthorizationV1Api);
  }

  async reviewToken(token: string): Promise<ReviewedUser | undefined> {
    const r = await this.authn.createTokenReview({ body: { apiVersion: "authentication.k8s.io/v1", kind: "TokenReview", spec: { token } } });
    const s = r.status;
    if (!s?.authenticated || !s.user?.username) return undefined;
    return { username: s.user.username, uid: s.user.uid, groups: s.user.groups ?? [], extra: s.user.extra };
  }

  async mayList(user: ReviewedUser, namespace: string | undefined): Promise<boolean> {
    const r = await this.authz.createSubjectAccessReview({
      body: {
        apiVersion: "authorization.k8s.io/v1",
        kind: "SubjectAccessReview",
        spec: { user: user.username, uid: user.uid, groups: user.groups, extra: user.extra, resourceAttributes: operatorReadAttributes(namespace) },
      },
    });
    return r.status?.allowed === true && r.status.denied !== true;
  }
}
