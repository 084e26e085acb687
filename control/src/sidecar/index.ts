// `egret sidecar` as a library: start the host + proxy (+ admin) from a SidecarConfig.
import type http from "node:http";
import { EnvoyHost, LogLevel } from "../host/index.js";
import type { Logger } from "../common/log.js";
import { SidecarProxy } from "./proxy.js";
import { startAdmin } from "./admin.js";
import { EcdsFilter } from "./ecds.js";
import type { SidecarConfig } from "./options.js";

export { SidecarProxy, type ConnectionSummary, type DestinationMode, type SidecarStats } from "./proxy.js";
export { parseSidecarArgs, SIDECAR_USAGE, DEFAULT_WASM, type SidecarConfig } from "./options.js";
export { parseProxyV1 } from "./proxy-protocol.js";
export { loadOriginalDst } from "./original-dst.js";

const WASM_LEVEL: Record<string, number> = { trace: LogLevel.Trace, debug: LogLevel.Debug, info: LogLevel.Info, warn: LogLevel.Warn, error: LogLevel.Error };
const PINO_BY_WASM = ["trace", "debug", "info", "warn", "error", "fatal"] as const;

export interface RunningSidecar {
  host: EnvoyHost;
  /** With --ecds: the filter slot (pushes, state). */
  ecds?: EcdsFilter;
  proxy: SidecarProxy;
  listen: string;
  admin?: string;
  stop(): Promise<void>;
}

export async function startSidecar(config: SidecarConfig, logger: Logger): Promise<RunningSidecar> {
  const createHost = (wasm: string | Uint8Array) => EnvoyHost.create({
    wasm, pluginConfig: config.pluginConfig, vmConfig: config.vmConfig, vmId: config.vmId, rootId: config.rootId,
    pluginName: config.rootId, concurrency: config.concurrency, node: config.node, grpcClusters: config.grpcClusters,
    failurePolicy: config.failurePolicy, logLevel: WASM_LEVEL[config.logLevel] ?? LogLevel.Info, maxLogEntries: 1000,
    onLog: (e) => logger[PINO_BY_WASM[e.level] ?? "info"]({ vm: e.vm, wasm: !e.host, context: e.contextId }, e.message),
  });
  if (config.ecds) return startEcdsSidecar(config, logger, createHost);
  const host = await createHost(config.wasm);
  const proxy = new SidecarProxy({ host, listenHost: config.listen.host, listenPort: config.listen.port, mode: config.mode, logger, connectTimeoutMs: config.connectTimeoutMs, routes: config.routes });
  let listen: string;
  try { listen = await proxy.start(); } catch (e) { await host.close(); throw new Error(`cannot listen on ${config.listen.host}:${config.listen.port}: ${(e as Error).message}`); }
  let adminServer: http.Server | undefined;
  let admin: string | undefined;
  if (config.admin) {
    try { ({ server: adminServer, address: admin } = await startAdmin(() => host, proxy.stats, config.admin.host, config.admin.port)); } catch (e) {
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

/**
 * A sidecar whose module arrives through ECDS pushes (POST /ecds on the admin port) and is
 * downloaded like istio-agent does (ecds.ts). `host` is the module in force at start, if any.
 */
async function startEcdsSidecar(config: SidecarConfig, logger: Logger, createHost: (wasm: Uint8Array) => Promise<EnvoyHost>): Promise<RunningSidecar> {
  const ecdsConfig = config.ecds!;
  const ecds = new EcdsFilter({ failure: ecdsConfig.failure, createHost, logger, initial: ecdsConfig.url ? "warming" : "passthrough" });
  const proxy = new SidecarProxy({ filter: () => ecds.current(), listenHost: config.listen.host, listenPort: config.listen.port, mode: config.mode, logger, connectTimeoutMs: config.connectTimeoutMs, routes: config.routes });
  let listen: string;
  try { listen = await proxy.start(); } catch (e) { throw new Error(`cannot listen on ${config.listen.host}:${config.listen.port}: ${(e as Error).message}`); }
  let adminServer: http.Server;
  let admin: string;
  try { ({ server: adminServer, address: admin } = await startAdmin(() => ecds.host, proxy.stats, config.admin!.host, config.admin!.port, ecds)); } catch (e) {
    await proxy.stop();
    throw new Error(`cannot start admin on ${config.admin!.host}:${config.admin!.port}: ${(e as Error).message}`);
  }
  proxy.on("connection-closed", (s) => logger.info({ ...s }, "connection closed"));
  if (ecdsConfig.url) void ecds.push(ecdsConfig.url, ecdsConfig.sha256!);
  return {
    // The module in force (none before the first successful push).
    get host() { return ecds.host as EnvoyHost; },
    ecds, proxy, listen, admin,
    async stop() {
      await proxy.stop();
      await new Promise<void>((r) => adminServer.close(() => r()));
      await ecds.close();
    },
  };
}
