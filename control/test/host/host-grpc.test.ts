// gRPC callouts over a real grpc-js connection (reference/proxy-wasm.md §5, §2.2).
import { test } from "node:test";
import assert from "node:assert/strict";
import * as grpc from "@grpc/grpc-js";
import { eventually, lines, probeHost, startGrpcServer } from "./helpers.js";

const CLUSTER = "outbound|9000||egret-control.egret-system.svc.cluster.local";
const AUTHORITY = "egret-control.egret-system.svc.cluster.local:9000";

// Test the hold pattern: unary call from a connection, answer on the root, effective context, continue (§5).
test("unary call: answer delivered to the root; set_effective_context + continue resumes the connection", async () => {
  const srv = await startGrpcServer({ check: (msg) => ({ reply: Buffer.from(msg.toString().startsWith("198.18.0.1:") ? "allow" : "deny") }) });
  const host = await probeHost(`grpc-call=${CLUSTER}|${AUTHORITY}`, { concurrency: 1, grpcClusters: { [CLUSTER]: srv.address } });
  try {
    const ok = host.openConnection({ source: "10.0.0.1:1000", destination: "198.18.0.1:443" });
    const denied = host.openConnection({ source: "10.0.0.1:1001", destination: "198.18.0.2:443" });
    assert.equal(ok.state, "paused");
    // Call tokens are ≡ 1 mod 4 and count per VM (§2.2).
    assert.deepEqual(lines(host, "grpc call token="), ["grpc call token=5 status=0", "grpc call token=9 status=0"]);
    await ok.whenUpstreamRequested;
    await ok.whenUpstreamConnected; // tcp_proxy connects on a later turn
    assert.equal(ok.state, "open");
    assert.deepEqual(await denied.whenClosed, { by: "filter", detail: "wasm_downstream_close" });
    assert.equal(denied.upstreamConnectRequested, false);
    // Unary success = receive only, with the root id; no close callback (§5).
    assert.ok(lines(host, "grpc receive token=5 size=5 msg=allow").length === 1);
    assert.equal(lines(host, "grpc close").length, 0);
    assert.deepEqual(lines(host, "effective="), ["effective=0 continue=0", "effective=0 close=0"]);
    // The serialized GrpcService set :authority; initial metadata pairs became headers.
    const check = srv.seen.filter((s) => s.method === "Check");
    assert.equal(check.length, 2);
    assert.equal(check[0].md.get("x-probe")[0], "call");
    assert.equal(check[0].authority, AUTHORITY, "authority from the serialized GrpcService");
    assert.equal(check[0].msg!.toString(), "198.18.0.1:443");
  } finally { await host.close(); srv.server.forceShutdown(); }
});

// Test that a failed unary call yields only close, with status and message via proxy_get_status (§5).
test("unary call failure: close only, grpc status and message from get_status", async () => {
  const srv = await startGrpcServer({ check: () => ({ error: { code: grpc.status.PERMISSION_DENIED, details: "not today" } }) });
  const host = await probeHost(`grpc-call=${CLUSTER}|${AUTHORITY}`, { concurrency: 1, grpcClusters: { [CLUSTER]: srv.address } });
  try {
    const c = host.openConnection({ source: "10.0.0.1:1000", destination: "198.18.0.1:443" });
    await c.whenClosed;
    assert.deepEqual(lines(host, "grpc close"), ["grpc close token=5 status=7 get_status=7:not today"]);
    assert.equal(lines(host, "grpc receive").length, 0);
  } finally { await host.close(); srv.server.forceShutdown(); }
});

// Test that a plain cluster name that does not exist is ParseFailure (4) at call time (§5).
test("plain cluster name: unknown → ParseFailure; known → works with the cluster as authority", async () => {
  const srv = await startGrpcServer({});
  const host = await probeHost("grpc-plain=no-such-cluster", { concurrency: 1, grpcClusters: { control: srv.address } });
  try {
    const c = host.openConnection({ source: "10.0.0.1:1000", destination: "198.18.0.1:443" });
    assert.deepEqual(lines(host, "grpc call token="), ["grpc call token=0 status=4"]);
    assert.equal((await c.whenClosed).by, "filter");
  } finally { await host.close(); }
  const host2 = await probeHost("grpc-plain=control", { concurrency: 1, grpcClusters: { control: srv.address } });
  try {
    const c = host2.openConnection({ source: "10.0.0.1:1000", destination: "198.18.0.1:443" });
    await c.whenUpstreamRequested;
    await c.whenUpstreamConnected; // tcp_proxy connects on a later turn
    assert.equal(c.state, "open");
    // A plain name is also the :authority (what breaks in Istio, istio#27918).
    assert.equal(srv.seen.find((s) => s.method === "Check")!.authority, "control");
  } finally { await host2.close(); srv.server.forceShutdown(); }
});

