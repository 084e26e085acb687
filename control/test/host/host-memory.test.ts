// The ABI layer allocates nothing per data callback (style.md guideline 3): linear memory stays
// flat across many callbacks, and every stream context is deleted.
import { test } from "node:test";
import assert from "node:assert/strict";
import { EnvoyHost } from "../../src/host/index.js";
import { openConnected, probeHost, probePath } from "./helpers.js";

// Test that 50k byte-sized data callbacks (reading the buffer each time) do not grow memory (§2.4: host copies are freed).
test("memory stays flat across 50k downstream_data callbacks and 2k connections", async () => {
  for (const [wasm, config] of [[probePath("host_probe"), "quiet metrics"], [probePath("host_minimal"), "{}"]] as const) {
    const host = await EnvoyHost.create({ wasm, pluginConfig: config, concurrency: 1 });
    try {
      const vm = host.workers[0];
      const run = async (conns: number, chunks: number): Promise<void> => {
        for (let i = 0; i < conns; i++) {
          const c = await openConnected(host, { source: `10.0.0.1:${1000 + (i % 60000)}`, destination: "198.18.0.1:5432" });
          for (let k = 0; k < chunks; k++) c.downstreamData(Buffer.of(k & 0xff));
          c.upstreamData(Buffer.from("ok"));
          c.downstreamClose();
        }
      };
      await run(200, 25); // warm-up: let the runtime reach its steady-state heap
      const before = vm.memory.buffer.byteLength;
      await run(2000, 25);
      assert.equal(vm.memory.buffer.byteLength, before, `${wasm}: memory grew`);
      assert.equal(vm.liveStreams, 0, "every stream context was deleted");
      await new Promise((r) => setImmediate(r)); // the closed connections' objects go at the end of the turn
      assert.equal(vm.contexts.size, 1, "only the root context is left");
    } finally { await host.close(); }
  }
});

// Test that the probe sees every chunk (the loop above really exercised the data path, §3.2 step 5).
test("the quiet probe records one histogram sample per data callback", async () => {
  const host = await probeHost("quiet metrics", { concurrency: 1 });
  try {
    const c = await openConnected(host, { source: "10.0.0.1:1", destination: "198.18.0.1:1" });
    for (let k = 0; k < 100; k++) c.downstreamData(Buffer.of(k));
    assert.equal(host.metric("probe.chunk-size"), 100);
    assert.equal(c.sentUpstream.length, 100);
  } finally { await host.close(); }
});
