// Scenario steps as real client programs run inside a pod's network namespace (as root, so their
// TCP goes through the REDIRECT to the sidecar, like an application's would).
import { fileURLToPath } from "node:url";
import { isIPv4 } from "node:net";
import { run, type RunResult } from "./exec.js";
import { findProgram } from "./services/programs.js";
import type { ConnectStep, ResolveStep, UdpStep } from "./scenario.js";
import type { World } from "./world.js";
import { formatHostPort, parseHostPort } from "../common/host-port.js";

/** Client programs per scenario client name, with their Debian packages. */
export const CLIENT_PROGRAMS: Record<ConnectStep["client"] | ResolveStep["with"], [string, string][]> = {
  psql: [["psql", "postgresql-client"]],
  mariadb: [["mariadb", "mariadb-client"]],
  "redis-cli": [["redis-cli", "redis-tools"]],
  curl: [["curl", "curl"]],
  openssl: [["openssl", "openssl"]],
  tcp: [],
  dig: [["dig", "dnsutils"]],
  getent: [["getent", "libc-bin"]],
  node: [],
};

const CLIENT_TIMEOUT_MS = 30_000;
/** What a working server answers; a client that prints it reached the real service. */
const MARKER = "egret-mesh-ok";

export interface ConnectResult {
  outcome: "connected" | "refused";
  command: string;
  /** The client's output, trimmed, for failure messages. */
  output: string;
}

export interface ResolveResult {
  rcode: string;
  addresses: string[];
  command: string;
  output: string;
}

export interface ClientEnv {
  netns: string;
  world: World;
  /** PEM file trusted for the web service's certificate. */
  caFile: string;
  /** Run the client with this uid/gid (a connect step's `as: proxy-uid`). */
  runAs?: { uid: number; gid: number };
}

function inPod(env: ClientEnv, cmd: string, args: string[], extraEnv?: NodeJS.ProcessEnv): Promise<RunResult> {
  // As the proxy: the sidecar's uid/gid, which the REDIRECT exempts (a process the pod runs as 1337).
  const as = env.runAs ? ["setpriv", `--reuid=${env.runAs.uid}`, `--regid=${env.runAs.gid}`, "--clear-groups"] : [];
  return run("ip", ["netns", "exec", env.netns, ...as, cmd, ...args], { timeoutMs: CLIENT_TIMEOUT_MS, env: { ...process.env, ...extraEnv } });
}

function hostPort(step: ConnectStep, port: number): string {
  return formatHostPort(step.to, port);
}

export async function runConnect(env: ClientEnv, step: ConnectStep): Promise<ConnectResult> {
  let r: RunResult;
  let ok: (r: RunResult) => boolean;
  switch (step.client) {
    case "psql":
      r = await inPod(env, findProgram("psql", "postgresql-client"), ["-h", step.to, "-p", String(step.port), "-U", "postgres", "-d", "postgres", "-w", "-tA", "-c", `select '${MARKER}'`], { PGCONNECT_TIMEOUT: "10", PGSSLMODE: "disable" });
      ok = (x) => x.code === 0 && x.stdout.includes(MARKER);
      break;
    case "mariadb":
      r = await inPod(env, findProgram("mariadb", "mariadb-client"), ["--no-defaults", "-h", step.to, "-P", String(step.port), "-u", "root", "--connect-timeout=10", "--skip-ssl", "-N", "-e", `select '${MARKER}'`]);
      ok = (x) => x.code === 0 && x.stdout.includes(MARKER);
      break;
    case "redis-cli":
      r = await inPod(env, findProgram("redis-cli", "redis-tools"), ["-h", step.to, "-p", String(step.port), "ECHO", MARKER]);
      ok = (x) => x.code === 0 && x.stdout.includes(MARKER);
      break;
    case "curl": {
      const scheme = step.scheme ?? (step.port === undefined || step.port === 443 ? "https" : "http");
      const port = step.port ?? (scheme === "https" ? 443 : 80);
      const url = `${scheme}://${hostPort(step, port)}${step.path ?? "/"}`;
      const args = ["-sS", "--max-time", "15", "--cacert", env.caFile, "-o", "-", url];
      if (step.host) args.push("-H", `Host: ${step.host}`);
      if (step.proxy) args.push("--proxy", `http://${step.proxy}`);
      r = await inPod(env, findProgram("curl", "curl"), args);
      ok = (x) => x.code === 0 && x.stdout.startsWith("egret-mesh-web");
      break;
    }
    case "openssl": {
      const args = ["s_client", "-connect", hostPort(step, step.port ?? 443), "-CAfile", env.caFile, "-verify_return_error", "-brief"];
      const sni = step.sni ?? (isIPv4(step.to) ? undefined : step.to);
      if (sni) args.push("-servername", sni);
      r = await run("ip", ["netns", "exec", env.netns, findProgram("openssl", "openssl"), ...args], { timeoutMs: CLIENT_TIMEOUT_MS, input: "" });
      ok = (x) => x.code === 0 && /Verification: OK|Verify return code: 0/.test(x.stdout + x.stderr);
      break;
    }
    case "tcp": {
      const probe = fileURLToPath(new URL("./probes/tcp-probe.js", import.meta.url));
      const payload = Buffer.from(step.send ?? "", "utf8").toString("base64");
      r = await inPod(env, process.execPath, [probe, step.to, String(step.port), payload, String(step.silenceMs ?? 0)]);
      ok = (x) => x.code === 0 && x.stdout.includes('"connected":true');
      break;
    }
  }
  return { outcome: ok(r) ? "connected" : "refused", command: r.command, output: (r.stdout + r.stderr).trim().slice(-800) };
}

