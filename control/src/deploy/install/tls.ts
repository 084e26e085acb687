// Control's TLS material. Default (`bootstrap`): a Job at install time and a daily CronJob run
// `egret tls bootstrap` (control/src/tls/), which makes a private CA once and keeps the serving
// certificate fresh. `cert-manager`: a self-signed Issuer makes the CA, a CA Issuer signs the
// serving Certificate, and the same Job/CronJob only publishes the CA for agents and Istio.
// Either way: Secret egret-control-tls (control mounts it), ConfigMap egret-control-ca (agents'
// --ca-file; the DestinationRule's credentialName for sidecars).
import { createHash } from "node:crypto";
import type { KubeObject } from "../objects.js";
import { CA_CONFIGMAP, CA_SECRET, labels, NAMESPACE, TLS_SECRET, TLS_SERVER_NAMES, type InstallSettings } from "./settings.js";

export const TLS_HEADER = `Control's TLS material: agent tokens and the filters' gRPC travel only over TLS.
- Secret ${TLS_SECRET} (tls.crt, tls.key, ca.crt): control's serving certificate for
  ${TLS_SERVER_NAMES.join(", ")}; control mounts it and re-reads it every minute.
- ConfigMap ${CA_CONFIGMAP} (ca.crt): the CA agents verify control with (--ca-file), and the one
  sidecars verify it with (DestinationRule credentialName configmap://${NAMESPACE}/${CA_CONFIGMAP}).
- bootstrap (default): the Job makes a private CA once (Secret ${CA_SECRET}, read only by this Job's
  ServiceAccount) and issues the serving certificate; the CronJob re-issues it 30 days before its
  90 days end. cert-manager (\`egret manifests --tls cert-manager\`): Issuers and Certificates below,
  and the Job/CronJob only copy the CA into the ConfigMap. Rotation: docs/operations.md "TLS material".`;

export const TLS_JOB_NAME = "egret-tls";
const RENEW_SCHEDULE = "17 3 * * *";

function tlsArgs(s: InstallSettings): string[] {
  if (s.tls === "cert-manager") return ["tls", "publish-ca", `--tls-secret=${TLS_SECRET}`, `--ca-configmap=${CA_CONFIGMAP}`];
  return ["tls", "bootstrap", ...TLS_SERVER_NAMES.map((n) => `--server-name=${n}`), `--ca-secret=${CA_SECRET}`, `--tls-secret=${TLS_SECRET}`, `--ca-configmap=${CA_CONFIGMAP}`];
}

function podTemplate(s: InstallSettings): Record<string, unknown> {
  return {
    metadata: { labels: labels("tls"), annotations: { "sidecar.istio.io/inject": "false" } },
    spec: {
      serviceAccountName: TLS_JOB_NAME,
      restartPolicy: "OnFailure",
      enableServiceLinks: false,
      securityContext: { runAsNonRoot: true, runAsUser: 10001, runAsGroup: 10001, seccompProfile: { type: "RuntimeDefault" } },
      containers: [{
        name: "tls",
        image: s.image,
        imagePullPolicy: "IfNotPresent",
        args: tlsArgs(s),
        env: [{ name: "POD_NAMESPACE", valueFrom: { fieldRef: { fieldPath: "metadata.namespace" } } }],
        resources: { requests: { cpu: "10m", memory: "64Mi" }, limits: { memory: "128Mi" } },
        securityContext: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, privileged: false, capabilities: { drop: ["ALL"] } },
      }],
    },
  };
}

