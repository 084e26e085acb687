// `egret control`: Deployment, PodDisruptionBudget, the Service for filters and the headless
// Service for agents, and the DestinationRule that keeps Istio mTLS off the filters' connection.
import type { KubeObject } from "../objects.js";
import {
  AGENT_NAME, AGENT_TOKEN_AUDIENCE, CA_CONFIGMAP, CONTROL_NAME, CONTROL_TLS_DIR, controlHost, GRPC_PORT, GRPC_TLS_PORT, HTTP_PORT, labels, NAMESPACE, selectorLabels,
  TLS_SECRET, TLS_SERVER_NAME, type InstallSettings,
} from "./settings.js";

export const CONTROL_HEADER = `\`egret control\`: the gRPC control service (FilterService for sidecar filters, AgentService for
node agents) plus an HTTP port for /metrics, /healthz, /readyz and the wasm module
(/wasm/egret.wasm, /wasm/egret.wasm.sha256, /wasm/modules) that istio-agent downloads.
- TLS port ${GRPC_TLS_PORT} (Secret ${TLS_SECRET}, control/tls.yaml): AgentService, OperatorService and
  FilterService; the plaintext port ${GRPC_PORT} serves FilterService only (no credential is accepted there).
- The Service egret-control is what sidecar filters use: Istio builds the cluster
  outbound|${GRPC_TLS_PORT}||${controlHost} from it; the port name \`grpc-…\` makes Istio use HTTP/2.
- The headless Service egret-control-agents is for agents: every agent streams its observations to
  EVERY control replica, so it resolves the individual pod addresses. Not-ready replicas are
  published too: a replica starting up needs the agents' replay before it can become ready.`;

export const DESTINATION_RULE_HEADER = `The control service has no sidecar, so no Istio mTLS to it. The filters' gRPC (port ${GRPC_TLS_PORT}) is TLS
originated by each sidecar's Envoy: it verifies control's certificate for ${TLS_SERVER_NAME} with the CA in
ConfigMap ${NAMESPACE}/${CA_CONFIGMAP} (credentialName configmap://…, which istiod serves over SDS to
sidecars in any namespace: Istio >= 1.26). The sidecar connects from its pod's address, which is how
control binds a filter to its pod. HTTP/2 connections stay long-lived for the Watch streams.`;

function controlArgs(s: InstallSettings): string[] {
  return [
    "control",
    "--kubernetes",
    `--grpc-listen=0.0.0.0:${GRPC_PORT}`,
    `--http-listen=0.0.0.0:${HTTP_PORT}`,
    "--wasm=/opt/egret/filter/build/egret.wasm",
    // At start, ask the replicas already running for the module they serve and keep serving it:
    // sidecars whose EnvoyFilter still names the previous sha256 (during an upgrade, before the
    // mesh phase is applied) can still download it.
    `--wasm-previous=http://${controlHost}:${HTTP_PORT}`,
    `--grpc-tls-listen=0.0.0.0:${GRPC_TLS_PORT}`,
    `--tls-cert=${CONTROL_TLS_DIR}/tls.crt`,
    `--tls-key=${CONTROL_TLS_DIR}/tls.key`,
    "--audit-log=stdout",
    `--agent-audience=${AGENT_TOKEN_AUDIENCE}`,
    `--agent-service-account=${NAMESPACE}:${AGENT_NAME}`,
    ...s.clusterCidrs.map((c) => `--cluster-cidr=${c}`),
    // The EnvoyFilter's workloadSelector: coverage calls sidecars it leaves out envoy-without-filter.
    ...Object.entries(s.workloadSelector).map(([k, v]) => `--filter-selector=${k}=${v}`),
  ];
}

function fieldEnv(name: string, fieldPath: string): Record<string, unknown> {
  return { name, valueFrom: { fieldRef: { fieldPath } } };
}

function spread(topologyKey: string): Record<string, unknown> {
  return { maxSkew: 1, topologyKey, whenUnsatisfiable: "ScheduleAnyway", labelSelector: { matchLabels: selectorLabels("control") } };
}

function controlContainer(s: InstallSettings): Record<string, unknown> {
  return {
    name: "control",
    image: s.image,
    imagePullPolicy: "IfNotPresent",
    args: controlArgs(s),
    env: [
      fieldEnv("POD_NAME", "metadata.name"),
      fieldEnv("POD_NAMESPACE", "metadata.namespace"),
      // Heap bound below the memory limit so V8 collects before the kernel kills.
      { name: "NODE_OPTIONS", value: "--max-old-space-size=768" },
    ],
    ports: [
      { name: "grpc", containerPort: GRPC_PORT, protocol: "TCP" },
      { name: "grpc-tls", containerPort: GRPC_TLS_PORT, protocol: "TCP" },
      { name: "http", containerPort: HTTP_PORT, protocol: "TCP" },
    ],
    startupProbe: { httpGet: { path: "/healthz", port: "http" }, periodSeconds: 2, failureThreshold: 30 },
    livenessProbe: { httpGet: { path: "/healthz", port: "http" }, periodSeconds: 10, timeoutSeconds: 2, failureThreshold: 3 },
    // Ready only after the first sync of every informer (pods, namespaces, policies).
    readinessProbe: { httpGet: { path: "/readyz", port: "http" }, periodSeconds: 5, timeoutSeconds: 2, failureThreshold: 2 },
    resources: { requests: { cpu: "200m", memory: "256Mi" }, limits: { memory: "1Gi" } },
    securityContext: {
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      runAsNonRoot: true,
      privileged: false,
      capabilities: { drop: ["ALL"] },
      seccompProfile: { type: "RuntimeDefault" },
    },
    volumeMounts: [{ name: "tmp", mountPath: "/tmp" }, { name: "tls", mountPath: CONTROL_TLS_DIR, readOnly: true }],
  };
}

