// End-to-end: the agent's own capture path (AF_PACKET, TPACKET_V3 ring, reader thread; no libpcap)
// under a DNS flood, run the way the shipped image runs it: PATH holds `node` and nothing else, so
// no `ss`, no `ip`, no iproute2 — drop counters must come from the kernel through the addon.
// A pod namespace floods a responder in the node namespace with distinct A queries as fast as it can
// (bench/native/dns-flood.c, compiled here); the agent captures on the node side of the pod's veth
// and streams to a fake control replica. Assertions are counts, never durations:
//   - with a ring that holds the whole flood, every answer the responder sent is evidence and
//     reaches control, nothing is dropped, and the kernel's count equals the frames read;
//   - with a tiny ring while the agent is stopped (SIGSTOP), the kernel's drops are counted and
//     add up (kernel packets = frames read + ring drops + queue drops), and the agent still
//     observes answers afterwards;
//   - a 4.8 KB answer over UDP, fragmented by the responder's kernel on the veth (MTU 1500), is
//     captured (the kernel filter admits fragments), reassembled and observed in full (dig).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, symlinkSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { claimPrefix, releasePrefix } from "../../src/mesh/netns.js";

const ROOT = process.cwd();
const TOOLS = join(ROOT, "dist/control/test/e2e/agent-tools.js");
const RESOLVER = "198.18.214.1", POD = "198.18.214.2";
const CONTROL_PORT = 7450, METRICS_PORT = 9150;

function missing(): string | undefined {
  if (process.getuid?.() !== 0) return "needs root (network namespaces, packet sockets)";
  for (const bin of ["ip", "cc", "dig"]) if (spawnSync("sh", ["-c", `command -v ${bin}`]).status !== 0) return `${bin} not installed (see scripts/apt-packages.txt)`;
  if (!existsSync(join(ROOT, "dist/native/packet_ring.node"))) return "capture addon dist/native/packet_ring.node not built (npm run build:native)";
  return undefined;
}
const skip = missing();

let prefix = "";
let tmp = "";
let flood = "";
const procs: ChildProcess[] = [];
let log = "";
const ns = { node: "", pod: "" };

