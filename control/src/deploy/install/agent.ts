// `egret agent`: one per node, watches the DNS answers pods receive and streams them to every
// control replica.
import type { KubeObject } from "../objects.js";
import {
  AGENT_METRICS_PORT,
  AGENT_NAME,
  AGENT_TOKEN_AUDIENCE,
  AGENT_TOKEN_DIR,
  AGENT_TOKEN_EXPIRATION_SECONDS,
  AGENT_TOKEN_FILE,
  AGENT_CA_DIR,
  CA_CONFIGMAP,
  CONTROL_NAME,
  GRPC_TLS_PORT,
  TLS_SERVER_NAME,
  labels,
  NAMESPACE,
  selectorLabels,
  type InstallSettings,
} from "./settings.js";

export const AGENT_HEADER = `\`egret agent\`: one per node, watches the DNS answers pods receive (its own AF_PACKET
TPACKET_V3 ring on the node's pod interfaces, filtered in the kernel) and streams them to every
control replica.
Privileges: hostNetwork (to see the node side of every pod interface) and CAP_NET_RAW (packet
sockets; it asks for no promiscuous mode, which the "any" device ignores anyway), so
CAP_NET_ADMIN is not granted. It runs as UID 0 because
Kubernetes cannot grant ambient capabilities to a non-root process and no_new_privs (which we
keep) ignores file capabilities; every other capability is dropped and the root filesystem is
read-only. It has no Kubernetes API access at all: the only token it holds is a projected
ServiceAccount token for the audience ${AGENT_TOKEN_AUDIENCE} (useless against the API server), expiring
after ${AGENT_TOKEN_EXPIRATION_SECONDS / 60} minutes and refreshed by the kubelet; it sends it to control, which checks it
with a TokenReview and binds the stream to this pod's node. Its /metrics and /healthz
listen on the node's own address (status.hostIP), port ${AGENT_METRICS_PORT}.
--trusted-resolver: cluster DNS as pods see it (the kube-dns Service IP; add NodeLocal
DNSCache's address if you run it); \`egret manifests --trusted-resolver\` sets it.`;

function agentArgs(s: InstallSettings): string[] {
  return [
    "agent",
    // The headless Service: the agent resolves every replica's address and streams to each.
    `--control-service=${CONTROL_NAME}-agents.${NAMESPACE}.svc.cluster.local:${GRPC_TLS_PORT}`,
    // TLS: the token travels only to a replica whose certificate the install's CA signed for the
    // control Service's name (replica IPs are not in it).
    `--ca-file=${AGENT_CA_DIR}/ca.crt`,
    `--tls-server-name=${TLS_SERVER_NAME}`,
    // "any" sees every pod interface whatever the CNI.
    "--interface=any",
    ...s.trustedResolvers.map((ip) => `--trusted-resolver=${ip}`),
    ...s.podCidrs.map((c) => `--pod-cidr=${c}`),
    // Bypass detection judges SYNs only to destinations outside these (as control's `external`).
    ...s.clusterCidrs.map((c) => `--cluster-cidr=${c}`),
    "--node-name=$(NODE_NAME)",
    // Re-read on every reconnect; control ends a stream when its token expires.
    `--token-file=${AGENT_TOKEN_DIR}/${AGENT_TOKEN_FILE}`,
    `--metrics-address=$(HOST_IP):${AGENT_METRICS_PORT}`,
  ];
}