// Test that a parsed GrpcService naming a cluster the host lacks fails asynchronously with UNAVAILABLE (§5: cluster not checked up front).
test("serialized GrpcService with an unknown cluster fails through on_grpc_close", async () => {
  const host = await probeHost("grpc-call=missing-cluster|x:1", { concurrency: 1 });
  try {
    const c = host.openConnection({ source: "10.0.0.1:1000", destination: "198.18.0.1:443" });
    assert.deepEqual(lines(host, "grpc call token="), ["grpc call token=5 status=0"]);
    await c.whenClosed;
    assert.deepEqual(lines(host, "grpc close"), ["grpc close token=5 status=14 get_status=14:cluster missing-cluster not found"]);
  } finally { await host.close(); }
});

// Test streams: opened from every VM's root, messages both ways, metadata, trailers and close (§5, §6.1).
test("stream: initial metadata, messages, trailing metadata and close reach the root of each VM", async () => {
  const streams: grpc.ServerDuplexStream<Buffer, Buffer>[] = [];
  const srv = await startGrpcServer({
    watch: (call) => {
      streams.push(call);
      const md = new grpc.Metadata();
      md.set("x-server", "probe-srv");
      call.sendMetadata(md);
      call.on("data", (m: Buffer) => {
        call.write(Buffer.from(`seen ${m}`));
        const trailer = new grpc.Metadata();
        trailer.set("x-trailer", "bye");
        call.end(trailer);
      });
    },
  });
  const host = await probeHost(`grpc-stream=${CLUSTER}|${AUTHORITY}`, { concurrency: 2, grpcClusters: { [CLUSTER]: srv.address } });
  try {
    // Stream tokens are ≡ 2 mod 4; sending on an unknown token is NotFound.
    assert.deepEqual(lines(host, "stream open").slice(0, 4), Array(4).fill("stream open token=6 status=0 send-on-call-kind=1"));
    await eventually(() => streams.length >= 3, 10_000, "main and two worker streams (the canary's was cancelled)");
    host.openConnection({ source: "10.0.0.1:1000", destination: "198.18.0.1:443", worker: 1 });
    await eventually(() => lines(host, "grpc close", "worker-1").length === 1, 10_000, "stream close on worker-1");
    const w1 = host.logs().filter((e) => e.vm === "worker-1" && e.message.startsWith("grpc ")).map((e) => e.message);
    assert.equal(w1.length, 4, w1.join("\n"));
    // grpc-js adds its own headers, so only the element count's presence is checked here.
    assert.match(w1[0], /^grpc initial_metadata token=6 n=\d+ x-server=probe-srv$/);
    assert.deepEqual(w1.slice(1), [
      "grpc receive token=6 size=19 msg=seen 198.18.0.1:443",
      "grpc trailing_metadata token=6 n=1 x-trailer=bye",
      "grpc close token=6 status=0 get_status=0:OK",
    ]);
    // The canary's stream was cancelled when the canary was discarded; main's stays open.
    assert.equal(lines(host, "grpc", "main").length >= 1, true);
    assert.equal(srv.seen.filter((s) => s.method === "Watch")[0].md.get("x-probe")[0], "stream");
  } finally { await host.close(); srv.server.forceShutdown(); }
});

// Test that cancel forgets the token (second cancel NotFound) and no close callback follows (§5).
test("stream cancel: token forgotten, no close callback", async () => {
  const srv = await startGrpcServer({ watch: (call) => { call.write(Buffer.from("cancel-stream")); call.on("error", () => undefined); } });
  const host = await probeHost(`grpc-stream=${CLUSTER}|${AUTHORITY}`, { concurrency: 1, grpcClusters: { [CLUSTER]: srv.address } });
  try {
    await eventually(() => lines(host, "cancel=", "worker-0").length === 1, 10_000, "cancel");
    assert.deepEqual(lines(host, "cancel=", "worker-0"), ["cancel=0 again=1"]);
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(lines(host, "grpc close", "worker-0").length, 0);
  } finally { await host.close(); srv.server.forceShutdown(); }
});