/** What the Job's ServiceAccount may touch: only these objects, in this namespace. */
function tlsRole(s: InstallSettings): KubeObject {
  const ownSecrets = s.tls === "cert-manager" ? [{ resourceNames: [TLS_SECRET], verbs: ["get"] }] : [{ resourceNames: [CA_SECRET, TLS_SECRET], verbs: ["get", "update"] }];
  return {
    apiVersion: "rbac.authorization.k8s.io/v1",
    kind: "Role",
    metadata: { name: TLS_JOB_NAME, namespace: NAMESPACE, labels: labels("tls") },
    rules: [
      // create cannot be limited by resourceNames (the name is not known at authorization time).
      ...(s.tls === "bootstrap" ? [{ apiGroups: [""], resources: ["secrets"], verbs: ["create"] }] : []),
      ...ownSecrets.map((r) => ({ apiGroups: [""], resources: ["secrets"], ...r })),
      { apiGroups: [""], resources: ["configmaps"], verbs: ["create"] },
      { apiGroups: [""], resources: ["configmaps"], resourceNames: [CA_CONFIGMAP], verbs: ["get", "update"] },
    ],
  };
}

function certManagerObjects(): KubeObject[] {
  const meta = (name: string) => ({ name, namespace: NAMESPACE, labels: labels("tls") });
  const ecdsa = { algorithm: "ECDSA", size: 256, rotationPolicy: "Always" };
  return [
    { apiVersion: "cert-manager.io/v1", kind: "Issuer", metadata: meta("egret-selfsigned"), spec: { selfSigned: {} } },
    {
      apiVersion: "cert-manager.io/v1",
      kind: "Certificate",
      metadata: meta(CA_SECRET),
      spec: { isCA: true, commonName: "egret-control-ca", secretName: CA_SECRET, duration: "87600h", renewBefore: "8760h", privateKey: ecdsa, issuerRef: { name: "egret-selfsigned", kind: "Issuer", group: "cert-manager.io" } },
    },
    { apiVersion: "cert-manager.io/v1", kind: "Issuer", metadata: meta(CA_SECRET), spec: { ca: { secretName: CA_SECRET } } },
    {
      apiVersion: "cert-manager.io/v1",
      kind: "Certificate",
      metadata: meta(TLS_SECRET),
      spec: {
        secretName: TLS_SECRET,
        commonName: TLS_SERVER_NAMES[0],
        dnsNames: [...TLS_SERVER_NAMES],
        duration: "2160h",
        renewBefore: "720h",
        privateKey: ecdsa,
        usages: ["server auth", "digital signature"],
        issuerRef: { name: CA_SECRET, kind: "Issuer", group: "cert-manager.io" },
      },
    },
  ];
}

/** The install Job's name carries the image, so an upgrade's `kubectl apply` makes a new Job (a Job's template is immutable). */
function jobName(s: InstallSettings): string {
  return `${TLS_JOB_NAME}-${createHash("sha256").update(s.image).digest("hex").slice(0, 8)}`;
}

export function tlsObjects(s: InstallSettings): KubeObject[] {
  const meta = (name: string) => ({ name, namespace: NAMESPACE, labels: labels("tls") });
  return [
    ...(s.tls === "cert-manager" ? certManagerObjects() : []),
    { apiVersion: "v1", kind: "ServiceAccount", metadata: meta(TLS_JOB_NAME), automountServiceAccountToken: true },
    tlsRole(s),
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "RoleBinding",
      metadata: meta(TLS_JOB_NAME),
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: TLS_JOB_NAME },
      subjects: [{ kind: "ServiceAccount", name: TLS_JOB_NAME, namespace: NAMESPACE }],
    },
    // Control's pods wait (ContainerCreating) until this Job has written the Secret they mount.
    { apiVersion: "batch/v1", kind: "Job", metadata: meta(jobName(s)), spec: { backoffLimit: 10, ttlSecondsAfterFinished: 86_400, template: podTemplate(s) } },
    {
      apiVersion: "batch/v1",
      kind: "CronJob",
      metadata: meta(`${TLS_JOB_NAME}-renew`),
      spec: { schedule: RENEW_SCHEDULE, concurrencyPolicy: "Forbid", successfulJobsHistoryLimit: 1, failedJobsHistoryLimit: 3, jobTemplate: { spec: { backoffLimit: 10, template: podTemplate(s) } } },
    },
  ];
}
