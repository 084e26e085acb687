// Benchmark harness: every figure is printed beside a baseline measured in the same run, so the
// ratio holds on a noisy machine. Cases live in ./cases/*.ts and export `benchCase: BenchCase`.
import { performance } from "node:perf_hooks";

export interface Figure {
  /** What was measured, e.g. "filter decision per new connection". */
  name: string;
  value: number;
  unit: string;
  /** What the figure is compared with, measured in the same run. */
  baseline?: { name: string; value: number; unit: string };
  /** The goal from the issue, as text (e.g. "≤ 3 µs"), and whether the figure meets it. */
  target?: string;
  meetsTarget?: boolean;
  /** Extra numbers worth keeping (p99, allocations, counts). */
  extra?: Record<string, number | string>;
  /** For a target not met: why, what was tried, what it would take (printed under the table). */
  note?: string;
}

export interface BenchContext {
  /** Scale factor: 1 in a full run, smaller with --quick. */
  scale: number;
  log(msg: string): void;
}

export interface BenchCase {
  name: string;
  /** Returns figures, or a string saying why the case cannot run here. */
  run(ctx: BenchContext): Promise<Figure[] | string>;
}

export function quantile(sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.round(q * (sorted.length - 1))));
  return sorted[i];
}

export function summarize(samples: number[]): { p50: number; p99: number; mean: number; n: number } {
  const s = Float64Array.from(samples).sort();
  const mean = samples.reduce((a, b) => a + b, 0) / Math.max(1, samples.length);
  return { p50: quantile(s, 0.5), p99: quantile(s, 0.99), mean, n: samples.length };
}

/**
 * Median time per call in nanoseconds: runs `fn` in batches of `batch` calls, `rounds` times,
 * and takes the median batch (robust to GC pauses and the other core's noise).
 */
export function timePerCall(fn: () => void, batch: number, rounds = 31, warmup = 3): number {
  for (let i = 0; i < warmup; i++) for (let j = 0; j < batch; j++) fn();
  const per: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const t0 = performance.now();
    for (let j = 0; j < batch; j++) fn();
    per.push(((performance.now() - t0) * 1e6) / batch);
  }
  return summarize(per).p50;
}

export function fmt(v: number, unit: string): string {
  if (!Number.isFinite(v)) return `n/a`;
  const digits = v >= 100 ? 0 : v >= 10 ? 1 : 2;
  return `${v.toFixed(digits)} ${unit}`;
}
