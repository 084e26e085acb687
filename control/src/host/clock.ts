// Time for the host: wall clock for proxy_get_current_time_nanoseconds, monotonic for WASI, and
// timers for ticks and gRPC deadlines. Tests inject ManualClock and advance it explicitly.

export interface TimerHandle { readonly id: number }

export interface Clock {
  /** Wall-clock time, ns since the epoch. */
  nowNs(): bigint;
  /** Monotonic time, ns. */
  monotonicNs(): bigint;
  setTimer(ms: number, fn: () => void): TimerHandle;
  clearTimer(handle: TimerHandle): void;
}

export class RealClock implements Clock {
  private readonly timers = new Map<number, NodeJS.Timeout>();
  private nextId = 1;
  nowNs(): bigint { return BigInt(Date.now()) * 1_000_000n + (process.hrtime.bigint() % 1_000_000n); }
  monotonicNs(): bigint { return process.hrtime.bigint(); }
  setTimer(ms: number, fn: () => void): TimerHandle {
    const id = this.nextId++;
    const t = setTimeout(() => { this.timers.delete(id); fn(); }, ms);
    t.unref();
    this.timers.set(id, t);
    return { id };
  }
  clearTimer(handle: TimerHandle): void {
    const t = this.timers.get(handle.id);
    if (t) { clearTimeout(t); this.timers.delete(handle.id); }
  }
}

/**
 * A clock that only moves when advance() is called; due timers fire in time order.
 *
 * Between two instants the event loop gets a turn, so network events that are ready (a gRPC
 * answer, a stream message) are delivered between two ticks of one advance(), as they would be
 * in Envoy where time passes while the dispatcher also serves sockets. advance() calls run one
 * after another, never interleaved.
 */
export class ManualClock implements Clock {
  private nowMs: number;
  private readonly timers = new Map<number, { at: number; fn: () => void }>();
  private nextId = 1;
  private queue: Promise<void> = Promise.resolve();
  constructor(startMs = Date.UTC(2026, 0, 1)) { this.nowMs = startMs; }
  nowNs(): bigint { return BigInt(Math.round(this.nowMs * 1000)) * 1000n; }
  monotonicNs(): bigint { return this.nowNs(); }
  setTimer(ms: number, fn: () => void): TimerHandle {
    const id = this.nextId++;
    this.timers.set(id, { at: this.nowMs + Math.max(0, ms), fn });
    return { id };
  }
  clearTimer(handle: TimerHandle): void { this.timers.delete(handle.id); }
  /** Moves time forward by `ms`, firing every timer that falls due (including re-armed ones). */
  advance(ms: number): Promise<void> {
    const run = this.queue.then(() => this.run(ms));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private dueAt(ms: number): boolean {
    for (const t of this.timers.values()) if (t.at <= ms) return true;
    return false;
  }

  private async run(ms: number): Promise<void> {
    const target = this.nowMs + ms;
    for (;;) {
      let nextId = -1, nextAt = Infinity;
      for (const [id, t] of this.timers) if (t.at <= target && t.at < nextAt) { nextAt = t.at; nextId = id; }
      if (nextId < 0) break;
      const t = this.timers.get(nextId)!;
      this.timers.delete(nextId);
      this.nowMs = Math.max(this.nowMs, t.at);
      t.fn();
      // Timers due at the same instant run in one pass, as an event loop runs every expired
      // timer before it polls sockets again; the sockets get their turn before time moves on.
      if (!this.dueAt(this.nowMs)) await new Promise<void>((resolve) => setImmediate(resolve));
    }
    this.nowMs = target;
  }
}
