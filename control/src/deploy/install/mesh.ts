// The EnvoyFilter that puts egret.wasm in front of every outbound TCP connection of every sidecar.
import type { KubeObject } from "../objects.js";
import { controlHost, ENVOY_FILTER_NAME, GRPC_PORT, GRPC_TLS_PORT, HTTP_PORT, labels, WASM_VOLUME_PATH, type InstallSettings } from "./settings.js";

export const ENVOY_FILTER_HEADER = `Puts egret.wasm in front of every outbound TCP connection of every sidecar in the mesh.
Apply this (the "mesh" phase) only once the control Deployment is Ready: istio-agent downloads
the module it names from control the moment istiod pushes it (docs/operations.md "Install").

- One ECDS resource (EXTENSION_CONFIG) holds the whole filter configuration: module URL and
  sha256, plugin configuration, failure policy. It is the ONLY place to edit them.
  istio-agent downloads the module from the control service, checks the sha256 and hands Envoy
  a local file; if the download fails, Istio >= 1.25 substitutes a deny-all RBAC network filter
  (stat prefix wasm-default-deny) and 1.20-1.24 reject (NACK) the configuration.
- The NETWORK_FILTER patches reference it by name in every SIDECAR_OUTBOUND filter chain:
  before tcp_proxy (per-port TCP chains, virtualOutbound-catchall-tcp and PassthroughFilterChain,
  i.e. traffic to external IPs that WasmPlugin never reaches) and before the HTTP connection
  manager (external IPs on a port where the mesh has an HTTP service go through an HTTP chain).
- The plugin configuration fields are in filter/assembly/egress/README.md. An unknown or invalid
  field makes the filter refuse its configuration, and with FAIL_CLOSED that closes every
  outbound connection: \`egret manifests\` runs it through the real filter before printing.
- Lives in Istio's root namespace so it applies mesh-wide; \`egret manifests --selector\` narrows it.`;

/** The plugin configuration every install starts from; InstallSettings.pluginConfig overrides keys. */
export const DEFAULT_PLUGIN_CONFIG: Readonly<Record<string, unknown>> = {
  // The TLS port: the DestinationRule (control/destinationrule.yaml) makes this cluster originate
  // TLS verified with the install's CA.
  controlCluster: `outbound|${GRPC_TLS_PORT}||${controlHost}`,
  controlAuthority: `${controlHost}:${GRPC_TLS_PORT}`,
  failureMode: "closed",
  lookupTimeoutMs: 250,
  forwardProxies: [],
};

/** With `sidecarTls: false`: the plaintext port, whose cluster the DestinationRule leaves plain. */
const PLAINTEXT_CONTROL: Readonly<Record<string, unknown>> = {
  controlCluster: `outbound|${GRPC_PORT}||${controlHost}`,
  controlAuthority: `${controlHost}:${GRPC_PORT}`,
};

/** The plugin configuration JSON the EnvoyFilter carries. */
export function pluginConfiguration(s: InstallSettings): Record<string, unknown> {
  return { ...DEFAULT_PLUGIN_CONFIG, ...(s.sidecarTls ? {} : PLAINTEXT_CONTROL), ...s.pluginConfig };
}

export const WASM_NETWORK_TYPE_URL = "type.googleapis.com/envoy.extensions.filters.network.wasm.v3.Wasm";
export const RBAC_NETWORK_TYPE_URL = "type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC";
/** The ECDS resource name the NETWORK_FILTER patches point at. */
export const EXTENSION_NAME = "egret.dev/egress";

function moduleCode(s: InstallSettings): Record<string, unknown> {
  if (s.delivery === "inline") return { local: { inline_bytes: s.wasmBase64 } };
  if (s.delivery === "volume") return { local: { filename: WASM_VOLUME_PATH } };
  return {
    remote: {
      http_uri: {
        // The sha256 in the query makes a new module a new URL, so istio-agent's cache never
        // serves a stale module after an upgrade.
        uri: `http://${controlHost}:${HTTP_PORT}/wasm/egret.wasm?sha256=${s.wasmSha256}${s.pushGeneration > 0 ? `&push=${s.pushGeneration}` : ""}`,
        // Not used: istio-agent fetches the module, Envoy never does.
        cluster: "_",
        timeout: "10s",
      },
      sha256: s.wasmSha256,
    },
  };
}

function extensionConfig(s: InstallSettings): Record<string, unknown> {
  return {
    applyTo: "EXTENSION_CONFIG",
    match: { context: "SIDECAR_OUTBOUND" },
    patch: {
      operation: "ADD",
      value: {
        name: EXTENSION_NAME,
        typed_config: {
          "@type": WASM_NETWORK_TYPE_URL,
          config: {
            name: "egret",
            root_id: "egret",
            // Own vm_id: shared data and queues get their own namespace (all WasmPlugins share "").
            vm_config: { vm_id: "egret", runtime: "envoy.wasm.runtime.v8", code: moduleCode(s) },
            configuration: {
              "@type": "type.googleapis.com/google.protobuf.StringValue",
              value: JSON.stringify(pluginConfiguration(s), null, 2),
            },
            // A trapped or unloadable VM closes connections instead of letting them through.
            failure_policy: "FAIL_CLOSED",
          },
        },
      },
    },
  };
}

/** Inserts the ECDS-delivered filter before `beforeFilter` in every outbound chain. */
function networkFilterBefore(beforeFilter: string): Record<string, unknown> {
  return {
    applyTo: "NETWORK_FILTER",
    match: { context: "SIDECAR_OUTBOUND", listener: { filterChain: { filter: { name: beforeFilter } } } },
    patch: {
      operation: "INSERT_BEFORE",
      value: {
        name: EXTENSION_NAME,
        config_discovery: {
          // initial_fetch_timeout 0 = wait for the module: a listener is never served without it.
          config_source: { ads: {}, initial_fetch_timeout: "0s", resource_api_version: "V3" },
          // RBAC: what istio-agent sends instead when the module cannot be fetched (deny all).
          type_urls: [WASM_NETWORK_TYPE_URL, RBAC_NETWORK_TYPE_URL],
        },
      },
    },
  };
}

export function envoyFilterObjects(s: InstallSettings): KubeObject[] {
  const selector = Object.keys(s.workloadSelector).length > 0 ? { workloadSelector: { labels: { ...s.workloadSelector } } } : {};
  return [{
    apiVersion: "networking.istio.io/v1alpha3",
    kind: "EnvoyFilter",
    metadata: { name: ENVOY_FILTER_NAME, namespace: s.istioRootNamespace, labels: labels("filter") },
    spec: {
      ...selector,
      configPatches: [
        extensionConfig(s),
        networkFilterBefore("envoy.filters.network.tcp_proxy"),
        networkFilterBefore("envoy.filters.network.http_connection_manager"),
      ],
    },
  }];
}
