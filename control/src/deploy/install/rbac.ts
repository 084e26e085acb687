// Least privilege for `egret control`: read what it compiles policy from, write only policy
// status and Events.
import type { KubeObject } from "../objects.js";
import { CONTROL_NAME, labels, NAMESPACE } from "./settings.js";

export const CONTROL_RBAC_HEADER = `Least privilege for \`egret control\`: read what it compiles policy from, write only policy
status and Events, and create TokenReviews (agents' projected tokens); in its own namespace, the
leader-election Lease and the ConfigMaps egret-coverage-* in which replicas share coverage.`;

export function controlRbacObjects(): KubeObject[] {
  const meta = { name: CONTROL_NAME, labels: labels("control") };
  return [
    {
      apiVersion: "v1",
      kind: "ServiceAccount",
      metadata: { name: CONTROL_NAME, namespace: NAMESPACE, labels: labels("control") },
      automountServiceAccountToken: true,
    },
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRole",
      metadata: meta,
      rules: [
        // Pod identity (IPs, labels) and namespace labels feed policy selection.
        { apiGroups: [""], resources: ["pods", "namespaces"], verbs: ["get", "list", "watch"] },
        { apiGroups: ["egret.dev"], resources: ["egresspolicies", "clusteregresspolicies"], verbs: ["get", "list", "watch"] },
        // ServiceEntry addresses (spec.addresses, status.addresses) are mesh-configuration evidence.
        { apiGroups: ["networking.istio.io"], resources: ["serviceentries"], verbs: ["get", "list", "watch"] },
        // Accepted/Invalid conditions and selectedPods.
        { apiGroups: ["egret.dev"], resources: ["egresspolicies/status", "clusteregresspolicies/status"], verbs: ["update", "patch"] },
        // Agents authenticate with projected ServiceAccount tokens, egret observe / egret status
        // callers with theirs: control asks whether they are valid.
        { apiGroups: ["authentication.k8s.io"], resources: ["tokenreviews"], verbs: ["create"] },
        // Rate-limited deny Events (core/v1).
        { apiGroups: [""], resources: ["events"], verbs: ["create", "patch"] },
        // egret observe / egret status: which namespaces the caller's own RBAC lets it read
        // (SubjectAccessReview), as kube-rbac-proxy does.
        { apiGroups: ["authorization.k8s.io"], resources: ["subjectaccessreviews"], verbs: ["create"] },
      ],
    },
    // Leader election: only the Lease egret-control, only in control's namespace.
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "Role",
      metadata: { name: `${CONTROL_NAME}-leader-election`, namespace: NAMESPACE, labels: labels("control") },
      rules: [
        // create cannot be limited by resourceNames (the name is not known at authorization time).
        { apiGroups: ["coordination.k8s.io"], resources: ["leases"], verbs: ["create"] },
        { apiGroups: ["coordination.k8s.io"], resources: ["leases"], resourceNames: [CONTROL_NAME], verbs: ["get", "update"] },
      ],
    },
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "RoleBinding",
      metadata: { name: `${CONTROL_NAME}-leader-election`, namespace: NAMESPACE, labels: labels("control") },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: `${CONTROL_NAME}-leader-election` },
      subjects: [{ kind: "ServiceAccount", name: CONTROL_NAME, namespace: NAMESPACE }],
    },
    // Coverage shared across replicas (control/src/k8s/coverage-share.ts): each replica writes its
    // filters' Watch bindings to a ConfigMap egret-coverage-<pod> and watches the others'; the leader
    // deletes those of replicas gone for good. Pod names are not known in advance, so the verbs
    // cannot be limited by resourceNames: only control's own namespace is writable.
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "Role",
      metadata: { name: `${CONTROL_NAME}-coverage`, namespace: NAMESPACE, labels: labels("control") },
      rules: [{ apiGroups: [""], resources: ["configmaps"], verbs: ["get", "list", "watch", "create", "update", "delete"] }],
    },
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "RoleBinding",
      metadata: { name: `${CONTROL_NAME}-coverage`, namespace: NAMESPACE, labels: labels("control") },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: `${CONTROL_NAME}-coverage` },
      subjects: [{ kind: "ServiceAccount", name: CONTROL_NAME, namespace: NAMESPACE }],
    },
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRoleBinding",
      metadata: meta,
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: CONTROL_NAME },
      subjects: [{ kind: "ServiceAccount", name: CONTROL_NAME, namespace: NAMESPACE }],
    },
  ];
}
