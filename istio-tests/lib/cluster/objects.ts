// A scenario (istio-tests/scenarios/*.yaml) as Kubernetes objects for a real cluster: its
// namespaces (sidecar injection on, plus the scenario's labels), one pod per scenario pod running
// the toolbox image (the clients), the CA of the world's web certificate, and its policies as-is.
import type { Scenario } from "../../../control/src/mesh/scenario.js";
import type { KubeObject } from "../../../control/src/deploy/objects.js";

export const SCENARIO_LABEL = "egret.dev/istio-test";
export const CA_CONFIGMAP = "egret-world-ca";
export const CA_PATH = "/etc/egret-world/ca.pem";
export const APP_CONTAINER = "app";

export function scenarioObjects(s: Scenario, toolboxImage: string, caPem: string): KubeObject[] {
  const out: KubeObject[] = [];
  const namespaces = new Set([...Object.keys(s.namespaces), ...s.pods.map((p) => p.namespace)]);
  for (const ns of [...namespaces].sort()) {
    out.push({
      apiVersion: "v1", kind: "Namespace",
      metadata: { name: ns, labels: { ...(s.namespaces[ns]?.labels ?? {}), "istio-injection": "enabled", [SCENARIO_LABEL]: s.name } },
    });
    out.push({ apiVersion: "v1", kind: "ConfigMap", metadata: { name: CA_CONFIGMAP, namespace: ns }, data: { "ca.pem": caPem } });
  }
  for (const p of s.pods) {
    out.push({
      apiVersion: "v1", kind: "Pod",
      metadata: {
        name: p.name, namespace: p.namespace, labels: { ...p.labels, [SCENARIO_LABEL]: s.name },
        annotations: {
          // The app's first connection must already go through the sidecar and its filter.
          "proxy.istio.io/config": "holdApplicationUntilProxyStarts: true",
          "sidecar.istio.io/componentLogLevel": "wasm:debug",
        },
      },
      spec: {
        terminationGracePeriodSeconds: 1,
        containers: [{
          name: APP_CONTAINER, image: toolboxImage, imagePullPolicy: "IfNotPresent",
          command: ["sleep", "infinity"],
          volumeMounts: [{ name: "world-ca", mountPath: "/etc/egret-world", readOnly: true }],
        }],
        volumes: [{ name: "world-ca", configMap: { name: CA_CONFIGMAP } }],
      },
    });
  }
  for (const policy of s.policies as KubeObject[]) out.push(policy);
  // ServiceEntries as written; istiod writes status.addresses itself (its allocator).
  for (const se of s.serviceEntries as (KubeObject & { status?: unknown })[]) {
    const { status: _status, ...object } = se;
    out.push(object);
  }
  return out;
}
