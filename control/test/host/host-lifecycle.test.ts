// VM model and context lifecycle (reference/proxy-wasm.md §6.1, §6.2, §3.2, §6.6).
import { test } from "node:test";
import assert from "node:assert/strict";
import { EnvoyHost, ManualClock } from "../../src/host/index.js";
import { lines, openConnected, probeHost, probePath } from "./helpers.js";

// Test that the canary, the main-thread VM and every worker VM each create a root and configure (§6.1).
test("canary + main + one VM per worker each configure their own root context", async () => {
  const host = await probeHost("", { concurrency: 3, vmConfig: "vmcfg" });
  try {
    const configured = host.logs().filter((e) => e.message.startsWith("configure root=1 ")).map((e) => e.vm);
    assert.deepEqual(configured, ["canary", "main", "worker-0", "worker-1", "worker-2"]);
    // vm_start sees the VM configuration; configure sees the plugin configuration (§3.6 buffers 6/7).
    assert.equal(lines(host, "vm_start root=1 vm_config=vmcfg").length, 5);
    assert.deepEqual(host.vmStatus().map((v) => v.name), ["main", "worker-0", "worker-1", "worker-2"]);
  } finally { await host.close(); }
});

// Test that a false from proxy_on_configure in the canary rejects the plugin (§6.1).
test("proxy_on_configure returning false rejects the plugin", async () => {
  await assert.rejects(probeHost("reject"), /plugin rejected in the canary VM: proxy_on_configure returned false/);
});

// Test that a trap during configure fails the VM and the plugin (§6.6).
test("a trap in proxy_on_configure rejects the plugin with the trap reason", async () => {
  await assert.rejects(probeHost("trap-configure"), /plugin rejected in the canary VM: RuntimeError: unreachable/);
});

// Test that context ids are per VM: the same id is live in two workers at once (§6.2).
test("context ids are allocated per VM", async () => {
  const host = await probeHost("", { concurrency: 2 });
  try {
    const a = host.openConnection({ source: "10.0.0.1:1000", destination: "198.18.0.1:80", worker: 0 });
    const b = host.openConnection({ source: "10.0.0.1:1001", destination: "198.18.0.1:80", worker: 1 });
    const c = host.openConnection({ source: "10.0.0.1:1002", destination: "198.18.0.1:80", worker: 0 });
    assert.deepEqual([a.contextId, b.contextId, c.contextId], [2, 2, 3]);
    assert.deepEqual(lines(host, "new id=").sort(), ["new id=2 root=1 down_len=0", "new id=2 root=1 down_len=0", "new id=3 root=1 down_len=0"]);
  } finally { await host.close(); }
});

// Test the whole callback sequence of one connection that ends with FINs both ways (§3.2).
test("callback order: create, new, data, upstream eos → upstream close, downstream close, done, log, delete", async () => {
  const host = await probeHost("", { concurrency: 1 });
  try {
    host.clearLogs();
    const c = await openConnected(host, { source: "10.0.0.1:1000", destination: "198.18.0.1:80" });
    c.downstreamData(Buffer.from("ping"), true);
    c.upstreamData(Buffer.from("pong"), true);
    const info = await c.whenClosed;
    assert.equal(info.by, "downstream");
    assert.deepEqual(lines(host, ""), [
      "new id=2 root=1 down_len=0",
      "down size=4 eos=1 data=ping len=4 up_len=0",
      "up size=4 eos=1 data=pong",
      "up-close id=2 peer=0",
      "down-close id=2 peer=2",
      "done id=2", "log id=2", "delete id=2",
    ]);
    assert.equal(c.sentUpstream.toString(), "ping");
    assert.equal(c.sentDownstream.toString(), "pong");
    assert.equal(host.vmStatus()[1].liveContexts, 1, "only the root context remains");
  } finally { await host.close(); }
});

// Test that closing the host deletes root contexts (done → delete) in every VM (§1.4, §6.2).
test("host.close() runs on_done and on_delete for each root", async () => {
  const host = await probeHost("", { concurrency: 2 });
  await host.close();
  assert.deepEqual(host.logs().filter((e) => e.message === "root delete 1").map((e) => e.vm), ["main", "worker-0", "worker-1"]);
});

// Test that a root whose onDone returns false is not deleted (it must call proxy_done) (§1.4).
test("a root returning false from on_done is kept until proxy_done", async () => {
  const host = await probeHost("defer-done", { concurrency: 1 });
  await host.close();
  assert.equal(lines(host, "root done 1").length, 2);
  assert.equal(lines(host, "root delete").length, 0);
});

// Test that the minimal filter module loads with the default options (no plugin config at all; §1.4 lifecycle).
test("the minimal filter loads without configuration", async () => {
  const host = await EnvoyHost.create({ wasm: probePath("host_minimal") });
  try { assert.equal(lines(host, "minimal: configured").length, 4); } finally { await host.close(); }
});

