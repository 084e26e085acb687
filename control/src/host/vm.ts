// One proxy-wasm VM: a fresh instance of the module with its own memory, context ids, root
// context, timer and callouts (reference/proxy-wasm.md §6.1, §6.2). It owns the mechanics Envoy's
// C++ host provides around every callback: the current/effective context, deferred actions that
// run when the outermost VM call returns (§3.7), host-memory results via the module's malloc
// (§2.4), restricted hostcalls during _start and malloc (§1.5), and traps → failed VM (§6.6).
import { Status } from "./abi.js";
import type { HostServices } from "./services.js";
import { buildImports } from "./hostcalls.js";
import { VmMetrics } from "./metrics.js";
import type { TimerHandle } from "./clock.js";
import type { Callout } from "./grpc-callouts.js";

/** A context that lives in this VM. Streams point back at the connection they belong to. */
export interface VmContext {
  readonly id: number;
  readonly isRoot: boolean;
  /** The root context this context belongs to (a root: itself). */
  readonly rootId: number;
  readonly connection?: StreamOwner;
  /** Root only: onDone returned false; deletion waits for proxy_done. */
  deletionDeferred?: boolean;
  /** Stream only: on_delete ran; the id stays registered until the connection object goes (§6.2). */
  deleted?: boolean;
}

/** One root context of this VM: its configuration, timer and the streams opened under it (§6.1, §6.5). */
interface RootState {
  readonly id: number;
  readonly pluginConfig: Buffer;
  tickPeriodMs: number;
  tickTimer?: TimerHandle;
  /** Streams created under this root and not yet destroyed. */
  streams: number;
  /** Its configuration was replaced: shut it down once its last stream is gone. */
  retiring: boolean;
}

/** What a stream context needs from its connection for hostcalls (implemented by Connection). */
export interface StreamOwner {
  readonly connectionId: bigint;
  /** The live network buffer of that direction, or undefined outside its callback (§3.6). */
  liveBuffer(type: 2 | 3): Buffer | undefined;
  replaceBuffer(type: 2 | 3, data: Buffer): void;
  /** Properties visible from this connection (§4.3), merged over the root's. */
  property(segments: string[]): Buffer | undefined;
  setFilterState(path: string, value: Buffer): void;
  requestContinue(): void;
  requestClose(detail: string): void;
}

export class MemoryFault extends Error {}
/** Thrown from a hostcall the host does not allow in the current phase: traps the module. */
export class RestrictedCallback extends Error {}

export type VmPhase = "start" | "malloc" | null;

const DEFAULT_RESULT: Record<string, number> = { proxy_on_vm_start: 1, proxy_on_configure: 1, proxy_on_done: 1 };

export class WasmVm {
  failed = false;
  failure?: string;
  phase: VmPhase = null;
  /** The root context new connections are created under: the newest configuration's. */
  rootContextId = 0;
  readonly contexts = new Map<number, VmContext>();
  currentContextId = 0;
  effectiveContextId = 0;
  /** Buffers and maps that exist only during one callback (§3.6, §5). */
  pluginConfigReadable?: Buffer;
  grpcReceiveBuffer?: Buffer;
  grpcMetadata?: { type: number; pairs: [Buffer, Buffer][] };
  httpResponse?: { body: Buffer; headers: [Buffer, Buffer][]; trailers: [Buffer, Buffer][] };
  /** What proxy_get_status reports (the root's last callout outcome). */
  status = { code: 0, message: "" };
  readonly metrics: VmMetrics;
  readonly callouts = new Map<number, Callout>();

  private readonly instance: WebAssembly.Instance;
  private readonly exports: Record<string, unknown>;
  private nextContextId = 1; // 0 is the VM context
  private readonly nextToken = [0, 1, 2];
  private depth = 0;
  private readonly afterCall: (() => void)[] = [];
  private readonly roots = new Map<number, RootState>();

  constructor(readonly name: string, readonly services: HostServices, module: WebAssembly.Module) {
    this.metrics = new VmMetrics(services.stats);
    this.instance = new WebAssembly.Instance(module, buildImports(this, services.link.imports));
    this.exports = this.instance.exports as Record<string, unknown>;
  }