function controlDeployment(s: InstallSettings): KubeObject {
  return {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: { name: CONTROL_NAME, namespace: NAMESPACE, labels: labels("control") },
    spec: {
      replicas: 2,
      revisionHistoryLimit: 5,
      selector: { matchLabels: selectorLabels("control") },
      strategy: {
        type: "RollingUpdate",
        // Never drop below the current number of ready replicas: every filter holds a Watch
        // stream and reconnects to a surviving replica when one goes away.
        rollingUpdate: { maxUnavailable: 0, maxSurge: 1 },
      },
      template: {
        metadata: {
          labels: labels("control"),
          annotations: {
            "sidecar.istio.io/inject": "false",
            "prometheus.io/scrape": "true",
            "prometheus.io/port": String(HTTP_PORT),
            "prometheus.io/path": "/metrics",
          },
        },
        spec: {
          serviceAccountName: CONTROL_NAME,
          priorityClassName: "system-cluster-critical",
          enableServiceLinks: false,
          terminationGracePeriodSeconds: 30,
          securityContext: { runAsNonRoot: true, runAsUser: 10001, runAsGroup: 10001, fsGroup: 10001, seccompProfile: { type: "RuntimeDefault" } },
          // Replicas on different nodes (and zones) when the cluster has them; a one-node cluster
          // still runs both (a hard constraint would leave the second Pending and, with
          // maxUnavailable 0, block every rollout).
          topologySpreadConstraints: [spread("kubernetes.io/hostname"), spread("topology.kubernetes.io/zone")],
          containers: [controlContainer(s)],
          volumes: [
            { name: "tmp", emptyDir: { sizeLimit: "64Mi" } },
            // Written by control/tls.yaml's Job (or cert-manager); the pod waits for it.
            { name: "tls", secret: { secretName: TLS_SECRET, defaultMode: 0o440, items: [{ key: "tls.crt", path: "tls.crt" }, { key: "tls.key", path: "tls.key" }] } },
          ],
        },
      },
    },
  };
}

export function controlObjects(s: InstallSettings): KubeObject[] {
  const meta = (name: string) => ({ name, namespace: NAMESPACE, labels: labels("control") });
  const grpcPort = { name: "grpc-egret", port: GRPC_PORT, targetPort: "grpc", protocol: "TCP", appProtocol: "grpc" };
  const grpcTlsPort = { name: "grpc-egret-tls", port: GRPC_TLS_PORT, targetPort: "grpc-tls", protocol: "TCP", appProtocol: "grpc" };
  return [
    controlDeployment(s),
    {
      apiVersion: "policy/v1",
      kind: "PodDisruptionBudget",
      metadata: meta(CONTROL_NAME),
      spec: { minAvailable: 1, selector: { matchLabels: selectorLabels("control") } },
    },
    {
      apiVersion: "v1",
      kind: "Service",
      metadata: meta(CONTROL_NAME),
      spec: {
        type: "ClusterIP",
        selector: selectorLabels("control"),
        ports: [grpcPort, grpcTlsPort, { name: "http-egret", port: HTTP_PORT, targetPort: "http", protocol: "TCP", appProtocol: "http" }],
      },
    },
    {
      apiVersion: "v1",
      kind: "Service",
      metadata: meta(`${CONTROL_NAME}-agents`),
      spec: { clusterIP: "None", publishNotReadyAddresses: true, selector: selectorLabels("control"), ports: [grpcPort, grpcTlsPort] },
    },
  ];
}

export function destinationRuleObjects(s: InstallSettings): KubeObject[] {
  const connectionPool = { tcp: { tcpKeepalive: { time: "60s", interval: "20s" } }, http: { idleTimeout: "3600s" } };
  // Without sidecar TLS (Istio < 1.26) the filters use the plaintext port: no credential to load.
  const tlsPort = s.sidecarTls ? {
    portLevelSettings: [{
      port: { number: GRPC_TLS_PORT },
      connectionPool,
      tls: { mode: "SIMPLE", credentialName: `configmap://${NAMESPACE}/${CA_CONFIGMAP}`, sni: TLS_SERVER_NAME, subjectAltNames: [TLS_SERVER_NAME] },
    }],
  } : {};
  return [{
    apiVersion: "networking.istio.io/v1beta1",
    kind: "DestinationRule",
    metadata: { name: CONTROL_NAME, namespace: NAMESPACE, labels: labels("control") },
    spec: {
      host: controlHost,
      trafficPolicy: {
        tls: { mode: "DISABLE" },
        connectionPool,
        ...tlsPort,
      },
    },
  }];
}
