// The benchmark harness's statistics (bench/harness.ts): quantiles over sorted samples, summaries
// of unsorted samples, and number formatting. Benchmarks themselves are not tests; these helpers are
// what every published p50/p99 goes through, so they are.
import { test } from "node:test";
import assert from "node:assert/strict";
import { fmt, quantile, summarize, timePerCall } from "../../../bench/harness.js";

test("quantile: nearest rank over sorted samples, clamped to the ends", () => {
  const s = Float64Array.from({ length: 101 }, (_, i) => i * 10); // 0, 10, …, 1000
  assert.equal(quantile(s, 0), 0);
  assert.equal(quantile(s, 0.5), 500);
  assert.equal(quantile(s, 0.99), 990);
  assert.equal(quantile(s, 1), 1000);
  assert.equal(quantile(s, -1), 0);
  assert.equal(quantile(s, 2), 1000);
  assert.equal(quantile([7], 0.99), 7);
  assert.ok(Number.isNaN(quantile([], 0.5)));
});

test("summarize sorts numerically (not as strings) and reports p50, p99, mean and count", () => {
  // As strings, 100 < 20 < 3; numerically the median is 20.
  const r = summarize([100, 3, 20]);
  assert.deepEqual(r, { p50: 20, p99: 100, mean: 41, n: 3 });
  const many = Array.from({ length: 1000 }, (_, i) => 1000 - i); // 1000 … 1, unsorted
  const m = summarize(many);
  assert.equal(m.p50, 501);
  assert.equal(m.p99, 990);
  assert.equal(m.mean, 500.5);
  assert.equal(m.n, 1000);
  // The caller's array is not reordered.
  assert.equal(many[0], 1000);
  const empty = summarize([]);
  assert.equal(empty.n, 0);
  assert.ok(Number.isNaN(empty.p50));
});

test("timePerCall calls fn (warm-up + rounds) × batch times and returns a per-call time", () => {
  let calls = 0;
  const ns = timePerCall(() => { calls++; }, 10, 5, 2);
  assert.equal(calls, (2 + 5) * 10);
  assert.ok(Number.isFinite(ns) && ns >= 0);
});

test("fmt: digits shrink as values grow; non-finite values print n/a", () => {
  assert.equal(fmt(1234.5, "k/s"), "1235 k/s");
  assert.equal(fmt(12.345, "µs"), "12.3 µs");
  assert.equal(fmt(1.2345, "ms"), "1.23 ms");
  assert.equal(fmt(NaN, "ms"), "n/a");
  assert.equal(fmt(Infinity, "ms"), "n/a");
});