  get memory(): WebAssembly.Memory { return this.exports.memory as WebAssembly.Memory; }

  // --- lifecycle ----------------------------------------------------------------------------

  /** Runs `_initialize` (+ main) or `_start` with hostcalls restricted (§1.4, §1.5). */
  start(): boolean {
    const init = this.exports._initialize ? "_initialize" : this.exports._start ? "_start" : undefined;
    if (!init) return true;
    this.phase = "start";
    try {
      this.raw(init);
      if (init === "_initialize") {
        if (this.exports.main) this.raw("main", 0, 0);
        else if (this.exports.__main_void) this.raw("__main_void");
      }
    } catch (e) {
      this.fail(e);
    } finally {
      this.phase = null;
    }
    return !this.failed;
  }

  /**
   * Creates a root context for `pluginConfig` (default: the host's) and runs vm_start and
   * configure; false if any refused or trapped. A second call adds a second root context to this
   * VM, as Envoy does for a new plugin configuration with the same VM key (§6.1, §6.2); it
   * becomes the root of new connections.
   */
  createRoot(pluginConfig: Buffer = this.services.pluginConfig): { ok: boolean; reason?: string } {
    const id = this.nextContextId++;
    this.contexts.set(id, { id, isRoot: true, rootId: id });
    this.roots.set(id, { id, pluginConfig, tickPeriodMs: 0, streams: 0, retiring: false });
    this.call("proxy_on_context_create", id, id, 0);
    if (this.failed) return { ok: false, reason: this.failure };
    const started = this.call("proxy_on_vm_start", id, id, this.services.vmConfig.length);
    if (started === undefined) return { ok: false, reason: this.failure };
    if (started === 0) return { ok: false, reason: "proxy_on_vm_start returned false" };
    this.pluginConfigReadable = pluginConfig;
    let configured: number | undefined;
    try { configured = this.call("proxy_on_configure", id, id, pluginConfig.length); } finally { this.pluginConfigReadable = undefined; }
    if (configured === undefined) return { ok: false, reason: this.failure };
    if (configured === 0) return { ok: false, reason: "proxy_on_configure returned false (plugin configuration rejected)" };
    this.rootContextId = id;
    return { ok: true };
  }

  /** Root contexts alive in this VM (oldest first). */
  get rootIds(): number[] { return [...this.roots.keys()]; }

  /**
   * The configuration of `rootId` was replaced: it is shut down (on_done, then on_delete) once
   * the connections opened under it are gone; at once if there are none.
   */
  retireRoot(rootId: number): void {
    const root = this.roots.get(rootId);
    if (!root || root.retiring) return;
    root.retiring = true;
    if (root.streams === 0) this.shutdownRoot(root);
  }

  newStreamContext(owner: StreamOwner): number {
    const id = this.nextContextId++;
    const rootId = this.rootContextId;
    this.contexts.set(id, { id, isRoot: false, rootId, connection: owner });
    const root = this.roots.get(rootId);
    if (root) root.streams++;
    return id;
  }

  /**
   * on_done/on_log/on_delete for a stream (done's result is ignored for TCP, §1.4). The id stays
   * registered until Envoy destroys the context with the connection (its deferred deletion, at
   * the end of this event-loop turn): until then proxy_set_effective_context(id) still succeeds
   * (docs/reference/envoy-host-behaviour.md #7).
   */
  finishStream(id: number): void {
    const ctx = this.contexts.get(id);
    if (!ctx || ctx.deleted) return;
    if (!this.failed) {
      this.call("proxy_on_done", id, id);
      this.call("proxy_on_log", id, id);
      this.call("proxy_on_delete", id, id);
    }
    ctx.deleted = true;
    setImmediate(() => this.destroyStream(ctx));
  }

  /** Live (not yet deleted) stream contexts. */
  get liveStreams(): number {
    let n = 0;
    for (const c of this.contexts.values()) if (!c.isRoot && !c.deleted) n++;
    return n;
  }

  private destroyStream(ctx: VmContext): void {
    if (this.contexts.get(ctx.id) !== ctx) return;
    this.contexts.delete(ctx.id);
    const root = this.roots.get(ctx.rootId);
    if (!root) return;
    root.streams--;
    if (root.retiring && root.streams === 0) this.shutdownRoot(root);
  }

