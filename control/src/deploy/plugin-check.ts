// Runs a plugin configuration through the filter's own proxy_on_configure (egret.wasm in the Node
// proxy-wasm host, the way Envoy loads it), so `egret manifests` never renders a configuration
// the filter would refuse: with FAIL_CLOSED that refusal closes every outbound connection of
// every sidecar in the mesh.
import { EnvoyHost } from "../host/index.js";

/** Undefined when the filter accepts the configuration, else the filter's reason. */
export async function pluginConfigProblem(wasm: Uint8Array, pluginConfig: string, controlCluster: string): Promise<string | undefined> {
  let host: EnvoyHost | undefined;
  try {
    host = await EnvoyHost.create({
      wasm, pluginConfig, vmId: "egret", rootId: "egret", pluginName: "egret", concurrency: 1,
      node: { name: "egret-manifests-check", namespace: "egret-system", labels: {}, instanceIps: ["127.0.0.1"] },
      // The discard port: the filter's Watch fails at once; only configuration is checked.
      grpcClusters: { [controlCluster]: "127.0.0.1:9" },
      failurePolicy: "FAIL_CLOSED",
    });
    return undefined;
  } catch (err) {
    return (err as Error).message;
  } finally {
    await host?.close();
  }
}
