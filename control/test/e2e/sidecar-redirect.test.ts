// `egret sidecar` exactly where Envoy's outbound listener sits: in a pod network namespace, behind
// an iptables REDIRECT of the app's outbound TCP to 127.0.0.1:15001, learning the original
// destination with SO_ORIGINAL_DST, forwarding to a server in another namespace (198.18.0.0/15).
// Needs root, `ip netns`, iptables and setpriv; skips with the reason otherwise.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("../../../../", import.meta.url));
const ADDON = `${root}dist/native/original_dst.node`;
const id = process.pid % 100000;
const POD = `egA-pod-${id}`, SRV = `egA-srv-${id}`;
const VETH_POD = `egA${id}p`, VETH_SRV = `egA${id}s`;
const octet = 100 + (id % 100);
const POD_IP = `198.18.${octet}.1`, SRV_IP = `198.18.${octet}.2`;
const CLIENT_UID = 65534; // the "app": only its connections are redirected (Istio excludes 1337 instead)

function why(): string | false {
  if (process.platform !== "linux") return "needs Linux network namespaces";
  if (process.getuid?.() !== 0) return "needs root (ip netns, iptables)";
  if (spawnSync("ip", ["netns", "list"]).status !== 0) return "`ip netns` unavailable (install iproute2)";
  if (spawnSync("iptables", ["-V"]).status !== 0) return "iptables unavailable (apt-get install iptables)";
  if (spawnSync("setpriv", ["--version"]).status !== 0) return "setpriv unavailable (util-linux)";
  return false;
}

