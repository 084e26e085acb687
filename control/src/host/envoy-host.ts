// EnvoyHost: runs one proxy-wasm network-filter plugin the way Envoy does in an Istio sidecar
// (reference/proxy-wasm.md §6.1): a base VM (_start only), a canary VM that must configure
// successfully (then is discarded), one VM on the "main thread" and one per worker, each with its
// own root context. Connections are spread over the worker VMs. See README.md for the API.
import { readFile } from "node:fs/promises";
import { RealClock, ManualClock, type Clock } from "./clock.js";
import { StatStore } from "./metrics.js";
import { SharedData, SharedQueues } from "./shared-state.js";
import { GrpcChannels, type ClusterEndpoints } from "./grpc-callouts.js";
import { linkCheck, LinkError } from "./link.js";
import { WasmVm } from "./vm.js";
import { Connection, type ConnectionOptions, type FailurePolicy } from "./connection.js";
import { int, str, nodeMessage, map, type NodeIdentity, type PropValue } from "./properties.js";
import type { HostServices, LogEntry } from "./services.js";
import { logLevelName } from "./hostcalls.js";

export interface EnvoyHostOptions {
  /** Path to the .wasm file, or its bytes. */
  wasm: string | Uint8Array;
  /** Plugin configuration bytes (buffer 7 in proxy_on_configure); strings are UTF-8. */
  pluginConfig?: string | Uint8Array;
  /** VM configuration bytes (buffer 6). */
  vmConfig?: string | Uint8Array;
  /** Scope of shared data and queues (§6.3). Istio WasmPlugins use "". */
  vmId?: string;
  rootId?: string;
  pluginName?: string;
  /** Worker VMs (Envoy --concurrency); a main-thread VM is always added. Default 2. */
  concurrency?: number;
  /** The pod this sidecar belongs to: xds.node.* properties (§4.3). */
  node?: NodeIdentity;
  /**
   * gRPC cluster name → its endpoint "host:port", or several (replicas: each call and stream is
   * load balanced least-request, as Istio's default; §5, docs/reference/envoy-grpc.md).
   */
  grpcClusters?: Record<string, ClusterEndpoints>;
  /** Random source of the least-request choice (tests make it deterministic). Default Math.random. */
  lbRandom?: () => number;
  /**
   * Source address of gRPC connections (Envoy's cluster_manager.upstream_bind_config): control
   * binds a filter to the pod that owns it. Any 127.0.0.0/8 address on one machine.
   */
  grpcSourceAddress?: string;
  clock?: Clock;
  /** What a failed VM does to connections (§6.2). Default FAIL_CLOSED (Istio's FAIL_CLOSE). */
  failurePolicy?: FailurePolicy;
  /** proxy_get_log_level and the level below which proxy_log is dropped. Default 0 (trace). */
  logLevel?: number;
  /** WASI environment (VmConfig.environment_variables). */
  environment?: Record<string, string>;
  /** Also serve the pre-Envoy-1.33 top-level `node`, `listener_direction` properties (§4.3). */
  legacyNodeProperties?: boolean;
  /** Called for every log line (e.g. to forward to pino); logs() keeps the last maxLogEntries. */
  onLog?: (entry: LogEntry) => void;
  maxLogEntries?: number;
}

export interface VmStatus {
  name: string; failed: boolean; failure?: string;
  /** The root context new connections get (the newest configuration's). */
  rootContextId: number;
  /** Every live root context, oldest first (more than one after reconfigure(), until the old ones drain). */
  rootContextIds: number[];
  /** Live contexts: roots plus streams not yet deleted. */
  liveContexts: number;
}

export class EnvoyHost {
  private readonly logEntries: LogEntry[] = [];
  private droppedLogs = 0;
  private readonly connections = new Set<Connection>();
  private nextWorker = 0;
  private closed = false;

  /** Internal: use EnvoyHost.create (public only so `InstanceType<typeof EnvoyHost>` works). */
  constructor(
    private readonly services: HostServices,
    private readonly grpc: GrpcChannels,
    readonly mainVm: WasmVm,
    readonly workers: WasmVm[],
    private readonly options: EnvoyHostOptions,
    private readonly maxLogs: number,
    private readonly module: WebAssembly.Module,
  ) {}

  /** How many times a failed worker VM was replaced (FAIL_RELOAD). */
  reloads = 0;

