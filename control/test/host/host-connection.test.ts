// A connection through the filter and the emulated tcp_proxy (reference/proxy-wasm.md §3.2–§3.7, §6.6).
import { test } from "node:test";
import assert from "node:assert/strict";
import { lines, openConnected, probeHost } from "./helpers.js";

const conn = { source: "10.0.0.1:40000", destination: "198.18.0.9:5432" };

// Test that StopIteration in on_new_connection stops tcp_proxy: no upstream connect, no data (§3.3).
test("pausing new_connection delays the upstream connect and reads nothing", async () => {
  const host = await probeHost("pause", { concurrency: 1 });
  try {
    const c = host.openConnection(conn);
    c.downstreamData(Buffer.from("early"));
    assert.equal(c.state, "paused");
    assert.equal(c.upstreamConnectRequested, false);
    assert.equal(lines(host, "down ").length, 0, "on_downstream_data is not called while paused");
    assert.equal(c.heldDownstreamBytes, 5);
    c.downstreamClose();
    assert.equal((await c.whenClosed).by, "downstream");
    assert.equal(c.sentUpstream.length, 0);
  } finally { await host.close(); }
});

// Test that continue_stream inside on_new_connection resumes after the callback returns (§3.3, §3.7).
test("continue_stream(DOWNSTREAM) in new_connection starts tcp_proxy after the call", async () => {
  const host = await probeHost("continue-in-new", { concurrency: 1 });
  try {
    const c = host.openConnection(conn);
    assert.deepEqual(lines(host, "continue="), ["continue=0"]);
    assert.equal(c.upstreamConnectRequested, true);
    assert.equal(c.state, "connecting", "the upstream connect completes on a later turn, as Envoy's pool callback");
    await c.whenUpstreamConnected;
    assert.equal(c.state, "open");
    c.downstreamData(Buffer.from("x"));
    assert.equal(c.sentUpstream.toString(), "x");
  } finally { await host.close(); }
});

// Test that close_stream inside on_new_connection closes after the call, without an upstream (§3.5).
test("close_stream in new_connection closes the downstream (wasm_downstream_close)", async () => {
  const host = await probeHost("close-in-new", { concurrency: 1 });
  try {
    const c = host.openConnection(conn);
    const info = await c.whenClosed;
    assert.deepEqual(info, { by: "filter", detail: "wasm_downstream_close" });
    assert.equal(c.upstreamConnectRequested, false);
    assert.ok(lines(host, "down-close id=2 peer=1").length === 1, "closed locally");
  } finally { await host.close(); }
});

// Test that tcp_proxy keeps reads disabled until the upstream connects; data then arrives at once (§3.2).
test("downstream bytes wait for the upstream connect (read-disable)", async () => {
  const host = await probeHost("", { concurrency: 1 });
  try {
    const c = host.openConnection({ ...conn, autoConnectUpstream: false });
    let connectEvents = 0;
    c.on("upstream-connect", () => connectEvents++);
    await c.whenUpstreamRequested;
    c.downstreamData(Buffer.from("ab"));
    c.downstreamData(Buffer.from("cd"));
    assert.equal(lines(host, "down ").length, 0);
    c.upstreamConnected("10.0.0.1:50000");
    assert.deepEqual(lines(host, "down "), ["down size=4 eos=0 data=abcd len=4 up_len=0"]);
    assert.equal(c.sentUpstream.toString(), "abcd");
  } finally { await host.close(); }
});

// Test that StopIteration holds bytes and re-offers the accumulated buffer, byte by byte (§3.4).
test("StopIteration in downstream_data holds bytes and re-offers them accumulated (one byte at a time)", async () => {
  const host = await probeHost("hold=5", { concurrency: 1 });
  try {
    const c = await openConnected(host, conn);
    for (const ch of "hello world") c.downstreamData(Buffer.from(ch));
    const sizes = lines(host, "down ").map((l) => /size=(\d+)/.exec(l)![1]);
    assert.deepEqual(sizes, ["1", "2", "3", "4", "5", "1", "2", "3", "4", "5", "1"]);
    assert.equal(c.sentUpstream.toString(), "hello world".slice(0, 10));
    assert.equal(c.heldDownstreamBytes, 1);
    assert.match(lines(host, "down ")[4], /data=hello/);
  } finally { await host.close(); }
});