function sh(cmd: string, ...args: string[]): void {
  const r = spawnSync(cmd, args, { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")} failed: ${r.stderr || r.stdout}`);
}

const children: ChildProcess[] = [];
function cleanup(): void {
  for (const c of children) if (c.exitCode === null) c.kill("SIGKILL");
  spawnSync("ip", ["netns", "del", POD]);
  spawnSync("ip", ["netns", "del", SRV]);
}

/** Spawns a process and resolves once a stdout line matches `ready`. */
function start(args: string[], ready: RegExp, what: string): Promise<{ child: ChildProcess; out: () => string }> {
  const child = spawn(args[0], args.slice(1), { stdio: ["ignore", "pipe", "pipe"] });
  children.push(child);
  let out = "", err = "";
  child.stdout!.on("data", (d) => (out += d));
  child.stderr!.on("data", (d) => (err += d));
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${what} did not start:\n${out}\n${err}`)), 30_000);
    child.stdout!.on("data", () => { if (ready.test(out)) { clearTimeout(t); resolve({ child, out: () => out }); } });
    child.on("exit", (code) => { clearTimeout(t); reject(new Error(`${what} exited with ${code}:\n${out}\n${err}`)); });
  });
}

const ECHO = `
const net = require("net");
let n = 0;
net.createServer({ allowHalfOpen: true }, (s) => { n++; console.log("accepted " + s.remoteAddress + " total=" + n); s.on("error", () => {}); s.pipe(s); })
  .listen(7000, "::", () => console.log("ready"));`;

const POD_IP6 = `2001:2:0:${(id % 0xffff).toString(16)}::1`, SRV_IP6 = `2001:2:0:${(id % 0xffff).toString(16)}::2`; // RFC 5180 benchmarking range

const client = (host: string): string => `
const net = require("net");
const s = net.connect({ host: "${host}", port: 7000, allowHalfOpen: true });
const parts = [];
s.on("data", (d) => parts.push(d));
s.on("error", (e) => { console.log(JSON.stringify({ error: e.code })); process.exit(0); });
s.on("close", () => { console.log(JSON.stringify({ data: Buffer.concat(parts).toString() })); });
s.on("connect", async () => { for (const ch of "hello through REDIRECT") { s.write(ch); await new Promise((r) => setTimeout(r, 2)); } s.end(); });`;

/** Runs the app as CLIENT_UID in the pod namespace (async: the sidecar's output keeps flowing). */
async function runClient(host = SRV_IP): Promise<{ data?: string; error?: string }> {
  const { child, out } = await start(["ip", "netns", "exec", POD, "setpriv", `--reuid=${CLIENT_UID}`, `--regid=${CLIENT_UID}`, "--clear-groups", process.execPath, "-e", client(host)], /\}\n/, "client");
  await new Promise((r) => (child.exitCode !== null ? r(null) : child.once("exit", r)));
  return JSON.parse(out().trim().split("\n").pop()!);
}

/** Waits until `text()` matches `re` (output arrives asynchronously through pipes). */
async function waitFor(text: () => string, re: RegExp, what: string): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (!re.test(text())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} (${re}) in:\n${text()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const sidecarArgs = (extra: string[], listen = "127.0.0.1:15001"): string[] => ["ip", "netns", "exec", POD, process.execPath, `${root}bin/egret.js`, "sidecar",
  "--listen", listen, "--pod-name", "web-0", "--pod-namespace", "shop", "--pod-ip", POD_IP, "--concurrency", "1", ...extra];

async function stop(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null) return child.exitCode;
  return new Promise((resolve) => { child.once("exit", (c) => resolve(c)); child.kill("SIGTERM"); });
}

/** Pod and server namespaces joined by a veth pair, IPv4 and IPv6, with the app's TCP redirected. */
function setupNamespaces(): void {
  cleanup();
  sh("ip", "netns", "add", POD);
  sh("ip", "netns", "add", SRV);
  sh("ip", "link", "add", VETH_POD, "netns", POD, "type", "veth", "peer", "name", VETH_SRV, "netns", SRV);
  sh("ip", "-n", POD, "addr", "add", `${POD_IP}/30`, "dev", VETH_POD);
  sh("ip", "-n", SRV, "addr", "add", `${SRV_IP}/30`, "dev", VETH_SRV);
  sh("ip", "-n", POD, "-6", "addr", "add", `${POD_IP6}/64`, "dev", VETH_POD, "nodad");
  sh("ip", "-n", SRV, "-6", "addr", "add", `${SRV_IP6}/64`, "dev", VETH_SRV, "nodad");
  for (const [ns, dev] of [[POD, VETH_POD], [SRV, VETH_SRV]]) { sh("ip", "-n", ns, "link", "set", dev, "up"); sh("ip", "-n", ns, "link", "set", "lo", "up"); }
  sh("ip", "netns", "exec", POD, "iptables", "-t", "nat", "-A", "OUTPUT", "-p", "tcp", "-d", SRV_IP, "-m", "owner", "--uid-owner", String(CLIENT_UID), "-j", "REDIRECT", "--to-ports", "15001");
  sh("ip", "netns", "exec", POD, "ip6tables", "-t", "nat", "-A", "OUTPUT", "-p", "tcp", "-d", SRV_IP6, "-m", "owner", "--uid-owner", String(CLIENT_UID), "-j", "REDIRECT", "--to-ports", "15001");
}

// Test that the app's connection is redirected, the filter sees the original destination, and the
// bytes reach the real server and come back; and that a filter close sends no SYN at all (§3.3).
test("sidecar in a pod namespace behind iptables REDIRECT forwards to the original destination", { skip: why() }, async () => {
  assert.ok(existsSync(ADDON), `SO_ORIGINAL_DST addon missing (${ADDON}): ${existsSync(ADDON.replace(/\.node$/, ".status")) ? readFileSync(ADDON.replace(/\.node$/, ".status"), "utf8") : "run npm run build"}`);
  process.once("exit", cleanup);
  try {
    setupNamespaces();

    const echo = await start(["ip", "netns", "exec", SRV, process.execPath, "-e", ECHO], /ready/, "echo server");
    const sidecar = await start(sidecarArgs(["--wasm", `${root}filter/build/test/host_minimal.wasm`]), /egret sidecar listening/, "egret sidecar");

    const r = await runClient();
    assert.deepEqual(r, { data: "hello through REDIRECT" });
    // The filter read destination.address = the ORIGINAL destination, recovered by SO_ORIGINAL_DST.
    await waitFor(sidecar.out, new RegExp(`minimal: connection to ${SRV_IP.replace(/\./g, "\\.")}:7000`), "the filter's log line");
    await waitFor(sidecar.out, /"bytesUpstream":22,"bytesDownstream":22/, "the connection summary");
    // The server saw the sidecar's connection from the pod address.
    await waitFor(echo.out, new RegExp(`accepted (::ffff:)?${POD_IP.replace(/\./g, "\\.")} total=1`), "the server's accept");
    assert.equal(await stop(sidecar.child), 0);

    const denying = await start(sidecarArgs(["--wasm", `${root}filter/build/test/host_probe.wasm`, "--plugin-config", "close-in-new"]), /egret sidecar listening/, "denying sidecar");
    const d = await runClient();
    assert.ok(d.error === "ECONNRESET" || d.data === "", `client should get nothing back: ${JSON.stringify(d)}`);
    await waitFor(denying.out, /"detail":"wasm_downstream_close"/, "the filter's close");
    assert.doesNotMatch(echo.out(), /total=2/, "no connection reached the server");
    assert.equal(await stop(denying.child), 0);
  } finally {
    cleanup();
  }
});

// Test IPv6 (IP6T_SO_ORIGINAL_DST) and a dual-stack listener that also takes IPv4 (SO_ORIGINAL_DST
// read on an AF_INET6 socket for a v4-mapped client).
test("dual-stack sidecar: IPv6 and IPv4 redirected connections reach their original destinations", { skip: why() }, async () => {
  assert.ok(existsSync(ADDON), `SO_ORIGINAL_DST addon missing (${ADDON}); run npm run build`);
  process.once("exit", cleanup);
  try {
    setupNamespaces();
    // IPv6 REDIRECT of locally generated traffic goes to ::1; IPv4 to 127.0.0.1: listen on both.
    const echo = await start(["ip", "netns", "exec", SRV, process.execPath, "-e", ECHO], /ready/, "echo server");
    const sidecar = await start(sidecarArgs(["--wasm", `${root}filter/build/test/host_minimal.wasm`], "[::]:15001"), /egret sidecar listening/, "dual-stack sidecar");
    assert.deepEqual(await runClient(SRV_IP6), { data: "hello through REDIRECT" });
    await waitFor(sidecar.out, new RegExp(`minimal: connection to \\[${SRV_IP6.replace(/:/g, ":")}\\]:7000`), "the IPv6 original destination");
    await waitFor(echo.out, /accepted 2001:2:/, "the server's IPv6 accept");
    assert.deepEqual(await runClient(SRV_IP), { data: "hello through REDIRECT" });
    await waitFor(sidecar.out, new RegExp(`minimal: connection to ${SRV_IP.replace(/\./g, "\\.")}:7000`), "the IPv4 original destination");
    assert.equal(await stop(sidecar.child), 0);
  } finally {
    cleanup();
  }
});
