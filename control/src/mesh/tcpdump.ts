// Records what crosses one interface of a mesh namespace into a pcap file with tcpdump (the
// corpus and demo recorders). Ready once tcpdump says it is listening; stop() flushes and waits.
import { spawn, type ChildProcess } from "node:child_process";
import { statSync } from "node:fs";

export class TcpdumpCapture {
  private constructor(private readonly child: ChildProcess, private readonly exited: Promise<string>, private readonly file: string) {}

  /** Starts `tcpdump -i IFACE -w FILE [FILTER]` inside namespace `ns`; resolves when it listens. */
  static async start(ns: string, iface: string, file: string, filter: readonly string[] = []): Promise<TcpdumpCapture> {
    // -U: write each packet at once; -s 0: whole packets; -n: no name lookups (nothing leaves the mesh).
    const child = spawn("ip", ["netns", "exec", ns, "tcpdump", "-i", iface, "-U", "-s", "0", "-n", "-w", file, ...filter], { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    const exited = new Promise<string>((resolve) => {
      child.on("error", (e) => resolve(`tcpdump could not start: ${e.message} (apt-get install tcpdump)`));
      child.on("exit", (code, signal) => resolve(`tcpdump exited (${code ?? signal}): ${stderr.trim()}`));
    });
    const listening = new Promise<void>((resolve, reject) => {
      child.stderr!.on("data", (b: Buffer) => {
        stderr += b.toString();
        if (/listening on/.test(stderr)) resolve();
      });
      void exited.then((why) => reject(new Error(why)));
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
    try {
      await listening;
    } finally {
      clearTimeout(timer);
    }
    return new TcpdumpCapture(child, exited, file);
  }

  /**
   * Waits until tcpdump has written what the kernel queued for it (the file stops growing for
   * `quietMs`; on a busy machine tcpdump lags, and SIGINT drops what it has not read yet), then
   * SIGINT (tcpdump flushes and closes the file) and waits for it to exit.
   */
  async stop(quietMs = 700, maxWaitMs = 10_000): Promise<void> {
    const size = () => { try { return statSync(this.file).size; } catch { return 0; } };
    const until = Date.now() + maxWaitMs;
    let last = size();
    let stableSince = Date.now();
    while (Date.now() < until && Date.now() - stableSince < quietMs) {
      await new Promise((r) => setTimeout(r, 100));
      const now = size();
      if (now !== last) { last = now; stableSince = Date.now(); }
    }
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill("SIGINT");
    const timer = setTimeout(() => this.child.kill("SIGKILL"), 5_000);
    await this.exited;
    clearTimeout(timer);
  }
}