  /** Shuts the VM down: every root done (may defer until proxy_done), delete; cancels everything. */
  shutdown(): void {
    for (const c of this.callouts.values()) c.cancel();
    this.callouts.clear();
    for (const root of [...this.roots.values()]) this.shutdownRoot(root);
  }

  private shutdownRoot(root: RootState): void {
    this.stopTick(root);
    for (const [token, c] of this.callouts) if (c.rootId === root.id) { c.cancel(); this.callouts.delete(token); }
    const ctx = this.contexts.get(root.id);
    if (!ctx || ctx.deletionDeferred) return;
    if (this.failed) { this.forgetRoot(root.id); return; }
    const done = this.call("proxy_on_done", root.id, root.id);
    if (done !== 0) this.deleteRoot(root.id);
    else ctx.deletionDeferred = true;
  }

  /** Drops the VM without further callbacks (the canary, §6.1): timers and callouts stop. */
  discard(): void {
    for (const root of this.roots.values()) this.stopTick(root);
    for (const c of this.callouts.values()) c.cancel();
    this.callouts.clear();
    this.contexts.clear();
    this.roots.clear();
  }

  /** proxy_done from a root that deferred its deletion. */
  rootDone(): number {
    const root = this.contexts.get(this.activeRootId());
    if (!root?.deletionDeferred) return Status.NotFound;
    const id = root.id;
    this.afterCall.push(() => this.deleteRoot(id));
    return Status.Ok;
  }

  private deleteRoot(id: number): void {
    if (!this.contexts.has(id)) return;
    if (!this.failed) this.call("proxy_on_delete", id, id); // roots get no on_log (that is the access log of streams)
    this.forgetRoot(id);
  }

  private forgetRoot(id: number): void {
    this.contexts.delete(id);
    const root = this.roots.get(id);
    if (root) this.stopTick(root);
    this.roots.delete(id);
  }

  /** Whether `rootId` is still a live root context (callout answers for a deleted one are dropped). */
  hasRoot(rootId: number): boolean { return this.contexts.has(rootId) && this.roots.has(rootId); }

  // --- calling into the module ----------------------------------------------------------------

  /**
   * Calls an exported callback on behalf of `contextId`. Returns its i32 result (unsigned), the
   * host default when the module does not export it, or undefined if the VM failed (trap now or
   * earlier). Deferred actions run when the outermost call returns.
   */
  call(name: string, contextId: number, ...args: number[]): number | undefined {
    if (this.failed) return undefined;
    const fn = this.exports[name];
    if (typeof fn !== "function") return DEFAULT_RESULT[name] ?? 0;
    const savedCurrent = this.currentContextId, savedEffective = this.effectiveContextId;
    this.currentContextId = contextId;
    this.effectiveContextId = 0;
    this.depth++;
    let result: number | undefined;
    try {
      const r = (fn as (...a: number[]) => unknown)(...args);
      result = typeof r === "number" ? r >>> 0 : 0;
    } catch (e) {
      this.fail(e);
      result = undefined;
    } finally {
      this.depth--;
      this.currentContextId = savedCurrent;
      this.effectiveContextId = savedEffective; // reset after each callback (CPPH SaveRestoreContext)
    }
    if (this.depth === 0) this.runAfterCall();
    return this.failed ? undefined : result;
  }

  /** Queues an action for when the current outermost VM call returns, or runs it now (§3.7). */
  defer(action: () => void): void {
    if (this.depth > 0) this.afterCall.push(action);
    else action();
  }

  get inCall(): boolean { return this.depth > 0; }

  private runAfterCall(): void {
    while (this.afterCall.length > 0) {
      const action = this.afterCall.shift()!;
      if (!this.failed) action();
    }
  }

  private raw(name: string, ...args: number[]): unknown {
    return (this.exports[name] as (...a: number[]) => unknown)(...args);
  }

