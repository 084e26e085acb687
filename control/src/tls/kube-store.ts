// TlsObjectStore on the Kubernetes API (client-node): Secrets and ConfigMaps of one namespace.
// Secret data travels base64-encoded; errors keep the API's HTTP code (409 → the bootstrap retries).
import { CoreV1Api, type KubeConfig } from "@kubernetes/client-node";
import type { TlsObjectStore } from "./bootstrap.js";

const LABELS = { "app.kubernetes.io/part-of": "egret", "app.kubernetes.io/component": "control" };

const encode = (data: Record<string, string>) => Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v).toString("base64")]));
const decode = (data: Record<string, string> | undefined) => Object.fromEntries(Object.entries(data ?? {}).map(([k, v]) => [k, Buffer.from(v, "base64").toString("utf8")]));

export function kubeTlsStore(kc: KubeConfig, namespace: string): TlsObjectStore {
  const api = kc.makeApiClient(CoreV1Api);
  const metadata = (name: string, resourceVersion?: string) => ({ name, namespace, labels: LABELS, ...(resourceVersion ? { resourceVersion } : {}) });
  return {
    async get(kind, name) {
      try {
        if (kind === "Secret") {
          const s = await api.readNamespacedSecret({ name, namespace });
          return { data: decode(s.data), resourceVersion: s.metadata?.resourceVersion };
        }
        const c = await api.readNamespacedConfigMap({ name, namespace });
        return { data: { ...(c.data ?? {}) }, resourceVersion: c.metadata?.resourceVersion };
      } catch (err) {
        if ((err as { code?: number }).code === 404) return undefined;
        throw err;
      }
    },
    async create(kind, name, data) {
      if (kind === "Secret") await api.createNamespacedSecret({ namespace, body: { apiVersion: "v1", kind: "Secret", type: "Opaque", metadata: metadata(name), data: encode(data) } });
      else await api.createNamespacedConfigMap({ namespace, body: { apiVersion: "v1", kind: "ConfigMap", metadata: metadata(name), data } });
    },
    async replace(kind, name, data, resourceVersion) {
      if (kind === "Secret") await api.replaceNamespacedSecret({ name, namespace, body: { apiVersion: "v1", kind: "Secret", type: "Opaque", metadata: metadata(name, resourceVersion), data: encode(data) } });
      else await api.replaceNamespacedConfigMap({ name, namespace, body: { apiVersion: "v1", kind: "ConfigMap", metadata: metadata(name, resourceVersion), data } });
    },
  };
}