// Test that continue_stream inside downstream_data forwards the buffer once, not re-offered (§3.4, §3.7).
test("continue_stream inside downstream_data makes tcp_proxy drain the buffer before StopIteration", async () => {
  const host = await probeHost("continue-in-data", { concurrency: 1 });
  try {
    const c = await openConnected(host, conn);
    c.downstreamData(Buffer.from("abc"));
    c.downstreamData(Buffer.from("de"));
    assert.equal(c.sentUpstream.toString(), "abcde");
    assert.deepEqual(lines(host, "down ").map((l) => /size=(\d+)/.exec(l)![1]), ["3", "2"]);
  } finally { await host.close(); }
});

// Test that close_stream on data closes without forwarding the held bytes (§3.5).
test("close_stream in downstream_data closes and forwards nothing", async () => {
  const host = await probeHost("close-on-data", { concurrency: 1 });
  try {
    const c = await openConnected(host, conn);
    c.downstreamData(Buffer.from("secret"));
    assert.deepEqual(await c.whenClosed, { by: "filter", detail: "wasm_downstream_close" });
    assert.equal(c.sentUpstream.length, 0);
  } finally { await host.close(); }
});

// Test that upstream data cannot be released: continue_stream(UPSTREAM) → Unimplemented; stream type > 3 → BadArgument (§3.5).
test("continue_stream(UPSTREAM) is Unimplemented (12)", async () => {
  const host = await probeHost("continue-upstream", { concurrency: 1 });
  try {
    host.openConnection(conn);
    assert.deepEqual(lines(host, "continue-upstream="), ["continue-upstream=12 bad-stream=2"]);
  } finally { await host.close(); }
});

// Test that upstream StopIteration keeps bytes in the upstream read buffer, re-offered accumulated (§3.5).
test("StopIteration in upstream_data keeps the bytes and offers them again accumulated", async () => {
  const host = await probeHost("hold-up", { concurrency: 1 });
  try {
    const c = await openConnected(host, conn);
    c.upstreamData(Buffer.from("AB"));
    c.upstreamData(Buffer.from("C"));
    assert.deepEqual(lines(host, "up "), ["up size=2 eos=0 data=AB", "up size=3 eos=0 data=ABC"]);
    assert.equal(c.sentDownstream.length, 0);
  } finally { await host.close(); }
});

// Test that close_stream(UPSTREAM) closes the downstream connection (§3.5).
test("close_stream(UPSTREAM) closes the downstream (wasm_upstream_close)", async () => {
  const host = await probeHost("close-upstream-on-data", { concurrency: 1 });
  try {
    const c = await openConnected(host, conn);
    c.upstreamData(Buffer.from("220 smtp"));
    assert.deepEqual(await c.whenClosed, { by: "filter", detail: "wasm_upstream_close" });
    assert.equal(c.sentDownstream.length, 0);
  } finally { await host.close(); }
});

// Test the set_buffer_bytes rules: start 0 = drain+prepend, start ≥ len = append, middle = BadArgument (§3.6).
test("set_buffer_bytes follows Envoy's rules", async () => {
  const host = await probeHost("rewrite", { concurrency: 1 });
  try {
    const c = await openConnected(host, conn);
    c.downstreamData(Buffer.from("hello"));
    assert.deepEqual(lines(host, "rewrite "), ["rewrite replace=0 append=0 middle=2 other=2 now=2"]);
    assert.equal(c.sentUpstream.toString(), "<>");
  } finally { await host.close(); }
});

// Test that network buffers read as Ok/empty outside their callbacks (§3.6).
test("buffers outside their callback have length 0", async () => {
  const host = await probeHost("", { concurrency: 1 });
  try {
    const c = await openConnected(host, conn);
    c.downstreamData(Buffer.from("abc"));
    assert.deepEqual(lines(host, "new "), ["new id=2 root=1 down_len=0"]);
    assert.match(lines(host, "down ")[0], /len=3 up_len=0$/);
  } finally { await host.close(); }
});