  /** Loads, links and starts the plugin; rejects when Envoy would refuse it. */
  static async create(options: EnvoyHostOptions): Promise<EnvoyHost> {
    const bytes = typeof options.wasm === "string" ? await readWasm(options.wasm) : options.wasm;
    const link = linkCheck(bytes);
    let module: WebAssembly.Module;
    try { module = await WebAssembly.compile(new Uint8Array(bytes)); } catch (e) { throw new LinkError(`invalid WebAssembly module: ${(e as Error).message}`); }
    const concurrency = options.concurrency ?? 2;
    if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 64) throw new Error(`concurrency must be an integer from 1 to 64, got ${concurrency}`);
    const logLevel = options.logLevel ?? 0;
    const maxLogs = options.maxLogEntries ?? 10_000;
    const grpc = await GrpcChannels.create(options.grpcClusters ?? {}, options.grpcSourceAddress, options.lbRandom);
    let host: EnvoyHost | undefined;
    const pending: LogEntry[] = [];
    const services: HostServices = {
      clock: options.clock ?? new RealClock(),
      stats: new StatStore(),
      sharedData: new SharedData(),
      queues: new SharedQueues(),
      grpc,
      vmId: options.vmId ?? "",
      vmConfig: toBytes(options.vmConfig),
      pluginConfig: toBytes(options.pluginConfig),
      environment: options.environment ?? {},
      logLevel,
      rootProperties: rootProperties(options),
      link: { abi: link.abi, imports: link.imports },
      log: (entry) => (host ? host.record(entry) : pending.push(entry)),
      onVmFailed: () => undefined,
    };
    const fail = (vm: WasmVm, why: string): never => {
      grpc.close();
      const lines = pending.filter((e) => e.level >= 3).map((e) => `  [${e.vm}] ${logLevelName(e.level)}: ${e.message}`).join("\n");
      throw new Error(`plugin rejected in the ${vm.name} VM: ${why}${lines ? `\n${lines}` : ""}`);
    };
    // Base VM: _start only (§6.1).
    const base = new WasmVm("base", services, module);
    if (!base.start()) fail(base, base.failure ?? "start failed");
    // Canary: must configure; its side effects stay, the VM is discarded.
    const canary = new WasmVm("canary", services, module);
    if (!canary.start()) fail(canary, canary.failure ?? "start failed");
    const canaryRoot = canary.createRoot();
    canary.discard();
    if (!canaryRoot.ok) fail(canary, canaryRoot.reason ?? "configure failed");
    const vms: WasmVm[] = [];
    for (const name of ["main", ...Array.from({ length: concurrency }, (_, i) => `worker-${i}`)]) {
      const vm = new WasmVm(name, services, module);
      if (!vm.start()) fail(vm, vm.failure ?? "start failed");
      const r = vm.createRoot();
      if (!r.ok) fail(vm, r.reason ?? "configure failed");
      vms.push(vm);
    }
    host = new EnvoyHost(services, grpc, vms[0], vms.slice(1), options, maxLogs, module);
    for (const e of pending) host.record(e);
    return host;
  }

  /** Opens a downstream connection on a worker VM (round-robin unless `worker` is given). */
  openConnection(options: ConnectionOptions): Connection {
    if (this.closed) throw new Error("EnvoyHost is closed");
    const index = options.worker ?? this.nextWorker++ % this.workers.length;
    let vm = this.workers[index];
    if (!vm) throw new Error(`no worker ${index}: concurrency is ${this.workers.length}`);
    if (vm.failed && this.options.failurePolicy === "FAIL_RELOAD") vm = this.reload(index);
    const c = new Connection(vm, options, this.options.failurePolicy ?? "FAIL_CLOSED", (done) => this.connections.delete(done));
    this.connections.add(c);
    c.open();
    return c;
  }

  /**
   * Advances an injected ManualClock by `ms`, firing due ticks and timers (tests); network answers
   * that are ready arrive between two timers, as in Envoy.
   */
  tick(ms: number): Promise<void> {
    if (!(this.services.clock instanceof ManualClock)) throw new Error("host.tick() needs EnvoyHostOptions.clock = new ManualClock()");
    return this.services.clock.advance(ms);
  }

  /** Active gRPC/HTTP callouts per endpoint, and how many client connections exist (one per VM × endpoint). */
  grpcUsage(): { active: Map<string, number>; clients: number } {
    return { active: this.grpc.activeRequests(), clients: this.grpc.clientCount };
  }

  /**
   * A new plugin configuration with the same VM key, as a listener update delivers it (§6.1,
   * §6.2; docs/reference/envoy-host-behaviour.md #6): a canary VM must accept it (otherwise it
   * is rejected and nothing changes); then every VM gets a second root context configured with it,
   * which new connections use. Connections already open keep their root; each VM's old root is
   * shut down (on_done, on_delete) once the last of them has closed.
   */
  reconfigure(pluginConfig: string | Uint8Array): { ok: boolean; reason?: string } {
    if (this.closed) throw new Error("EnvoyHost is closed");
    const bytes = toBytes(pluginConfig);
    const canary = new WasmVm("canary", this.services, this.module);
    const started = canary.start();
    const r = started ? canary.createRoot(bytes) : { ok: false, reason: canary.failure ?? "start failed" };
    canary.discard();
    if (!r.ok) {
      this.record({ vm: "canary", level: 4, message: `new plugin configuration rejected: ${r.reason}`, host: true });
      return { ok: false, reason: r.reason };
    }
    for (const vm of [this.mainVm, ...this.workers]) {
      if (vm.failed) continue;
      const old = vm.rootIds;
      const added = vm.createRoot(bytes);
      if (!added.ok) {
        this.record({ vm: vm.name, level: 4, message: `configuring the new root context failed: ${added.reason}`, host: true });
        continue;
      }
      for (const id of old) vm.retireRoot(id);
    }
    this.currentPluginConfig = bytes;
    return { ok: true };
  }

  private currentPluginConfig?: Buffer;

  /** FAIL_RELOAD: a fresh VM for a failed worker (Envoy reloads with backoff; here at once). */
  private reload(index: number): WasmVm {
    const old = this.workers[index];
    const vm = new WasmVm(old.name, this.services, this.module);
    const ok = vm.start() && vm.createRoot(this.currentPluginConfig).ok;
    if (!ok) {
      this.record({ vm: old.name, level: 4, message: `wasm VM reload failed: ${vm.failure ?? "configure refused"}`, host: true });
      return old; // still failed: its connections are closed
    }
    this.reloads++;
    this.record({ vm: old.name, level: 3, message: `wasm VM reloaded after failure: ${old.failure}`, host: true });
    this.workers[index] = vm;
    return vm;
  }

  /** Live connections. */
  get openConnections(): number { return this.connections.size; }

  /** Log lines (oldest first), optionally only those at `minLevel` or above. */
  logs(minLevel = 0): LogEntry[] { return this.logEntries.filter((e) => e.level >= minLevel); }

  /** Log messages as plain strings (handy in assertions). */
  logLines(minLevel = 0): string[] { return this.logs(minLevel).map((e) => e.message); }

  clearLogs(): void { this.logEntries.length = 0; }

  /** Value of `wasmcustom.<name>` (counter/gauge; histogram → sample count). */
  metric(name: string): number | undefined { return this.services.stats.get(name); }

  /** Every custom stat: full Envoy name → value. */
  metrics(): Map<string, number> {
    const out = new Map<string, number>();
    for (const s of this.services.stats.stats.values()) out.set(s.name, s.kind === "histogram" ? s.sampleCount : Number(s.value));
    return out;
  }

  /** Prometheus text as Envoy's /stats/prometheus renders the wasmcustom namespace (§8). */
  prometheus(): string { return this.services.stats.prometheus(); }

  /** Shared data as the VMs see it (§6.3). */
  sharedData(key: string): { value: Buffer; cas: number } | undefined { return this.services.sharedData.get(this.services.vmId, key); }

  vmStatus(): VmStatus[] {
    return [this.mainVm, ...this.workers].map((vm) => ({ name: vm.name, failed: vm.failed, failure: vm.failure, rootContextId: vm.rootContextId, rootContextIds: vm.rootIds, liveContexts: vm.rootIds.length + vm.liveStreams }));
  }

  get droppedLogCount(): number { return this.droppedLogs; }

  /** Closes every connection, stops ticks, cancels callouts, deletes the root contexts. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const c of [...this.connections]) c.abort();
    for (const vm of [this.mainVm, ...this.workers]) vm.shutdown();
    this.grpc.close();
  }

  private record(entry: LogEntry): void {
    this.logEntries.push(entry);
    if (this.logEntries.length > this.maxLogs) { this.logEntries.shift(); this.droppedLogs++; }
    this.options.onLog?.(entry);
  }
}

async function readWasm(path: string): Promise<Uint8Array> {
  try {
    return new Uint8Array(await readFile(path));
  } catch (e) {
    throw new Error(`cannot read wasm module ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message} (build it with npm run build)`);
  }
}

function toBytes(v: string | Uint8Array | undefined): Buffer {
  if (v === undefined) return Buffer.alloc(0);
  return typeof v === "string" ? Buffer.from(v, "utf8") : Buffer.from(v);
}

/** Properties every context sees (§4.3): plugin identity and the Istio node. */
function rootProperties(o: EnvoyHostOptions): Map<string, PropValue> {
  const m = new Map<string, PropValue>();
  m.set("plugin_name", str(o.pluginName ?? "egret"));
  m.set("plugin_root_id", str(o.rootId ?? "egret"));
  m.set("plugin_vm_id", str(o.vmId ?? ""));
  const node = nodeMessage(o.node ?? {});
  m.set("xds", map({ node, listener_direction: int(2) })); // OUTBOUND
  if (o.legacyNodeProperties) { m.set("node", node); m.set("listener_direction", int(2)); }
  return m;
}
