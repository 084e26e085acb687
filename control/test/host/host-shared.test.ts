// Shared data, shared queues, ticks and metrics across VMs (reference/proxy-wasm.md §6.3–§6.5, §8).
import { test } from "node:test";
import assert from "node:assert/strict";
import { ManualClock, promName } from "../../src/host/index.js";
import { eventually, lines, openConnected, probeHost } from "./helpers.js";

// Test shared-data CAS rules: new key regardless of cas, stale cas → CasMismatch (8), current cas → Ok (§6.3).
test("shared data: create ignores cas, stale cas mismatches, current cas writes; visible across VMs", async () => {
  const host = await probeHost("shared", { concurrency: 1, vmId: "probe" });
  try {
    // The canary created the key; later VMs see it (same vm_id), so their "new" write needs no cas.
    assert.deepEqual(lines(host, "shared ", "canary"), ["shared new=0 get=0:v1 stale=8 cas=0 missing=1"]);
    assert.deepEqual(lines(host, "shared ", "main"), ["shared new=8 get=0:v3 stale=8 cas=0 missing=1"]);
    assert.equal(host.sharedData("probe.key")!.value.toString(), "v3");
  } finally { await host.close(); }
});

// Test that shared data is scoped by vm_id (§6.3).
test("shared data is scoped by vm_id", async () => {
  const a = await probeHost("shared", { concurrency: 1, vmId: "a" });
  try {
    assert.equal(a.sharedData("probe.key")!.value.toString(), "v3");
    assert.equal(a.sharedData("other"), undefined);
  } finally { await a.close(); }
});

// Test queues: the last registrant receives on_queue_ready, asynchronously, and dequeue drains to Empty (§6.4).
test("shared queue: last registrant gets on_queue_ready asynchronously", async () => {
  const host = await probeHost("queue", { concurrency: 2 });
  try {
    const reg = lines(host, "queue registered");
    assert.ok(reg.every((l) => l === "queue registered token=1 resolve=1 missing=0"), reg.join("\n"));
    const c = await openConnected(host, { source: "10.0.0.1:1000", destination: "198.18.0.1:80", worker: 0 });
    c.downstreamData(Buffer.from("job1"));
    assert.deepEqual(lines(host, "enqueue="), ["enqueue=0 bad=1"]);
    assert.equal(lines(host, "queue_ready").length, 0, "delivery is never inline");
    await eventually(() => lines(host, "queue_ready").length > 0, 10_000, "queue delivery");
    const ready = host.logs().filter((e) => e.message.startsWith("queue_ready"));
    assert.deepEqual(ready.map((e) => [e.vm, e.message]), [["worker-1", "queue_ready token=1 item=job1 then=7"]]);
  } finally { await host.close(); }
});

// Test ticks: one timer per VM root, fired by the injected clock, stoppable with period 0 (§6.5).
test("ticks fire once per VM per period and stop at period 0", async () => {
  const clock = new ManualClock();
  const host = await probeHost("tick=100 tick-stop=3", { concurrency: 2, clock });
  try {
    assert.ok(lines(host, "set_tick status=").every((l) => l === "set_tick status=0"));
    await clock.advance(99);
    assert.equal(lines(host, "tick ").length, 0);
    await clock.advance(1);
    assert.deepEqual(host.logs().filter((e) => e.message.startsWith("tick 1 ")).map((e) => e.vm).sort(), ["main", "worker-0", "worker-1"]);
    await clock.advance(1000);
    for (const vm of ["main", "worker-0", "worker-1"]) assert.equal(lines(host, "tick ", vm).length, 3, `${vm} stopped after 3 ticks`);
    // proxy_get_current_time_nanoseconds follows the injected clock.
    const t1 = Number(/now_ms=(\d+)/.exec(lines(host, "tick 1 ", "main")[0])![1]);
    const t2 = Number(/now_ms=(\d+)/.exec(lines(host, "tick 2 ", "main")[0])![1]);
    assert.equal(t2 - t1, 100);
  } finally { await host.close(); }
});

// Test metric semantics: counters reject delta 0, histograms reject increment/get; values add up across VMs (§8).
test("metrics: Envoy semantics, process-wide values, wasmcustom naming in Prometheus text", async () => {
  const host = await probeHost("metrics", { concurrency: 2 });
  try {
    assert.ok(lines(host, "metrics ").every((l) => l === "metrics counter+0=2 histogram.inc=2 histogram.get=0"));
    for (let i = 0; i < 3; i++) {
      const c = await openConnected(host, { source: `10.0.0.1:${1000 + i}`, destination: "198.18.0.1:80" });
      c.downstreamData(Buffer.from("x".repeat(10 * (i + 1))));
      if (i < 2) c.downstreamClose();
    }
    assert.equal(host.metric("probe_connections_total"), 3);
    assert.equal(host.metric("probe_active"), 1);
    assert.equal(host.metric("probe.chunk-size"), 3);
    assert.ok(host.metrics().has("wasmcustom.probe_connections_total"));
    const text = host.prometheus();
    assert.match(text, /^# TYPE probe_connections_total counter\nprobe_connections_total 3$/m);
    assert.match(text, /^probe_active 1$/m);
    assert.match(text, /^# TYPE probe_chunk_size histogram$/m);
    assert.match(text, /^probe_chunk_size_bucket\{le="25"\} 2$/m);
    assert.match(text, /^probe_chunk_size_sum 60$/m);
    assert.doesNotMatch(text, /envoy_|wasmcustom/);
  } finally { await host.close(); }
});

// Test Prometheus name sanitizing: invalid characters → _, leading digit dropped (§8).
test("Prometheus names: prefix stripped, invalid characters replaced, leading digits dropped", () => {
  assert.equal(promName("wasmcustom.egret.verdict-total"), "egret_verdict_total");
  assert.equal(promName("wasmcustom.9lives"), undefined);
});
