// `egret sidecar` as a library: start the host + proxy (+ admin) from a SidecarConfig.
import type http from "node:http";
import { EnvoyHost, LogLevel } from "../host/index.js";
import type { Logger } from "../common/log.js";
import { SidecarProxy } from "./proxy.js";
import { startAdmin } from "./admin.js";
import type { SidecarConfig } from "./options.js";

export { SidecarProxy, type ConnectionSummary, type DestinationMode, type SidecarStats } from "./proxy.js";
export { parseSidecarArgs, SIDECAR_USAGE, DEFAULT_WASM, type SidecarConfig } from "./options.js";
export { parseProxyV1 } from "./proxy-protocol.js";
export { loadOriginalDst } from "./original-dst.js";

const WASM_LEVEL: Record<string, number> = { trace: LogLevel.Trace, debug: LogLevel.Debug, info: LogLevel.Info, warn: LogLevel.Warn, error: LogLevel.Error };
const PINO_BY_WASM = ["trace", "debug", "info", "warn", "error", "fatal"] as const;

export interface RunningSidecar {
  host: EnvoyHost;
  proxy: SidecarProxy;
  listen: string;
  admin?: string;
  stop(): Promise<void>;
}

export async function startSidecar(config: SidecarConfig, logger: Logger): Promise<RunningSidecar> {
  const host = await EnvoyHost.create({
    wasm: config.wasm, pluginConfig: config.pluginConfig, vmConfig: config.vmConfig, vmId: config.vmId, rootId: config.rootId,
    pluginName: config.rootId, concurrency: config.concurrency, node: config.node, grpcClusters: config.grpcClusters,
    failurePolicy: config.failurePolicy, logLevel: WASM_LEVEL[config.logLevel] ?? LogLevel.Info, maxLogEntries: 1000,
    onLog: (e) => logger[PINO_BY_WASM[e.level] ?? "info"]({ vm: e.vm, wasm: !e.host, context: e.contextId }, e.message),
  });
  const proxy = new SidecarProxy({ host, listenHost: config.listen.host, listenPort: config.listen.port, mode: config.mode, logger, connectTimeoutMs: config.connectTimeoutMs, routes: config.routes });
  let listen: string;
  try { listen = await proxy.start(); } catch (e) { await host.close(); throw new Error(`cannot listen on ${config.listen.host}:${config.listen.port}: ${(e as Error).message}`); }
  let adminServer: http.Server | undefined;
  let admin: string | undefined;
  if (config.admin) {
    try { ({ server: adminServer, address: admin } = await startAdmin(host, proxy.stats, config.admin.host, config.admin.port)); } catch (e) {
      await proxy.stop(); await host.close();
      throw new Error(`cannot start admin on ${config.admin.host}:${config.admin.port}: ${(e as Error).message}`);
    }
  }
  proxy.on("connection-closed", (s) => logger.info({ ...s }, "connection closed"));
  return {
    host, proxy, listen, admin,
    async stop() {
      await proxy.stop();
      if (adminServer) await new Promise<void>((r) => adminServer!.close(() => r()));
      await host.close();
    },
  };
}