// Test that an upstream reset (no FIN on the write path) closes without an upstream-close callback (§3.2 step 7).
test("upstream reset closes the downstream locally and never calls upstream_connection_close", async () => {
  const host = await probeHost("", { concurrency: 1 });
  try {
    const c = await openConnected(host, conn);
    c.upstreamClose();
    assert.equal((await c.whenClosed).by, "upstream");
    assert.equal(lines(host, "up-close").length, 0);
    assert.deepEqual(lines(host, "down-close"), ["down-close id=2 peer=1"]);
  } finally { await host.close(); }
});

// Test that a trap fails the VM and, by default, closes its connections (fail closed) (§6.6, §6.2).
test("a trap fails the VM; FAIL_CLOSED closes this and new connections on it", async () => {
  const host = await probeHost("", { concurrency: 2 });
  try {
    const c = await openConnected(host, { ...conn, worker: 0 });
    c.downstreamData(Buffer.from("TRAP now"));
    const info = await c.whenClosed;
    assert.equal(info.by, "vm-failed");
    assert.equal(c.sentUpstream.length, 0, "nothing forwarded from the trapping callback");
    assert.deepEqual(host.vmStatus().map((v) => v.failed), [false, true, false]);
    assert.match(host.vmStatus()[1].failure!, /unreachable/);
    const again = await openConnected(host, { ...conn, worker: 0 });
    assert.equal((await again.whenClosed).by, "vm-failed");
    const other = await openConnected(host, { ...conn, worker: 1 });
    other.downstreamData(Buffer.from("fine"));
    assert.equal(other.sentUpstream.toString(), "fine", "other workers keep working");
    assert.ok(host.logs(5).some((e) => e.host && /wasm VM failed/.test(e.message)));
  } finally { await host.close(); }
});

// Test that FAIL_OPEN passes traffic unfiltered once the VM failed (§6.2).
test("FAIL_OPEN forwards bytes without the filter after a trap", async () => {
  const host = await probeHost("", { concurrency: 1, failurePolicy: "FAIL_OPEN" });
  try {
    const c = await openConnected(host, conn);
    c.downstreamData(Buffer.from("TRAP"));
    assert.equal(c.sentUpstream.toString(), "TRAP");
    c.downstreamData(Buffer.from("more"));
    c.upstreamData(Buffer.from("reply"));
    assert.equal(c.sentUpstream.toString(), "TRAPmore");
    assert.equal(c.sentDownstream.toString(), "reply");
    const next = await openConnected(host, conn);
    assert.equal(next.state, "open");
  } finally { await host.close(); }
});

// Test that set_effective_context rejects ids that do not exist in the VM (§5).
test("set_effective_context to an unknown id is BadArgument", async () => {
  const host = await probeHost("effective-bad", { concurrency: 1 });
  try {
    host.openConnection(conn);
    assert.deepEqual(lines(host, "effective-bad="), ["effective-bad=2"]);
  } finally { await host.close(); }
});

// Test FAIL_RELOAD (§6.2, Envoy ≥1.33 default): the trapping VM's connection closes, the worker
// gets a fresh VM (new root, configured again) and later connections are filtered normally.
test("FAIL_RELOAD closes the failed VM's connection and reloads the worker VM", async () => {
  const host = await probeHost("", { concurrency: 1, failurePolicy: "FAIL_RELOAD" });
  try {
    const c = await openConnected(host, conn);
    c.downstreamData(Buffer.from("TRAP"));
    assert.equal((await c.whenClosed).by, "vm-failed");
    const next = await openConnected(host, conn);
    next.downstreamData(Buffer.from("fine"));
    assert.equal(next.sentUpstream.toString(), "fine");
    assert.equal(host.reloads, 1);
    assert.equal(host.vmStatus()[1].failed, false);
    assert.equal(lines(host, "configure root=1 ", "worker-0").length, 2, "the new VM configured its own root");
    assert.deepEqual(lines(host, "new id=", "worker-0"), ["new id=2 root=1 down_len=0", "new id=2 root=1 down_len=0"], "context ids restart in the new VM");
  } finally { await host.close(); }
});