  fail(err: unknown): void {
    if (this.failed) return;
    this.failed = true;
    this.failure = err instanceof Error ? `${err.constructor.name}: ${err.message}` : String(err);
    this.afterCall.length = 0;
    for (const root of this.roots.values()) this.stopTick(root);
    for (const c of this.callouts.values()) c.cancel();
    this.callouts.clear();
    this.services.log({ vm: this.name, level: 5, message: `wasm VM failed: ${this.failure}`, contextId: this.currentContextId, host: true });
    this.services.onVmFailed(this);
  }

  // --- memory -----------------------------------------------------------------------------------

  u8(): Uint8Array { return new Uint8Array(this.memory.buffer); }

  read(ptr: number, len: number): Buffer {
    const mem = this.u8();
    ptr >>>= 0; len >>>= 0;
    if (ptr + len > mem.length) throw new MemoryFault(`read of ${len} bytes at ${ptr} is outside memory`);
    return Buffer.from(mem.subarray(ptr, ptr + len));
  }

  readString(ptr: number, len: number): string { return this.read(ptr, len).toString("utf8"); }

  writeBytes(ptr: number, data: Uint8Array): void {
    const mem = this.u8();
    ptr >>>= 0;
    if (ptr + data.length > mem.length) throw new MemoryFault(`write of ${data.length} bytes at ${ptr} is outside memory`);
    mem.set(data, ptr);
  }

  writeU32(ptr: number, v: number): void {
    const b = Buffer.alloc(4); b.writeUInt32LE(v >>> 0); this.writeBytes(ptr, b);
  }

  writeU64(ptr: number, v: bigint): void {
    const b = Buffer.alloc(8); b.writeBigUInt64LE(BigInt.asUintN(64, v)); this.writeBytes(ptr, b);
  }

  /**
   * Copies `data` into memory obtained from the module's malloc and writes (pointer, length) to the
   * out-parameters; an empty result writes 0/0 without allocating (§2.4).
   */
  copyOut(data: Uint8Array, ptrPtr: number, lenPtr: number): number {
    if (data.length === 0) { this.writeU32(ptrPtr, 0); this.writeU32(lenPtr, 0); return Status.Ok; }
    const ptr = this.malloc(data.length);
    if (ptr === 0) return Status.InvalidMemoryAccess;
    this.writeBytes(ptr, data);
    this.writeU32(ptrPtr, ptr);
    this.writeU32(lenPtr, data.length);
    return Status.Ok;
  }

  private malloc(size: number): number {
    const fn = (this.exports.malloc ?? this.exports.proxy_on_memory_allocate) as (n: number) => number;
    const saved = this.phase;
    this.phase = "malloc";
    try { return fn(size) >>> 0; } finally { this.phase = saved; }
  }

  // --- contexts, tokens, timers -----------------------------------------------------------------

  /** The context host calls act on: the effective one if set, else the callback's. */
  activeContext(): VmContext | undefined {
    return this.contexts.get(this.effectiveContextId || this.currentContextId);
  }

  /** The root context of the active context (Envoy's root_context()): callouts and timers belong to it. */
  activeRootId(): number {
    return this.activeContext()?.rootId ?? this.rootContextId;
  }

  nextCalloutToken(type: 0 | 1 | 2): number {
    do { this.nextToken[type] = (this.nextToken[type] + 4) >>> 0; } while (this.nextToken[type] === 0 || this.callouts.has(this.nextToken[type]));
    return this.nextToken[type];
  }

  /** The timer of the active context's root in this VM (§6.5). */
  setTickPeriod(ms: number): void {
    const root = this.roots.get(this.activeRootId());
    if (!root) return;
    this.stopTick(root);
    root.tickPeriodMs = ms;
    if (ms > 0 && !this.failed) this.armTick(root);
  }

  private stopTick(root: RootState): void {
    if (root.tickTimer) { this.services.clock.clearTimer(root.tickTimer); root.tickTimer = undefined; }
  }

  private armTick(root: RootState): void {
    root.tickTimer = this.services.clock.setTimer(root.tickPeriodMs, () => {
      root.tickTimer = undefined;
      if (this.failed || !this.hasRoot(root.id)) return;
      this.call("proxy_on_tick", root.id, root.id);
      if (root.tickPeriodMs > 0 && !root.tickTimer && !this.failed && this.hasRoot(root.id)) this.armTick(root);
    });
  }
}
