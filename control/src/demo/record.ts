// `egret demo --record DIR` (root): records the demo's story in a real mesh so that `npm start`
// without root can replay it (./replay.ts). The pods' apps run without a sidecar, so every
// connection they attempt — denied ones included — crosses the wire; tcpdump on the outside
// namespace's interface captures the pods' DNS and TCP traffic. Written to DIR:
//   capture.pcap   what crossed the wire (Ethernet, pcap)
//   pods.yaml      the pods and namespaces (the format `egret control --pods` reads)
//   policies.yaml  the demo's policies
//   truth.json     what each app did: its action, the client address:port, what it saw
import { mkdirSync, readFileSync, writeFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { stringify } from "yaml";
import { MeshCluster } from "../mesh/cluster.js";
import { POD_ADDRESS_BASE } from "../mesh/session.js";
import { webCaPath } from "../mesh/services/index.js";
import { run } from "../mesh/exec.js";
import { TcpdumpCapture } from "../mesh/tcpdump.js";
import { DEMO_ACTIONS, DEMO_NAMESPACES, DEMO_POLICIES, DEMO_PODS, DEMO_WORLD, type DemoAction } from "./story.js";

export const RECORD_PREFIX = "egR";

/** One action of the story as the recorder saw it happen. */
export interface RecordedAction extends DemoAction {
  podIp: string;
  /** The address the app connected to (resolved by the pod itself, or given). */
  address: string | null;
  /** The app's side of the connection, "ip:port"; null when it never connected. */
  client: string | null;
  /** What the app saw without Egret in the path (HTTP status line or error). */
  appSaw: string;
}

export interface DemoTruth {
  recordedBy: string;
  recordedAt: string;
  actions: RecordedAction[];
}

/** Records the demo story into `dir`; resolves to the truth written. */
export async function recordDemo(dir: string, say: (s: string) => void): Promise<DemoTruth> {
  mkdirSync(dir, { recursive: true });
  const cluster = await MeshCluster.start({ prefix: RECORD_PREFIX, world: DEMO_WORLD });
  const scratch = mkdtempSync(join(tmpdir(), "egret-record-"));
  try {
    const podIps = new Map<string, string>();
    for (const [i, p] of DEMO_PODS.entries()) {
      const ip = `198.18.1.${POD_ADDRESS_BASE + i}`;
      await cluster.net.addPod(p.key, ip);
      podIps.set(p.key, ip);
    }
    const pcapTmp = join(scratch, "capture.pcap");
    const capture = await TcpdumpCapture.start(cluster.net.outsideNs, "eth0", pcapTmp);
    const ca = webCaPath({ net: cluster.net, world: DEMO_WORLD, workDir: cluster.workDir });
    const actions: RecordedAction[] = [];
    for (const a of DEMO_ACTIONS) {
      const done = await perform(cluster, a, podIps.get(a.pod)!, ca);
      say(`  ${a.pod.padEnd(14)} ${a.what.padEnd(44)} ${done.client ?? "-"} → ${done.appSaw}`);
      actions.push(done);
    }
    await new Promise((r) => setTimeout(r, 300)); // the last FIN/ACKs
    await capture.stop();
    // tcpdump's file is written as root in the scratch dir; copy the bytes into the repository.
    writeFileSync(join(dir, "capture.pcap"), readFileSync(pcapTmp));
    writeFileSync(join(dir, "pods.yaml"), stringify({
      namespaces: Object.entries(DEMO_NAMESPACES).map(([name, v]) => ({ name, labels: v.labels })),
      pods: DEMO_PODS.map((p) => ({ name: p.name, namespace: p.namespace, labels: p.labels, ips: [podIps.get(p.key)!] })),
    }));
    writeFileSync(join(dir, "policies.yaml"), DEMO_POLICIES.map((p) => stringify(p)).join("---\n"));
    const truth: DemoTruth = { recordedBy: "egret demo --record (control/src/demo/record.ts)", recordedAt: new Date().toISOString(), actions };
    writeFileSync(join(dir, "truth.json"), JSON.stringify(truth, null, 2) + "\n");
    return truth;
  } finally {
    await cluster.destroy();
    rmSync(scratch, { recursive: true, force: true });
  }
}

async function perform(cluster: MeshCluster, a: DemoAction, podIp: string, ca: string): Promise<RecordedAction> {
  const probe = fileURLToPath(new URL("../mesh/probes/app-probe.js", import.meta.url));
  const args = [probe, "--to", a.to, "--port", String(a.port), "--ca", ca];
  if (a.tls) args.push("--tls");
  if (a.sni) args.push("--sni", a.sni);
  if (a.host) args.push("--host", a.host);
  const r = await run("ip", ["netns", "exec", cluster.net.pod(a.pod).netns, process.execPath, ...args], { timeoutMs: 20_000 });
  let j: { ok?: boolean; status?: string; error?: string; address?: string; local?: string } = {};
  try { j = JSON.parse(r.stdout.trim().split("\n").at(-1) ?? "{}"); } catch { j = { error: r.stderr.trim().split("\n").at(-1) ?? "no output" }; }
  const appSaw = j.ok ? (j.status ?? "").replace(/^HTTP\/1\.[01] /, "") : (j.error ?? "failed");
  return { ...a, podIp, address: j.address ?? null, client: j.local ?? null, appSaw };
}
