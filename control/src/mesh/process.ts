// A long-running program (server, egret component) started by the mesh: output goes to a log
// file, readiness is polled, stop() escalates SIGTERM → SIGKILL, and every process still alive
// when Node exits is killed, so a failing or interrupted test leaves nothing running.
import { spawn, type ChildProcess } from "node:child_process";
import { openSync, closeSync, readFileSync, existsSync, writeSync } from "node:fs";
import { commandLine } from "./exec.js";

const live = new Set<ManagedProcess>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on("exit", () => {
    for (const p of live) p.killNow();
  });
}

export interface StartOptions {
  /** Short name used in messages, e.g. "postgresql" or "sidecar shop/app". */
  name: string;
  cmd: string;
  args: readonly string[];
  /** File receiving stdout and stderr (appended). */
  logFile: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

/** The program ended before it was asked to; the message carries the end of its log. */
export class ProcessExitedError extends Error {}

export class ManagedProcess {
  readonly name: string;
  readonly logFile: string;
  readonly commandLine: string;
  private readonly child: ChildProcess;
  private exitInfo: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  private readonly exited: Promise<void>;
  private stopping = false;

  private constructor(opts: StartOptions) {
    this.name = opts.name;
    this.logFile = opts.logFile;
    this.commandLine = commandLine(opts.cmd, opts.args);
    const fd = openSync(opts.logFile, "a");
    try {
      // Own process group, so stop() also reaches helpers the program forks.
      this.child = spawn(opts.cmd, opts.args, { env: opts.env ?? process.env, cwd: opts.cwd, stdio: ["ignore", fd, fd], detached: true });
    } finally {
      closeSync(fd);
    }
    this.exited = new Promise((resolve) => {
      this.child.on("error", (e) => { this.exitInfo ??= { code: 127, signal: null }; appendNote(this, `spawn failed: ${e.message}`); resolve(); });
      this.child.on("exit", (code, signal) => { this.exitInfo = { code, signal }; resolve(); });
    });
    void this.exited.then(() => live.delete(this));
    live.add(this);
    installExitHook();
  }

  static start(opts: StartOptions): ManagedProcess {
    return new ManagedProcess(opts);
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get running(): boolean {
    return this.exitInfo === undefined;
  }

  /** The last lines of the program's output, for error messages. */
  logTail(lines = 15): string {
    if (!existsSync(this.logFile)) return "";
    const text = readFileSync(this.logFile, "utf8");
    return text.trimEnd().split("\n").slice(-lines).join("\n");
  }

  /** Throws ProcessExitedError if the program has already ended. */
  assertRunning(): void {
    if (this.exitInfo) {
      const { code, signal } = this.exitInfo;
      throw new ProcessExitedError(`${this.name} exited (${signal ?? `code ${code}`}); command: ${this.commandLine}\n--- ${this.logFile} (end) ---\n${this.logTail()}`);
    }
  }

  /**
   * Polls `probe` until it returns true; fails early if the program exits, and after `timeoutMs`
   * with the log tail. Probes must not throw for "not yet".
   */
  async waitReady(probe: () => Promise<boolean> | boolean, timeoutMs = 30_000, what = "ready"): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let delay = 20;
    for (;;) {
      this.assertRunning();
      let ok = false;
      try { ok = await probe(); } catch { ok = false; }
      if (ok) return;
      if (Date.now() > deadline) {
        throw new Error(`${this.name} not ${what} after ${timeoutMs} ms; command: ${this.commandLine}\n--- ${this.logFile} (end) ---\n${this.logTail()}`);
      }
      await sleep(delay);
      delay = Math.min(delay * 2, 250);
    }
  }

  /** Resolves when the program has exited (for whatever reason). */
  waitExit(): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    return this.exited.then(() => this.exitInfo!);
  }

  /** SIGTERM to the process group, SIGKILL after `graceMs`; resolves once it has exited. */
  async stop(graceMs = 5_000): Promise<void> {
    if (!this.running) return;
    this.stopping = true;
    this.signalGroup("SIGTERM");
    const done = await Promise.race([this.exited.then(() => true), sleep(graceMs).then(() => false)]);
    if (!done) {
      this.signalGroup("SIGKILL");
      await Promise.race([this.exited, sleep(graceMs)]);
    }
  }

  /** Immediate SIGKILL (used to simulate a crash, and by the exit hook). */
  killNow(): void {
    this.stopping = true;
    this.signalGroup("SIGKILL");
  }

  /** True when stop()/killNow() was called, so an exit is expected. */
  get stopRequested(): boolean {
    return this.stopping;
  }

  private signalGroup(sig: NodeJS.Signals): void {
    const pid = this.child.pid;
    if (pid === undefined || !this.running) return;
    try { process.kill(-pid, sig); } catch { try { process.kill(pid, sig); } catch { /* already gone */ } }
  }
}

function appendNote(p: ManagedProcess, note: string): void {
  try {
    const fd = openSync(p.logFile, "a");
    try { writeSync(fd, `[mesh] ${note}\n`); } finally { closeSync(fd); }
  } catch { /* the log is best effort */ }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
