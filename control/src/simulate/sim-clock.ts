// The capture's clock, for replaying a capture through the filter host. Time only moves when the
// replay says so (to the next packet's timestamp). Timers fire as in a sidecar: each at its due
// time, in order, re-armed periodic ones included, so a tick sees the real time it fires at and a
// deadline is noticed by the first tick after it. Over a long quiet gap (more than MAX_FIRES_PER_ADVANCE
// firings) the rest is coalesced: each due timer fires once more at the end of the gap — still a
// real time, never a stale due time — so an hour of silence does not run 72,000 ticks.
import type { Clock, TimerHandle } from "../host/clock.js";

/** Firings replayed one by one per advance (200 ticks of 50 ms = 10 s of exact tick times). */
export const MAX_FIRES_PER_ADVANCE = 200;

export class SimClock implements Clock {
  private nowMs: number;
  private readonly timers = new Map<number, { at: number; fn: () => void }>();
  private nextId = 1;

  constructor(startMs: number) {
    this.nowMs = startMs;
  }

  get ms(): number {
    return this.nowMs;
  }

  nowNs(): bigint {
    return BigInt(Math.round(this.nowMs * 1000)) * 1000n;
  }

  monotonicNs(): bigint {
    return this.nowNs();
  }

  setTimer(ms: number, fn: () => void): TimerHandle {
    const id = this.nextId++;
    this.timers.set(id, { at: this.nowMs + Math.max(0, ms), fn });
    return { id };
  }

  clearTimer(handle: TimerHandle): void {
    this.timers.delete(handle.id);
  }

  /** Moves to `ms` (never backwards), firing due timers at their due times (see the header). */
  advanceTo(ms: number): void {
    if (!(ms > this.nowMs)) return;
    for (let fired = 0; fired < MAX_FIRES_PER_ADVANCE; fired++) {
      const next = this.earliestDue(ms);
      if (!next) break;
      this.timers.delete(next[0]);
      this.nowMs = Math.max(this.nowMs, next[1].at);
      next[1].fn();
    }
    // Coalesced remainder: the gap's end is the real time these firings happen at.
    this.nowMs = ms;
    const due = [...this.timers].filter(([, t]) => t.at <= ms).sort((a, b) => a[1].at - b[1].at);
    for (const [id, t] of due) {
      if (!this.timers.has(id)) continue;
      this.timers.delete(id);
      t.fn();
    }
  }

  private earliestDue(ms: number): [number, { at: number; fn: () => void }] | undefined {
    let best: [number, { at: number; fn: () => void }] | undefined;
    for (const e of this.timers) if (e[1].at <= ms && (!best || e[1].at < best[1].at)) best = e;
    return best;
  }
}
