// `egret sidecar` forwarding real loopback TCP connections through the filter, in fixed-target and
// PROXY-protocol modes (no root needed); and the CLI's flags and clean shutdown.
import { test } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { startSidecar, parseSidecarArgs, type ConnectionSummary, type SidecarConfig } from "../../src/sidecar/index.js";
import { silentLogger } from "../../src/common/log.js";

const root = fileURLToPath(new URL("../../../../", import.meta.url));
const probe = (name: string): string => `${root}filter/build/test/${name}.wasm`;

async function echoServer(): Promise<{ port: number; accepted: () => number; close: () => Promise<void> }> {
  let accepted = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (s) => { accepted++; sockets.add(s); s.on("error", () => undefined); s.pipe(s); });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    port: (server.address() as net.AddressInfo).port,
    accepted: () => accepted,
    close: () => new Promise((r) => { for (const s of sockets) s.destroy(); server.close(() => r()); }),
  };
}

/** Sends `chunks` (one write each, small delay), half-closes, returns what came back. */
async function exchange(port: number, chunks: Buffer[]): Promise<{ data: Buffer; error?: string }> {
  return new Promise((resolve) => {
    const parts: Buffer[] = [];
    const s = net.connect({ port, host: "127.0.0.1", allowHalfOpen: true });
    let error: string | undefined;
    s.on("data", (d) => parts.push(d));
    s.on("error", (e: NodeJS.ErrnoException) => (error = e.code));
    s.on("close", () => resolve({ data: Buffer.concat(parts), error }));
    s.on("connect", async () => {
      for (const c of chunks) { s.write(c); await new Promise((r) => setTimeout(r, 2)); }
      s.end();
    });
    setTimeout(() => s.destroy(), 20_000).unref();
  });
}

function config(args: string[]): SidecarConfig {
  const c = parseSidecarArgs(args);
  assert.notEqual(c, "help");
  return c as SidecarConfig;
}

// Test that bytes sent one at a time reach the upstream and come back through the filter.
test("fixed target: a real connection is forwarded byte by byte and echoed back", async () => {
  const echo = await echoServer();
  const sc = await startSidecar(config(["--wasm", probe("host_minimal"), "--listen", "127.0.0.1:0", "--target", `127.0.0.1:${echo.port}`, "--admin", "127.0.0.1:0", "--concurrency", "1"]), silentLogger());
  try {
    const closed = new Promise<ConnectionSummary>((r) => sc.proxy.once("connection-closed", r));
    const port = Number(sc.listen.split(":").pop());
    const payload = Buffer.from("SELECT 1; -- hello through egret");
    const r = await exchange(port, [...payload].map((b) => Buffer.of(b)));
    assert.equal(r.data.toString(), payload.toString());
    const s = await closed;
    assert.deepEqual([s.bytesUpstream, s.bytesDownstream, s.upstreamConnected, s.close.detail], [payload.length, payload.length, true, "both_half_closed"]);
    assert.equal(sc.host.metric("minimal_connections_total"), 1);
    assert.equal(sc.host.metric("minimal_downstream_bytes_total"), payload.length);
    const text = await (await fetch(`http://${sc.admin}/stats/prometheus`)).text();
    assert.match(text, /^minimal_connections_total 1$/m);
    assert.match(text, /^egret_sidecar_connections_accepted_total 1$/m);
  } finally { await sc.stop(); await echo.close(); }
});

// Test that a filter closing in on_new_connection means no upstream connection is ever made (§3.3).
test("a connection the filter closes in new_connection never reaches the upstream", async () => {
  const echo = await echoServer();
  const sc = await startSidecar(config(["--wasm", probe("host_probe"), "--plugin-config", "close-in-new", "--listen", "127.0.0.1:0", "--target", `127.0.0.1:${echo.port}`]), silentLogger());
  try {
    const port = Number(sc.listen.split(":").pop());
    const r = await exchange(port, [Buffer.from("hello")]);
    assert.equal(r.data.length, 0);
    assert.equal(echo.accepted(), 0, "no SYN left for the denied destination");
  } finally { await sc.stop(); await echo.close(); }
});