// Test HTTP callouts: pseudo-headers required, token ≡ 0 mod 4, response headers/body in maps/buffers (§5, §2.2).
test("http call: answer in on_http_call_response with :status and body; failure → 0 headers, BrokenConnection", async () => {
  const http = await import("node:http");
  const seen: { path?: string; host?: string; dst?: string }[] = [];
  const server = http.createServer((req, res) => {
    seen.push({ path: req.url, host: req.headers.host, dst: String(req.headers["x-dst"]) });
    res.end(String(req.headers["x-dst"]).startsWith("198.18.0.1:") ? "allow" : "deny");
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  const host = await probeHost("http-call=policy", { concurrency: 1, grpcClusters: { policy: `127.0.0.1:${port}` } });
  try {
    const ok = host.openConnection({ source: "10.0.0.1:1000", destination: "198.18.0.1:443" });
    const no = host.openConnection({ source: "10.0.0.1:1001", destination: "198.18.0.2:443" });
    assert.deepEqual(lines(host, "http call token="), ["http call token=4 status=0 missing-headers=0:2", "http call token=8 status=0 missing-headers=0:2"]);
    await ok.whenUpstreamRequested;
    await ok.whenUpstreamConnected; // tcp_proxy connects on a later turn
    assert.equal(ok.state, "open");
    assert.equal((await no.whenClosed).by, "filter");
    assert.match(lines(host, "http response token=4")[0], /^http response token=4 headers=\d+ status=200 body=allow trailers=0 get_status=0$/);
    assert.deepEqual(seen[0], { path: "/check", host: "policy.local", dst: "198.18.0.1:443" });
  } finally { await host.close(); server.close(); }
  const dead = await probeHost("http-call=policy", { concurrency: 1, grpcClusters: { policy: "127.0.0.1:1" } });
  try {
    const c = dead.openConnection({ source: "10.0.0.1:1000", destination: "198.18.0.1:443" });
    await c.whenClosed;
    assert.deepEqual(lines(dead, "http response"), ["http response token=4 headers=0 status=<1> body= trailers=0 get_status=11"]);
  } finally { await dead.close(); }
});

// Test that the effective context set in a callback is reset when it returns (§5 SaveRestoreContext).
test("effective context does not leak from the gRPC callback into a later tick", async () => {
  const { ManualClock } = await import("../../src/host/index.js");
  const clock = new ManualClock();
  const srv = await startGrpcServer({ check: () => ({ reply: Buffer.from("allow") }) });
  const host = await probeHost(`grpc-call=${CLUSTER}|${AUTHORITY} tick=10 close-on-tick`, { concurrency: 1, clock, grpcClusters: { [CLUSTER]: srv.address } });
  try {
    const c = host.openConnection({ source: "10.0.0.1:1000", destination: "198.18.0.1:443", worker: 0 });
    await c.whenUpstreamRequested;
    assert.deepEqual(lines(host, "effective=", "worker-0"), ["effective=0 continue=0"]);
    await clock.advance(50);
    assert.equal(lines(host, "tick close=0", "worker-0").length, 5);
    assert.equal(c.state, "open", "the tick's close_stream acted on the root, not on the connection");
  } finally { await host.close(); srv.server.forceShutdown(); }
});

// Test that proxy_grpc_close on a stream is a local half-close: the server sees the end, and the
// stream stays until the server closes it (§5 close vs cancel).
test("stream close = half-close: server sees end, module still gets the server's close", async () => {
  let serverSawEnd = false;
  const srv = await startGrpcServer({
    watch: (call) => {
      call.write(Buffer.from("half-close"));
      call.on("data", () => undefined);
      call.on("end", () => { serverSawEnd = true; call.write(Buffer.from("after-half-close")); call.end(); });
      call.on("error", () => undefined);
    },
  });
  const host = await probeHost(`grpc-stream=${CLUSTER}|${AUTHORITY}`, { concurrency: 1, grpcClusters: { [CLUSTER]: srv.address } });
  try {
    await eventually(() => lines(host, "grpc close", "worker-0").length === 1, 10_000, "server close after half-close");
    assert.ok(serverSawEnd);
    assert.deepEqual(lines(host, "half-close=", "worker-0"), ["half-close=0"]);
    assert.deepEqual(lines(host, "grpc receive", "worker-0").map((l) => l.replace(/ size=\d+/, "")), ["grpc receive token=6 msg=half-close", "grpc receive token=6 msg=after-half-close"]);
    assert.deepEqual(lines(host, "grpc close", "worker-0"), ["grpc close token=6 status=0 get_status=0:OK"]);
  } finally { await host.close(); srv.server.forceShutdown(); }
});
