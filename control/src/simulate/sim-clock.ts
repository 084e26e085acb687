// The capture's clock, for replaying a capture through the filter host. Time only moves when the
// replay says so (to the next packet's timestamp). Periodic timers (the filter's ticks) are
// coalesced across long quiet gaps: a timer fires at most once per advance, at the new time, which
// is all a deadline check needs — replaying an hour of silence does not run 72,000 ticks.
import type { Clock, TimerHandle } from "../host/clock.js";

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

  /** Moves to `ms` (never backwards) and fires every timer due by then, each at most once. */
  advanceTo(ms: number): void {
    if (!(ms > this.nowMs)) return;
    const due = [...this.timers].filter(([, t]) => t.at <= ms).sort((a, b) => a[1].at - b[1].at);
    for (const [id, t] of due) {
      if (!this.timers.has(id)) continue;
      this.timers.delete(id);
      // Fire at its own due time when that is close, else at the end of the gap (coalesced).
      this.nowMs = Math.max(this.nowMs, Math.min(ms, t.at));
      t.fn();
    }
    this.nowMs = ms;
  }
}
