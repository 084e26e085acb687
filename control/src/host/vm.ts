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
  readonly connection?: StreamOwner;
  /** Root only: onDone returned false; deletion waits for proxy_done. */
  deletionDeferred?: boolean;
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
  rootContextId = 0;
  readonly contexts = new Map<number, VmContext>();
  currentContextId = 0;
  effectiveContextId = 0;
  /** Buffers and maps that exist only during one callback (§3.6, §5). */
  pluginConfigReadable = false;
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
  private tickPeriodMs = 0;
  private tickTimer?: TimerHandle;

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

  /** Creates the root context and runs vm_start and configure; false if any refused or trapped. */
  createRoot(): { ok: boolean; reason?: string } {
    const id = this.nextContextId++;
    this.rootContextId = id;
    this.contexts.set(id, { id, isRoot: true });
    this.call("proxy_on_context_create", id, id, 0);
    if (this.failed) return { ok: false, reason: this.failure };
    const started = this.call("proxy_on_vm_start", id, id, this.services.vmConfig.length);
    if (started === undefined) return { ok: false, reason: this.failure };
    if (started === 0) return { ok: false, reason: "proxy_on_vm_start returned false" };
    this.pluginConfigReadable = true;
    let configured: number | undefined;
    try { configured = this.call("proxy_on_configure", id, id, this.services.pluginConfig.length); } finally { this.pluginConfigReadable = false; }
    if (configured === undefined) return { ok: false, reason: this.failure };
    if (configured === 0) return { ok: false, reason: "proxy_on_configure returned false (plugin configuration rejected)" };
    return { ok: true };
  }

  newStreamContext(owner: StreamOwner): number {
    const id = this.nextContextId++;
    this.contexts.set(id, { id, isRoot: false, connection: owner });
    return id;
  }

  /** on_done/on_log/on_delete for a stream (done's result is ignored for TCP, §1.4). */
  finishStream(id: number): void {
    if (!this.failed) {
      this.call("proxy_on_done", id, id);
      this.call("proxy_on_log", id, id);
      this.call("proxy_on_delete", id, id);
    }
    this.contexts.delete(id);
  }

  /** Shuts the VM down: root done (may defer until proxy_done), log, delete; cancels everything. */
  shutdown(): void {
    this.setTickPeriod(0);
    for (const c of this.callouts.values()) c.cancel();
    this.callouts.clear();
    const root = this.contexts.get(this.rootContextId);
    if (root && !this.failed) {
      const done = this.call("proxy_on_done", root.id, root.id);
      if (done !== 0) this.deleteRoot();
      else root.deletionDeferred = true;
    }
  }

  /** Drops the VM without further callbacks (the canary, §6.1): timers and callouts stop. */
  discard(): void {
    this.setTickPeriod(0);
    for (const c of this.callouts.values()) c.cancel();
    this.callouts.clear();
    this.contexts.clear();
  }

  /** proxy_done from a root that deferred its deletion. */
  rootDone(): number {
    const root = this.contexts.get(this.rootContextId);
    if (!root?.deletionDeferred) return Status.NotFound;
    this.afterCall.push(() => this.deleteRoot());
    return Status.Ok;
  }

  private deleteRoot(): void {
    const id = this.rootContextId;
    if (!this.contexts.has(id)) return;
    if (!this.failed) this.call("proxy_on_delete", id, id); // roots get no on_log (that is the access log of streams)
    this.contexts.delete(id);
  }

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
    this.setTickPeriod(0);
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

  nextCalloutToken(type: 0 | 1 | 2): number {
    do { this.nextToken[type] = (this.nextToken[type] + 4) >>> 0; } while (this.nextToken[type] === 0 || this.callouts.has(this.nextToken[type]));
    return this.nextToken[type];
  }

  /** The root's timer in this VM (§6.5). */
  setTickPeriod(ms: number): void {
    this.tickPeriodMs = ms;
    if (this.tickTimer) { this.services.clock.clearTimer(this.tickTimer); this.tickTimer = undefined; }
    if (ms > 0 && !this.failed) this.armTick();
  }

  private armTick(): void {
    this.tickTimer = this.services.clock.setTimer(this.tickPeriodMs, () => {
      this.tickTimer = undefined;
      if (this.failed || !this.contexts.has(this.rootContextId)) return;
      this.call("proxy_on_tick", this.rootContextId, this.rootContextId);
      if (this.tickPeriodMs > 0 && !this.tickTimer && !this.failed) this.armTick();
    });
  }
}
