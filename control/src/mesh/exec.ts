// Running external programs (ip, iptables, servers, clients) with captured output and a deadline.
import { spawn, spawnSync } from "node:child_process";

export interface RunOptions {
  /** Kill the program (SIGKILL) after this long; the result then has `timedOut: true`. */
  timeoutMs?: number;
  /** Written to the program's stdin, which is then closed. */
  input?: string | Uint8Array;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

export interface RunResult {
  command: string;
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

const DEFAULT_TIMEOUT_MS = 30_000;
/** Output kept per stream; clients in scenarios print little, servers log to files instead. */
const MAX_CAPTURE_BYTES = 1 << 20;

/** A program failed; the message carries the command line, exit status and stderr. */
export class CommandError extends Error {
  constructor(readonly result: RunResult) {
    const why = result.timedOut ? "timed out" : result.signal ? `killed by ${result.signal}` : `exited with ${result.code}`;
    const detail = (result.stderr || result.stdout).trim().split("\n").slice(-8).join("\n");
    super(`\`${result.command}\` ${why}${detail ? `:\n${detail}` : ""}`);
  }
}

export function commandLine(cmd: string, args: readonly string[]): string {
  return [cmd, ...args].map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, "'\\''")}'`)).join(" ");
}

/** Runs a program to completion; never rejects for a non-zero exit (see `mustRun`). */
export function run(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve) => {
    const command = commandLine(cmd, args);
    const child = spawn(cmd, args, { env: opts.env ?? process.env, cwd: opts.cwd, stdio: ["pipe", "pipe", "pipe"] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let outLen = 0;
    let errLen = 0;
    let timedOut = false;
    child.stdout.on("data", (b: Buffer) => { if (outLen < MAX_CAPTURE_BYTES) { out.push(b); outLen += b.length; } });
    child.stderr.on("data", (b: Buffer) => { if (errLen < MAX_CAPTURE_BYTES) { err.push(b); errLen += b.length; } });
    child.stdin.on("error", () => { /* the program may exit without reading its input */ });
    const timer = setTimeout(() => { timedOut = true; child.kill("SIGKILL"); }, opts.timeoutMs ?? DEFAULT_TIMEOUT_MS);
    child.on("error", (e) => {
      clearTimeout(timer);
      resolve({ command, code: 127, signal: null, stdout: "", stderr: `${cmd}: ${e.message}`, timedOut: false });
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ command, code, signal, timedOut, stdout: Buffer.concat(out).toString("utf8"), stderr: Buffer.concat(err).toString("utf8") });
    });
    if (opts.input !== undefined) child.stdin.end(opts.input);
    else child.stdin.end();
  });
}

/** Runs a program and throws CommandError unless it exits 0. */
export async function mustRun(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const r = await run(cmd, args, opts);
  if (r.code !== 0 || r.timedOut) throw new CommandError(r);
  return r;
}

/** Synchronous variant for exit handlers, where nothing asynchronous can run any more. */
export function runSync(cmd: string, args: readonly string[], timeoutMs = 10_000): { code: number | null; stdout: string } {
  const r = spawnSync(cmd, args, { encoding: "utf8", timeout: timeoutMs, stdio: ["ignore", "pipe", "pipe"] });
  return { code: r.status, stdout: r.stdout ?? "" };
}

/** Whether a program is on PATH (or an absolute path that exists and is executable). */
export function hasProgram(name: string): boolean {
  return spawnSync("sh", ["-c", `command -v "$1" >/dev/null 2>&1`, "sh", name]).status === 0;
}

/** Argument vector running `cmd args` inside network namespace `ns` (with its /etc/netns files). */
export function inNetns(ns: string, cmd: string, args: readonly string[] = []): [string, string[]] {
  return ["ip", ["netns", "exec", ns, cmd, ...args]];
}

/** Like inNetns, but the program runs as `uid`/`gid` (e.g. the sidecar's 1337, as Istio does). */
export function inNetnsAs(ns: string, uid: number, gid: number, cmd: string, args: readonly string[] = []): [string, string[]] {
  return ["ip", ["netns", "exec", ns, "setpriv", `--reuid=${uid}`, `--regid=${gid}`, "--clear-groups", cmd, ...args]];
}