// Envoy gives an existing VM a second root context when the plugin configuration changes and the
// VM key does not (docs/reference/envoy-host-behaviour.md #6): canary first, then a new root id
// in every VM; new connections use it; old ones keep theirs; the old root goes when they are gone.
test("reconfigure: a second root context in every VM; old connections keep the old root until they close", async () => {
  const host = await probeHost("tick=1000", { concurrency: 1, clock: new ManualClock() });
  try {
    const old = host.openConnection({ source: "10.0.0.1:1000", destination: "198.18.0.1:80" });
    assert.equal(old.contextId, 2);
    host.clearLogs();
    assert.deepEqual(host.reconfigure("tick=1000 v2"), { ok: true });
    // Canary (a fresh VM: root 1), then the next context id of each VM as its new root: create,
    // vm_start, configure. Ids are per VM: main had no connection (2), worker-0 had one (3).
    assert.deepEqual(host.logs().filter((e) => e.message.startsWith("configure root=")).map((e) => `${e.vm} ${e.message.split(" ").slice(0, 2).join(" ")}`),
      ["canary configure root=1", "main configure root=2", "worker-0 configure root=3"]);
    assert.equal(lines(host, "vm_start root=2").length + lines(host, "vm_start root=3").length, 2, "vm_start runs for the new root too");
    // The main VM had no connection under root 1: its old root is shut down at once; worker-0's
    // waits for its connection.
    assert.deepEqual(host.vmStatus().map((v) => v.rootContextIds), [[2], [1, 3]]);
    assert.deepEqual(host.logs().filter((e) => e.message.startsWith("root ")).map((e) => `${e.vm} ${e.message}`), ["main root done 1", "main root delete 1"]);
    const fresh = host.openConnection({ source: "10.0.0.1:1001", destination: "198.18.0.1:80" });
    assert.deepEqual(lines(host, "new id=4"), ["new id=4 root=3 down_len=0"], "new connections get the new root as parent");
    // Both roots tick: each root context has its own timer (§6.5).
    host.clearLogs();
    await host.tick(1000);
    assert.deepEqual(host.logs().filter((e) => e.vm === "worker-0" && e.message.startsWith("tick ")).length, 2);
    assert.equal(lines(host, "root done 1").length, 0, "worker-0 still has a connection under root 1");
    host.clearLogs();
    old.downstreamClose();
    await new Promise((r) => setImmediate(r)); // the connection object goes at the end of the turn
    assert.deepEqual(host.logs().filter((e) => e.vm === "worker-0").map((e) => e.message).filter((m) => m.startsWith("root ")), ["root done 1", "root delete 1"]);
    assert.deepEqual(host.vmStatus()[1]!.rootContextIds, [3]);
    fresh.downstreamData(Buffer.from("x"));
    assert.equal(fresh.sentUpstream.toString(), "x", "the new root's connection is unaffected");
  } finally { await host.close(); }
});

// A configuration the canary refuses is rejected and nothing changes (Envoy keeps the old one).
test("reconfigure: a configuration the canary refuses changes nothing", async () => {
  const host = await probeHost("", { concurrency: 1 });
  try {
    assert.equal(host.reconfigure("reject").ok, false);
    assert.deepEqual(host.vmStatus().map((v) => v.rootContextIds), [[1], [1]]);
    const c = host.openConnection({ source: "10.0.0.1:1000", destination: "198.18.0.1:80" });
    assert.deepEqual(lines(host, "new id="), ["new id=2 root=1 down_len=0"]);
    assert.equal(c.closed, false);
  } finally { await host.close(); }
});

// A closed connection's context id stays registered until the connection object is destroyed at
// the end of the event-loop turn (Envoy's deferred deletion), then set_effective_context on it is
// BadArgument (docs/reference/envoy-host-behaviour.md #7).
test("context id lifetime: valid for set_effective_context until the end of the turn it closed in, then BadArgument", async () => {
  const host = await probeHost("tick=10 effective-deleted", { concurrency: 1, clock: new ManualClock() });
  try {
    const c = host.openConnection({ source: "10.0.0.1:1000", destination: "198.18.0.1:80" });
    c.downstreamClose();
    assert.deepEqual(lines(host, "delete id=2"), ["delete id=2"]);
    host.clearLogs();
    await host.tick(10); // the due ticks fire in this turn, before the connection object is destroyed
    assert.deepEqual(lines(host, "tick effective-deleted", "worker-0"), ["tick effective-deleted id=2 status=0"]);
    await new Promise((r) => setImmediate(r));
    host.clearLogs();
    await host.tick(10);
    assert.deepEqual(lines(host, "tick effective-deleted", "worker-0"), ["tick effective-deleted id=2 status=2"]);
    assert.equal(host.vmStatus()[1]!.liveContexts, 1, "only the root is left");
  } finally { await host.close(); }
});
