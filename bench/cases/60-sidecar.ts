// `egret sidecar` for reference: connect latency (connect + one echo round trip) and bulk
// throughput through the real proxy running egret.wasm (a CIDR rule allows loopback; decisions
// come from the real control service in file mode), beside direct connections in the same run.
// The sidecar runs as its own process (`egret sidecar --target`), as in a pod.
import { spawn, type ChildProcess } from "node:child_process";
import net from "node:net";
import { fileURLToPath } from "node:url";
import { startFileControl, type FileControl } from "../../control/test/support/file-control.js";
import { summarize, type BenchCase } from "../harness.js";

const BIN = fileURLToPath(new URL("../../../bin/egret.js", import.meta.url));
const CLUSTER = "outbound|9090||egret-control.egret-system.svc.cluster.local";
const POLICY = `
apiVersion: egret.dev/v1alpha1
kind: EgressPolicy
metadata: {name: loopback, namespace: bench}
spec:
  podSelector: {matchLabels: {app: bench}}
  rules:
    - {name: loopback, action: Allow, to: {cidrs: [{cidr: 127.0.0.0/8}]}}
`;

function listen(server: net.Server): Promise<number> {
  return new Promise((r) => server.listen(0, "127.0.0.1", () => r((server.address() as net.AddressInfo).port)));
}

async function roundTrip(port: number, timeoutMs = 10_000): Promise<number> {
  const t0 = process.hrtime.bigint();
  await new Promise<void>((resolve, reject) => {
    const s = net.connect(port, "127.0.0.1", () => s.write("ping"));
    const timer = setTimeout(() => { s.destroy(); reject(new Error("no echo in time")); }, timeoutMs);
    s.once("data", () => { clearTimeout(timer); s.destroy(); resolve(); });
    s.once("error", (e) => { clearTimeout(timer); reject(e); });
    s.once("close", () => { clearTimeout(timer); reject(new Error("closed before the echo (denied?)")); });
  });
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

async function bulk(port: number, bytes: number): Promise<number> {
  const chunk = Buffer.alloc(64 * 1024, 7);
  const t0 = process.hrtime.bigint();
  await new Promise<void>((resolve, reject) => {
    const s = net.connect(port, "127.0.0.1", async () => {
      for (let sent = 0; sent < bytes; sent += chunk.length) if (!s.write(chunk)) await new Promise((r) => s.once("drain", r));
      s.end();
    });
    s.on("data", () => undefined);
    s.once("close", () => resolve());
    s.once("error", reject);
  });
  return bytes / 2 ** 20 / (Number(process.hrtime.bigint() - t0) / 1e9);
}

export const benchCase: BenchCase = {
  name: "egret sidecar vs direct connection (loopback)",
  async run(ctx) {
    let sidecar: ChildProcess | undefined;
    let control: FileControl | undefined;
    // One echo server upstream (pipe keeps back-pressure), for round trips and bulk alike.
    const echo = net.createServer((s) => { s.pipe(s); s.on("error", () => undefined); });
    try {
      const echoPort = await listen(echo);
      control = await startFileControl({ policy: POLICY, pods: "pods:\n  - {name: bench-0, namespace: bench, ip: 127.0.0.1, node: node-1, labels: {app: bench}}\n" });
      const { grpcPort } = control;
      const startSidecar = async (target: number): Promise<{ proc: ChildProcess; port: number }> => {
        const probe = net.createServer(); const port = await listen(probe); await new Promise((r) => probe.close(r));
        let lastError = "";
        const proc = spawn(process.execPath, [BIN, "sidecar", "--listen", `127.0.0.1:${port}`, "--target", `127.0.0.1:${target}`,
          "--pod-name", "bench-0", "--pod-namespace", "bench", "--pod-label", "app=bench", "--pod-ip", "127.0.0.1",
          "--grpc-cluster", `${CLUSTER}=127.0.0.1:${grpcPort}`, "--plugin-config", JSON.stringify({ controlCluster: CLUSTER }),
          "--concurrency", "1", "--log-level", process.env.EGRET_BENCH_DEBUG ? "info" : "error"], { stdio: ["ignore", process.env.EGRET_BENCH_DEBUG ? "inherit" : "ignore", "inherit"] });
        for (const deadline = Date.now() + 20_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 100))) {
          try { await roundTrip(port, 2000); return { proc, port }; } catch (e) { lastError = (e as Error).message; if (process.env.EGRET_BENCH_DEBUG) console.error("probe:", lastError); }
        }
        proc.kill();
        throw new Error(`egret sidecar did not start (last attempt: ${lastError})`);
      };
      const n = Math.max(200, Math.round(2000 * ctx.scale));
      const viaEcho = await startSidecar(echoPort);
      sidecar = viaEcho.proc;
      const direct: number[] = [], proxied: number[] = [];
      for (let i = 0; i < n; i++) { direct.push(await roundTrip(echoPort)); proxied.push(await roundTrip(viaEcho.port)); }
      // Bulk through the same echo: every byte crosses the proxy twice (up and back), for both.
      const bytes = (ctx.scale >= 1 ? 256 : 32) * 2 ** 20;
      const directTput = await bulk(echoPort, bytes);
      const proxiedTput = await bulk(viaEcho.port, bytes);
      const d = summarize(direct), p = summarize(proxied);
      return [{
        name: "connect + first round trip through egret sidecar, p50", value: p.p50 * 1000, unit: "µs",
        baseline: { name: "direct, p50", value: d.p50 * 1000, unit: "µs" }, extra: { sidecarP99us: p.p99 * 1000, directP99us: d.p99 * 1000 },
      }, {
        name: `bulk echo throughput through egret sidecar (${bytes / 2 ** 20} MiB each way)`, value: proxiedTput, unit: "MiB/s",
        baseline: { name: "direct", value: directTput, unit: "MiB/s" },
      }];
    } finally {
      sidecar?.kill("SIGTERM");
      await control?.stop();
      echo.close();
    }
  },
};