/**
 * The bytes of a UDP step: the first bytes of a QUIC v1 Initial (long header, version 1, 8-byte
 * destination connection ID, padded to 1200 bytes as clients do), a DNS query, or arbitrary bytes.
 */
export function udpPayload(step: UdpStep): Buffer {
  switch (step.payload) {
    case "quic": {
      const b = Buffer.alloc(1200);
      Buffer.from([0xc3, 0, 0, 0, 1, 8, 0x83, 0x94, 0xc8, 0xf0, 0x3e, 0x51, 0x57, 0x08, 0]).copy(b);
      return b;
    }
    case "dns": {
      const labels = (step.name ?? "example.test").split(".").flatMap((l) => [l.length, ...Buffer.from(l)]);
      return Buffer.from([0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, ...labels, 0, 0, 1, 0, 1]);
    }
    case "raw":
      return Buffer.from("egret-mesh-udp");
  }
}

/** Sends one UDP datagram from the pod to `ip`:`port` (nothing needs to answer). */
export async function runUdp(env: ClientEnv, step: UdpStep, ip: string): Promise<RunResult> {
  const script = `const s = require("dgram").createSocket("udp4");
    s.send(Buffer.from(process.argv[3], "base64"), Number(process.argv[2]), process.argv[1], (e) => { if (e) { console.error(e.message); process.exitCode = 1; } s.close(); });`;
  return inPod(env, process.execPath, ["-e", script, ip, String(step.port), udpPayload(step).toString("base64")]);
}

export async function runResolve(env: ClientEnv, step: ResolveStep): Promise<ResolveResult> {
  switch (step.with) {
    case "dig": {
      const r = await inPod(env, findProgram("dig", "dnsutils"), [...(step.tcp ? ["+tcp"] : []), "+time=2", "+tries=2", step.name, "A"]);
      const rcode = /status: ([A-Z]+)/.exec(r.stdout)?.[1] ?? (r.code === 0 ? "NOERROR" : "TIMEOUT");
      const answer = r.stdout.split(";; ANSWER SECTION:")[1]?.split("\n\n")[0] ?? "";
      const addresses = [...answer.matchAll(/\sIN\s+A\s+(\d+\.\d+\.\d+\.\d+)/g)].map((m) => m[1]!);
      return { rcode, addresses, command: r.command, output: r.stdout.trim().slice(-800) };
    }
    case "getent": {
      const r = await inPod(env, "getent", ["ahostsv4", step.name]);
      const addresses = [...new Set(r.stdout.split("\n").map((l) => l.split(/\s+/)[0]!).filter((a) => isIPv4(a)))];
      return { rcode: r.code === 0 ? "NOERROR" : r.code === 2 ? "NXDOMAIN" : `exit ${r.code}`, addresses, command: r.command, output: r.stdout.trim() };
    }
    case "node": {
      const script = `require("dns").promises.lookup(process.argv[1], { all: true, family: 4 })
        .then((a) => console.log(JSON.stringify({ rcode: "NOERROR", addresses: a.map((x) => x.address) })))
        .catch((e) => console.log(JSON.stringify({ rcode: e.code === "ENOTFOUND" ? "NXDOMAIN" : e.code, addresses: [] })));`;
      const r = await inPod(env, process.execPath, ["-e", script, step.name]);
      try {
        const j = JSON.parse(r.stdout.trim()) as { rcode: string; addresses: string[] };
        return { ...j, command: r.command, output: r.stdout.trim() };
      } catch {
        return { rcode: `exit ${r.code}`, addresses: [], command: r.command, output: (r.stdout + r.stderr).trim() };
      }
    }
  }
}

/**
 * The address a connect step reaches (the proxy's, when it goes through one): the pod's DNS
 * proxy's answer for a ServiceEntry host (`meshAddress`), else the world's records — used to find
 * the step's verdict in the audit log.
 */
export function expectedDestination(world: World, step: ConnectStep, meshAddress: (name: string) => string | undefined = () => undefined): { ip?: string; port: number } {
  const proxy = step.proxy ? parseHostPort(step.proxy, "scenario step proxy") : undefined;
  const target = proxy ? proxy.host : step.to;
  const port = proxy ? proxy.port : step.port ?? ((step.scheme ?? "https") === "https" ? 443 : 80);
  return { ip: isIPv4(target) ? target : meshAddress(target) ?? worldAddress(world, target), port };
}

/** Follows the world's CNAME and wildcard records to an A record's address. */
export function worldAddress(world: World, name: string, depth = 0): string | undefined {
  if (depth > 8) return undefined;
  const exact = world.records.find((r) => r.name === name);
  const wild = exact ?? world.records.find((r) => r.name.startsWith("*.") && name.endsWith(r.name.slice(1)) && !name.slice(0, name.length - r.name.length + 1).includes("."));
  if (!wild) return undefined;
  return wild.type === "A" ? wild.value : worldAddress(world, wild.value, depth + 1);
}