function sh(...cmd: string[]): string {
  return execFileSync(cmd[0]!, cmd.slice(1), { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
}

function inNs(name: string, ...cmd: string[]): string {
  return sh("ip", "netns", "exec", name, ...cmd);
}

function startIn(name: string, cmd: string[], onLine?: (line: string) => void): ChildProcess {
  const p = spawn("ip", ["netns", "exec", name, ...cmd], { stdio: ["ignore", "pipe", "pipe"] });
  procs.push(p);
  if (onLine) createInterface({ input: p.stdout! }).on("line", onLine);
  else p.stdout!.resume();
  p.stderr!.on("data", (d: Buffer) => { log += d.toString(); if (log.length > 100_000) log = log.slice(-50_000); });
  return p;
}

async function stopProc(p: ChildProcess, signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return;
  const exited = new Promise((r) => p.once("exit", r));
  p.kill(signal);
  await exited;
}

async function eventually<T>(what: string, fn: () => T | undefined | false, timeoutMs = 120_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let v: T | undefined | false;
    try { v = fn(); } catch { v = undefined; }
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\n--- stderr ---\n${log.slice(-4000)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

function metrics(): Map<string, number> {
  const text = inNs(ns.node, process.execPath, TOOLS, "fetch", `http://127.0.0.1:${METRICS_PORT}/metrics`);
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    const m = /^(egret_agent_[a-z_]+) (\d+(?:\.\d+)?(?:e\+\d+)?)$/.exec(line);
    if (m) out.set(m[1]!, Number(m[2]));
  }
  return out;
}

const M = (m: Map<string, number>, name: string): number => {
  const v = m.get(name);
  if (v === undefined) throw new Error(`metric ${name} missing`);
  return v;
};

/** The agent with PATH = a directory holding only `node` (the image has node and tini, no iproute2). */
function startAgent(extra: string[]): ChildProcess {
  const bin = join(tmp, "image-bin");
  return startIn(ns.node, ["env", "-i", `PATH=${bin}`, "node", join(ROOT, "bin/egret.js"), "agent",
    "--interface", `${prefix}h`, "--trusted-resolver", RESOLVER, "--pod-cidr", `${POD}/32`,
    "--control", `127.0.0.1:${CONTROL_PORT}`, "--metrics-address", `127.0.0.1:${METRICS_PORT}`, "--node-name", "e2e",
    // The flood comes from one pod with many queries outstanding: this tests capture, not the per-pod caps.
    "--max-pending-per-pod", "200000", "--max-pending", "200000", "--max-observations-per-pod", "200000", "--max-observations", "200000",
    ...extra]);
}

function runFlood(count: number): { sent: number; answers: number } {
  return JSON.parse(inNs(ns.pod, flood, "query", RESOLVER, String(count))) as { sent: number; answers: number };
}

/** Starts the responder (resolves once it is bound); the function it gives stops it and resolves to the answers it sent. */
async function startResponder(): Promise<() => Promise<number>> {
  let answered = -1, ready = false;
  const p = startIn(ns.node, [flood, "serve", RESOLVER], (line) => {
    if (line.includes('"ready"')) ready = true;
    const m = /"answered":(\d+)/.exec(line);
    if (m) answered = Number(m[1]);
  });
  await eventually("the responder", () => ready, 30_000);
  return async () => {
    await stopProc(p);
    return eventually("the responder's count", () => answered >= 0 && answered, 10_000);
  };
}

let controlObservations = 0;
/** Observations the fake control printed (JSON lines). */
const controlLines: string[] = [];

before(async () => {
  if (skip) return;
  prefix = await claimPrefix("egQ");
  ns.node = `${prefix}node`;
  ns.pod = `${prefix}pod`;
  tmp = mkdtempSync(join(tmpdir(), "egQ-capture-"));
  flood = join(tmp, "dns-flood");
  sh("cc", "-O2", "-o", flood, join(ROOT, "bench/native/dns-flood.c"));
  mkdirSync(join(tmp, "image-bin"));
  symlinkSync(process.execPath, join(tmp, "image-bin", "node"));
  for (const n of [ns.node, ns.pod]) {
    spawnSync("ip", ["netns", "del", n]);
    sh("ip", "netns", "add", n);
    inNs(n, "ip", "link", "set", "lo", "up");
  }
  sh("ip", "link", "add", `${prefix}h`, "netns", ns.node, "type", "veth", "peer", "name", `${prefix}p`, "netns", ns.pod);
  inNs(ns.node, "ip", "addr", "add", `${RESOLVER}/24`, "dev", `${prefix}h`);
  inNs(ns.node, "ip", "link", "set", `${prefix}h`, "up");
  inNs(ns.pod, "ip", "addr", "add", `${POD}/24`, "dev", `${prefix}p`);
  inNs(ns.pod, "ip", "link", "set", `${prefix}p`, "up");
  let ready = false;
  startIn(ns.node, [process.execPath, TOOLS, "control", String(CONTROL_PORT)], (line) => {
    if (line.includes('"ready"')) ready = true;
    else if (line.includes('"qname"')) {
      controlObservations++;
      if (!line.includes(".flood.test")) controlLines.push(line);
    }
  });
  await eventually("fake control", () => ready, 30_000);
});

after(async () => {
  if (skip) return;
  for (const p of procs) await stopProc(p, "SIGKILL").catch(() => undefined);
  for (const n of [ns.node, ns.pod]) spawnSync("ip", ["netns", "del", n]);
  if (tmp) rmSync(tmp, { recursive: true, force: true });
  releasePrefix(prefix);
});

test("the image's PATH has no ss: the agent runs with node alone", { skip }, () => {
  const r = spawnSync("/bin/sh", ["-c", "command -v ss || command -v ip || command -v node"], { encoding: "utf8", env: { PATH: join(tmp, "image-bin") } });
  assert.equal(r.stdout.trim(), join(tmp, "image-bin", "node"));
});

test("under a flood, every answer sent is evidence and reaches control; nothing dropped; the kernel's count matches", { skip }, async () => {
  const agent = startAgent(["--capture-buffer-mb", "64"]);
  await eventually("agent metrics", () => M(metrics(), "egret_agent_capture_interfaces") === 1, 60_000);
  const stopResponder = await startResponder();
  const before = controlObservations;
  const { sent } = runFlood(30_000);
  const answered = await stopResponder();
  assert.ok(answered > 0 && answered <= sent, `responder answered ${answered} of ${sent}`);
  const m = await eventually(`${answered} answers accepted`, () => {
    const m = metrics();
    return M(m, "egret_agent_answers_accepted_total") >= answered && M(m, "egret_agent_dns_queries_total") >= sent && m;
  });
  assert.equal(M(m, "egret_agent_answers_accepted_total"), answered, "every answer is evidence, once");
  assert.equal(M(m, "egret_agent_dns_queries_total"), sent, "every query was seen");
  assert.equal(M(m, "egret_agent_capture_drops_total"), 0);
  assert.equal(M(m, "egret_agent_capture_queue_drops_total"), 0);
  assert.equal(M(m, "egret_agent_capture_kernel_packets_total"), M(m, "egret_agent_frames_captured_total"), "the kernel's count = frames read");
  assert.equal(M(m, "egret_agent_frames_captured_total"), sent + answered);
  await eventually("observations at control", () => controlObservations - before >= answered);
  assert.equal(controlObservations - before, answered);
  await stopProc(agent);
});

test("a stopped agent with a tiny ring: kernel drops are counted and add up; capture resumes", { skip }, async () => {
  const agent = startAgent(["--capture-buffer-mb", "1", "--capture-queue-mb", "1"]);
  await eventually("agent metrics", () => M(metrics(), "egret_agent_capture_interfaces") === 1, 60_000);
  const stopResponder = await startResponder();
  agent.kill("SIGSTOP");
  let sent = 0;
  try {
    sent = runFlood(30_000).sent;
  } finally {
    agent.kill("SIGCONT");
  }
  await stopResponder();
  const settled = await eventually("counters to settle", () => {
    const m = metrics();
    const read = M(m, "egret_agent_frames_captured_total");
    const lost = M(m, "egret_agent_capture_drops_total") + M(m, "egret_agent_capture_queue_drops_total");
    return read + lost === M(m, "egret_agent_capture_kernel_packets_total") && read + lost >= 2 * sent * 0.5 && m;
  });
  assert.ok(M(settled, "egret_agent_capture_drops_total") > 0, "a 1 MiB ring cannot hold 60,000 frames: the kernel dropped some, and they are counted");
  assert.ok(M(settled, "egret_agent_capture_ring_full_total") > 0);
  assert.ok(M(settled, "egret_agent_answers_accepted_total") < sent);
  // After the overload the agent observes again.
  const accepted = M(settled, "egret_agent_answers_accepted_total");
  const stop2 = await startResponder();
  const again = runFlood(50);
  const answered = await stop2();
  await eventually("evidence after the overload", () => M(metrics(), "egret_agent_answers_accepted_total") >= accepted + answered);
  assert.ok(again.sent === 50 && answered > 0 && answered <= 50, `sent ${again.sent}, answered ${answered}`);
  await stopProc(agent);
});

test("a large EDNS answer fragmented by the kernel is reassembled and is evidence, every address of it", { skip }, async () => {
  const agent = startAgent(["--capture-buffer-mb", "8"]);
  await eventually("agent metrics", () => M(metrics(), "egret_agent_capture_interfaces") === 1, 60_000);
  let ready = false;
  const big = startIn(ns.node, [process.execPath, TOOLS, "big", RESOLVER, "300"], (line) => { if (line.includes('"ready"')) ready = true; });
  await eventually("big responder", () => ready, 30_000);
  const out = inNs(ns.pod, "dig", "+bufsize=8192", "+ignore", "+tries=1", "+time=5", `@${RESOLVER}`, "fragmented.egret.test", "A");
  assert.match(out, /ANSWER: 300/, "dig got all 300 records over UDP");
  const m = await eventually("the reassembled answer", () => { const m = metrics(); return M(m, "egret_agent_answers_accepted_total") >= 1 && m; });
  assert.ok(M(m, "egret_agent_ip_reassembled_total") >= 1, "the answer arrived in fragments and was reassembled");
  assert.equal(M(m, "egret_agent_incomplete_datagrams_total"), 0);
  const line = await eventually("observation at control", () => controlLines.find((l) => l.includes("fragmented.egret.test")));
  assert.equal((JSON.parse(line) as { answers: unknown[] }).answers.length, 300);
  await stopProc(big);
  await stopProc(agent);
});
