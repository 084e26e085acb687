// Child process for bench/cases/70-watch-fanout: a real `egret control` service (file mode) whose
// CPU time the parent reads over IPC, so the figure is the control's own, not the clients'.
// argv: PODS [AGENTS]: with AGENTS > 0 (bench/cases/72-agent-streams), pod i runs on node
// `n${i % AGENTS}` and agent k authenticates with token `bench-agent-${k}` for node `n${k}` (the
// file-mode token check, the same path as `egret control --agent-token-file`).
// Protocol (process messages): → {port}; ← {cmd:"observe", rate, seconds, pods} → {sent: [seq, t][]};
// ← {cmd:"cpu"} → {cpuMs}; ← {cmd:"mem"} → {mem: {rss, heap}} (after a full GC); ← {cmd:"stop"}.
import { mkdtempSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { ControlService } from "../../control/src/control/service.js";
import { fileControlSource } from "../../control/src/control/file-source.js";
import { defaultPolicyApi } from "../../control/src/control/policy-api.js";
import { createControlMetrics } from "../../control/src/control/metrics.js";
import { silentLogger } from "../../control/src/common/log.js";
import { ipToBytes } from "../../control/src/proto/index.js";
import { FileAgentAuthenticator } from "../../control/src/auth/agent-tokens.js";

const pods = Number(process.argv[2] ?? 1000);
const agents = Number(process.argv[3] ?? 0);
const dir = mkdtempSync(join(tmpdir(), "egret-bench-fanout-"));
const podIp = (i: number) => `10.${100 + (i >> 16)}.${(i >> 8) & 0xff}.${i & 0xff}`;
/** Destination of observation `seq`: the parent recovers seq from the upserted address. */
const seqIp = (seq: number) => `10.${200 + (seq >> 16)}.${(seq >> 8) & 0xff}.${seq & 0xff}`;

async function main(): Promise<void> {
  const lines = ["pods:"];
  const nodeOf = (i: number) => (agents > 0 ? `, node: n${i % agents}` : "");
  for (let i = 0; i < pods; i++) lines.push(`  - {name: p${i}, namespace: bench, ip: ${podIp(i)}${nodeOf(i)}, labels: {app: web}}`);
  writeFileSync(join(dir, "pods.yaml"), lines.join("\n") + "\n");
  writeFileSync(join(dir, "agent-tokens"), Array.from({ length: agents }, (_, k) => `bench-agent-${k} n${k}\n`).join(""));
  writeFileSync(join(dir, "policy.yaml"), `apiVersion: egret.dev/v1alpha1
kind: EgressPolicy
metadata: {name: web, namespace: bench}
spec:
  podSelector: {matchLabels: {app: web}}
  rules:
    - {name: api, action: Allow, to: {domains: ["**.example.com"]}}
`);
  const service = new ControlService({
    policyApi: defaultPolicyApi, log: silentLogger(), grpcListen: "127.0.0.1:0", audit: { write: () => undefined },
    source: fileControlSource({ policyPaths: [join(dir, "policy.yaml")], podsFile: join(dir, "pods.yaml"), policyApi: defaultPolicyApi, log: silentLogger() }),
    metrics: createControlMetrics({ defaultMetrics: false }),
    // The 1,000 streams share 10 loopback connections, so filters cannot be bound to pods by
    // source address here: the documented SNAT escape hatch serves them by the pod they name.
    // Binding is one check per SUBSCRIBE (control/test/unit/control-trust.test.ts proves it);
    // what this case measures — deltas fanned out to open streams — is the same either way.
    filterSnatPeers: ["127.0.0.1/32"],
    // …and from one source address, so the per-peer limits (64 streams) are raised to fit them.
    // The agents too: each is its own node (address) in a cluster, all 127.0.0.1 here.
    peerLimits: { maxStreamsPerPeer: pods + agents + 16, maxLookupsPerPeer: 100_000, ...(agents > 0 ? { maxConnectionsPerPeer: agents + 64 } : {}) },
    ...(agents > 0 ? { agentAuth: new FileAgentAuthenticator(join(dir, "agent-tokens"), silentLogger()) } : {}),
  });
  const { grpcPort } = await service.start();
  const stop = async () => { await service.stop(); rmSync(dir, { recursive: true, force: true }); process.exit(0); };
  process.on("disconnect", () => void stop());
  process.on("message", (m: { cmd: string; rate?: number; seconds?: number; pods?: number }) => {
    if (m.cmd === "cpu") { const u = process.cpuUsage(); process.send!({ cpuMs: (u.user + u.system) / 1000 }); return; }
    if (m.cmd === "stop") { void stop(); return; }
    if (m.cmd === "mem") {
      (globalThis as { gc?: () => void }).gc?.();
      const u = process.memoryUsage();
      process.send!({ mem: { rss: u.rss, heap: u.heapUsed + u.external } });
      return;
    }
    if (m.cmd !== "observe") return;
    // Observations at `rate`/s for `seconds`, round-robin over the first `pods` pods, in 1 ms ticks.
    const total = Math.round(m.rate! * m.seconds!);
    const sent: [number, number][] = [];
    const t0 = performance.now();
    let seq = 0;
    const tick = () => {
      const due = Math.min(total, Math.round(((performance.now() - t0) / 1000) * m.rate!));
      for (; seq < due; seq++) {
        const name = `n${seq}.example.com`;
        sent.push([seq, performance.timeOrigin + performance.now()]);
        service.store.record(ipToBytes(podIp(seq % m.pods!)), { queryName: name, cnameChain: [], answers: [{ ip: ipToBytes(seqIp(seq)), ttlSeconds: 300 }], observedUnixMs: Date.now() });
      }
      if (seq < total) setTimeout(tick, 1);
      else process.send!({ sent });
    };
    tick();
  });
  process.send!({ port: grpcPort });
}

await main();