// Test PROXY v1: the filter sees the destination from the header; early bytes after it are kept.
test("PROXY protocol: destination and source from the header, bytes after it forwarded", async () => {
  const echo = await echoServer();
  const sc = await startSidecar(config(["--wasm", probe("host_probe"), "--plugin-config", "props", "--listen", "127.0.0.1:0", "--proxy-protocol"]), silentLogger());
  try {
    const port = Number(sc.listen.split(":").pop());
    const r = await exchange(port, [Buffer.from(`PROXY TCP4 10.1.0.7 127.0.0.1 40000 ${echo.port}\r\nabc`), Buffer.from("def")]);
    assert.equal(r.data.toString(), "abcdef");
    assert.ok(sc.host.logLines().some((l) => l.startsWith(`props source=10.1.0.7:40000 source.port=i64:40000 destination=127.0.0.1:${echo.port}`)));
    const bad = await exchange(port, [Buffer.from("GET / HTTP/1.1\r\n\r\n")]);
    assert.equal(bad.data.length, 0);
    assert.equal(sc.proxy.stats.rejected, 1);
  } finally { await sc.stop(); await echo.close(); }
});

// Test that an unreachable upstream closes the client connection and is counted.
test("upstream connect failure closes the client", async () => {
  const probeServer = net.createServer();
  await new Promise<void>((r) => probeServer.listen(0, "127.0.0.1", r));
  const deadPort = (probeServer.address() as net.AddressInfo).port;
  await new Promise<void>((r) => probeServer.close(() => r()));
  const sc = await startSidecar(config(["--wasm", probe("host_minimal"), "--listen", "127.0.0.1:0", "--target", `127.0.0.1:${deadPort}`]), silentLogger());
  try {
    const closed = new Promise<ConnectionSummary>((r) => sc.proxy.once("connection-closed", r));
    const r = await exchange(Number(sc.listen.split(":").pop()), [Buffer.from("x")]);
    assert.equal(r.data.length, 0);
    const s = await closed;
    assert.equal(s.close.by, "upstream");
    assert.match(s.close.detail, /ECONNREFUSED/);
    assert.equal(sc.proxy.stats.upstreamConnectFailures, 1);
  } finally { await sc.stop(); }
});

// Test the flag validation messages.
test("bad flags name the flag and the fix", () => {
  assert.throws(() => parseSidecarArgs(["--target", "nowhere"]), /--target: "nowhere" is not host:port/);
  assert.throws(() => parseSidecarArgs(["--pod-label", "app"]), /--pod-label "app": expected key=value/);
  assert.throws(() => parseSidecarArgs(["--grpc-cluster", "x"]), /--grpc-cluster "x": expected NAME=HOST:PORT/);
  assert.throws(() => parseSidecarArgs(["--plugin-config", "{bad"]), /--plugin-config: invalid JSON/);
  assert.throws(() => parseSidecarArgs(["--plugin-config", "@/nonexistent.json"]), /cannot read \/nonexistent\.json \(ENOENT\)/);
  assert.throws(() => parseSidecarArgs(["--concurrency", "0"]), /--concurrency 0: expected an integer from 1 to 64/);
  assert.throws(() => parseSidecarArgs(["--bogus"]), /unknown option '--bogus'/);
  const c = config(["--grpc-cluster", "outbound|9000||ctl.ns.svc.cluster.local=127.0.0.1:9000", "--pod-label", "app=web", "--pod-ip", "10.1.0.7"]);
  assert.deepEqual(c.grpcClusters, { "outbound|9000||ctl.ns.svc.cluster.local": "127.0.0.1:9000" });
  assert.deepEqual(c.mode, { kind: "original-dst" });
});

// Test the real command: starts, serves, and exits 0 on SIGTERM.
test("egret sidecar (CLI) serves and exits 0 on SIGTERM", async () => {
  const echo = await echoServer();
  const child = spawn(process.execPath, [`${root}bin/egret.js`, "sidecar", "--wasm", probe("host_minimal"), "--listen", "127.0.0.1:0", "--target", `127.0.0.1:${echo.port}`], { stdio: ["ignore", "pipe", "pipe"] });
  try {
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    const listen = await new Promise<string>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`sidecar did not start: ${out}`)), 30_000);
      child.stdout.on("data", () => { const m = /"listen":"([^"]+)"/.exec(out); if (m) { clearTimeout(t); resolve(m[1]); } });
      child.on("exit", (code) => reject(new Error(`sidecar exited ${code}: ${out}`)));
    });
    const r = await exchange(Number(listen.split(":").pop()), [Buffer.from("ping")]);
    assert.equal(r.data.toString(), "ping");
    const code = await new Promise<number | null>((resolve) => { child.on("exit", (c) => resolve(c)); child.kill("SIGTERM"); });
    assert.equal(code, 0);
    assert.match(out, /minimal: connection to 127\.0\.0\.1:/);
    assert.match(out, /"msg":"shutting down"/);
  } finally { if (child.exitCode === null) child.kill("SIGKILL"); await echo.close(); }
});