function agentContainer(s: InstallSettings): Record<string, unknown> {
  const probe = { httpGet: { path: "/healthz", port: AGENT_METRICS_PORT } };
  return {
    name: "agent",
    image: s.image,
    imagePullPolicy: "IfNotPresent",
    args: agentArgs(s),
    env: [
      { name: "NODE_NAME", valueFrom: { fieldRef: { fieldPath: "spec.nodeName" } } },
      { name: "HOST_IP", valueFrom: { fieldRef: { fieldPath: "status.hostIP" } } },
      { name: "NODE_OPTIONS", value: "--max-old-space-size=384" },
    ],
    // No `ports:`: with hostNetwork a declared containerPort is a hostPort, and the scheduler would
    // keep the surge pod Pending until the old one is gone (no overlap). The new agent captures at
    // once and takes the metrics port over when the old one has drained.
    livenessProbe: { ...probe, initialDelaySeconds: 10, periodSeconds: 10, timeoutSeconds: 2, failureThreshold: 3 },
    readinessProbe: { ...probe, periodSeconds: 5, timeoutSeconds: 2 },
    // Memory budget: V8 heap ≤ 384 MiB (NODE_OPTIONS) + the capture queue (--capture-queue-mb,
    // 64 MiB) + the 64 MiB kernel ring + Node's own code and buffers (~80 MiB): 768 Mi leaves
    // headroom, so a burst fills the queue and is counted as drops instead of OOM-killing the agent.
    resources: { requests: { cpu: "50m", memory: "128Mi" }, limits: { memory: "768Mi" } },
    securityContext: {
      runAsUser: 0,
      runAsNonRoot: false,
      privileged: false,
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ["ALL"], add: ["NET_RAW"] },
      seccompProfile: { type: "RuntimeDefault" },
    },
    volumeMounts: [
      { name: "tmp", mountPath: "/tmp" },
      { name: "egret-token", mountPath: AGENT_TOKEN_DIR, readOnly: true },
      { name: "control-ca", mountPath: AGENT_CA_DIR, readOnly: true },
    ],
  };
}

export function agentObjects(s: InstallSettings): KubeObject[] {
  return [
    {
      apiVersion: "v1",
      kind: "ServiceAccount",
      metadata: { name: AGENT_NAME, namespace: NAMESPACE, labels: labels("agent") },
      automountServiceAccountToken: false,
    },
    {
      apiVersion: "apps/v1",
      kind: "DaemonSet",
      metadata: { name: AGENT_NAME, namespace: NAMESPACE, labels: labels("agent") },
      spec: {
        revisionHistoryLimit: 5,
        selector: { matchLabels: selectorLabels("agent") },
        // Surge: on each node the new agent starts and captures before the old one gets SIGTERM and
        // drains (all it captured is acknowledged by control before it exits), so a rollout loses no
        // DNS answer; control keeps one copy of what both report (control/src/agent/README.md).
        updateStrategy: { type: "RollingUpdate", rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } },
        template: {
          metadata: {
            labels: labels("agent"),
            annotations: {
              "sidecar.istio.io/inject": "false",
              "prometheus.io/scrape": "true",
              "prometheus.io/port": String(AGENT_METRICS_PORT),
              "prometheus.io/path": "/metrics",
            },
          },
          spec: {
            serviceAccountName: AGENT_NAME,
            automountServiceAccountToken: false,
            hostNetwork: true,
            dnsPolicy: "ClusterFirstWithHostNet",
            priorityClassName: "system-node-critical",
            enableServiceLinks: false,
            terminationGracePeriodSeconds: 10,
            securityContext: { seccompProfile: { type: "RuntimeDefault" } },
            // Pods run on every node, tainted or not, so the agent must too.
            tolerations: [{ operator: "Exists" }],
            containers: [agentContainer(s)],
            volumes: [
              { name: "tmp", emptyDir: { sizeLimit: "16Mi" } },
              // Bound to this pod (so to its node), for Egret's audience only, short-lived.
              {
                name: "egret-token",
                projected: {
                  sources: [{ serviceAccountToken: { audience: AGENT_TOKEN_AUDIENCE, expirationSeconds: AGENT_TOKEN_EXPIRATION_SECONDS, path: AGENT_TOKEN_FILE } }],
                },
              },
              // The CA control's certificate must chain to (control/tls.yaml writes it).
              { name: "control-ca", configMap: { name: CA_CONFIGMAP, items: [{ key: "ca.crt", path: "ca.crt" }] } },
            ],
          },
        },
      },
    },
  ];
}
