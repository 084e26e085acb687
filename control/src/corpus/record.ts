// Records the project's own corpus (root): real servers and clients from Debian packages in the
// mesh's network namespaces, captured with tcpdump on the outside namespace's interface.
//   node dist/control/src/corpus/record.js [OUT_DIR]     (scripts/record-corpus; default corpus/protocols)
// One pod (no sidecar) runs each client once (the scenario clients, then protocol-clients.ts); the truth file is written from what each client did
// and printed — its command, its exit, the answer it got — never from what Egret decides.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { MeshCluster } from "../mesh/cluster.js";
import { loadWorld, type World } from "../mesh/world.js";
import { webCaPath } from "../mesh/services/index.js";
import { findProgram } from "../mesh/services/programs.js";
import { runConnect, worldAddress, type ClientEnv } from "../mesh/clients.js";
import { protocolClients } from "./protocol-clients.js";
import { run } from "../mesh/exec.js";
import { TcpdumpCapture } from "../mesh/tcpdump.js";
import type { ConnectStep } from "../mesh/scenario.js";

export const POD_IP = "198.18.1.10";

/** A TCP connection a client made, and the protocol its program speaks. */
export interface ConnectTruth {
  /** The client program (a scenario client name, or the program of protocol-clients.ts). */
  client: string;
  /** What sets this connection apart from others of its protocol (STARTTLS, MQTT 5, …). */
  variant?: string;
  /** The protocol label the detector must give (what the client program speaks first). */
  protocol: string;
  server: string;
  sni?: string;
  outcome: string;
  command: string;
}

/** A DNS lookup dig made, with what dig printed. */
export interface ResolveTruth {
  name: string;
  qtype: "A" | "AAAA";
  /** How the answer travelled: "udp", "tcp", or "udp-truncated+tcp" (TC over UDP, then TCP). */
  transport: "udp" | "tcp" | "udp-truncated+tcp";
  rcode: string;
  addresses: string[];
  /** CNAME owners and targets in answer order, "owner>target". */
  cnames: string[];
  command: string;
}

export interface CorpusTruth {
  recordedBy: string;
  recordedAt: string;
  podIp: string;
  resolver: string;
  connects: ConnectTruth[];
  resolves: ResolveTruth[];
}

interface ConnectPlan { step: ConnectStep; protocol: string; server: string; sni?: string }

function connectPlan(): ConnectPlan[] {
  const c = (client: ConnectStep["client"], to: string, extra: Partial<ConnectStep> = {}): ConnectStep => ({ kind: "connect", client, to, title: `${client} ${to}`, ...extra } as ConnectStep);
  return [
    { step: c("psql", "db.example.test", { port: 5432 }), protocol: "postgresql", server: "198.19.1.10:5432" },
    { step: c("mariadb", "mysql.example.test", { port: 3306 }), protocol: "mysql", server: "198.19.1.11:3306" },
    { step: c("redis-cli", "cache.example.test", { port: 6379 }), protocol: "redis", server: "198.19.1.12:6379" },
    { step: c("curl", "www.example.test", { port: 80, scheme: "http" }), protocol: "http", server: "198.19.2.10:80" },
    { step: c("curl", "api.example.test", { port: 443, scheme: "https" }), protocol: "tls", server: "198.19.2.10:443", sni: "api.example.test" },
    { step: c("openssl", "storage.googleapis.test", { port: 443 }), protocol: "tls", server: "198.19.2.20:443", sni: "storage.googleapis.test" },
    { step: c("curl", "assets.example.test", { port: 443, scheme: "https", proxy: "198.19.3.10:3128" }), protocol: "http", server: "198.19.3.10:3128" },
  ];
}

const RESOLVES: { name: string; qtype: "A" | "AAAA"; tcp?: boolean; smallBuffer?: boolean }[] = [
  { name: "db.example.test", qtype: "A" },
  { name: "api.example.test", qtype: "A", tcp: true },
  { name: "chain.example.test", qtype: "A" },
  { name: "nx.example.test", qtype: "A" },
  { name: "v6.example.test", qtype: "AAAA" },
  { name: "big.example.test", qtype: "A", smallBuffer: true },
];

async function dig(netns: string, r: (typeof RESOLVES)[number]): Promise<ResolveTruth> {
  const args = ["+time=3", "+tries=1", ...(r.tcp ? ["+tcp"] : []), ...(r.smallBuffer ? ["+bufsize=512", "+noedns"] : []), r.name, r.qtype];
  const x = await run("ip", ["netns", "exec", netns, findProgram("dig", "dnsutils"), ...args], { timeoutMs: 20_000 });
  const rcode = /status: ([A-Z]+)/.exec(x.stdout)?.[1] ?? `exit ${x.code}`;
  const answer = x.stdout.split(";; ANSWER SECTION:")[1]?.split("\n\n")[0] ?? "";
  const rr = [...answer.matchAll(/^(\S+)\.\s+\d+\s+IN\s+(A|AAAA|CNAME)\s+(\S+)$/gm)];
  const truncated = /Truncated, retrying in TCP mode/.test(x.stdout + x.stderr);
  return {
    name: r.name, qtype: r.qtype,
    transport: r.tcp ? "tcp" : truncated ? "udp-truncated+tcp" : "udp",
    rcode,
    addresses: rr.filter((m) => m[2] === r.qtype).map((m) => m[3]!),
    cnames: rr.filter((m) => m[2] === "CNAME").map((m) => `${m[1]}>${m[3]!.replace(/\.$/, "")}`),
    command: x.command,
  };
}

/** Runs protocol-clients.ts's clients in the pod; each must reach its real server. */
async function recordProtocolClients(netns: string, workDir: string, world: World, say: (s: string) => void): Promise<ConnectTruth[]> {
  const out: ConnectTruth[] = [];
  for (const c of protocolClients()) {
    const svc = world.services.find((s) => s.name === c.service);
    const address = worldAddress(world, c.to);
    if (!svc || !address) throw new Error(`corpus world: no service "${c.service}" or no record for ${c.to} (corpus/protocols/world.yaml)`);
    const r = await c.run({ netns, workDir }, svc);
    say(`  ${c.client} ${c.to} (${c.variant}) → ${address}:${svc.port}: ${r.ok ? "connected" : "FAILED"}`);
    if (!r.ok) throw new Error(`${r.command} did not reach its server: ${r.output}`);
    out.push({ client: c.client, variant: c.variant, protocol: c.protocol, server: `${address}:${svc.port}`, outcome: "connected", command: r.command });
  }
  return out;
}

/** Records into `dir`: capture.pcap, world.yaml (copied in), truth.json. */
export async function recordCorpus(dir: string, world: World, say: (s: string) => void): Promise<CorpusTruth> {
  mkdirSync(dir, { recursive: true });
  const cluster = await MeshCluster.start({ prefix: "egR", world });
  const scratch = mkdtempSync(join(tmpdir(), "egret-corpus-"));
  try {
    const pod = await cluster.net.addPod("rec/client", POD_IP);
    const pcap = join(scratch, "capture.pcap");
    const capture = await TcpdumpCapture.start(cluster.net.outsideNs, "eth0", pcap);
    const resolves: ResolveTruth[] = [];
    for (const r of RESOLVES) {
      const t = await dig(pod.netns, r);
      say(`  dig ${r.qtype} ${r.name} (${t.transport}): ${t.rcode} ${[...t.cnames, ...t.addresses].join(" ")}`);
      resolves.push(t);
    }
    const env: ClientEnv = { netns: pod.netns, world, caFile: webCaPath({ net: cluster.net, world, workDir: cluster.workDir }) };
    const connects: ConnectTruth[] = [];
    for (const p of connectPlan()) {
      const r = await runConnect(env, p.step);
      say(`  ${p.step.client} ${p.step.to} → ${p.server}: ${r.outcome}`);
      if (r.outcome !== "connected") throw new Error(`${r.command} did not reach its server: ${r.output}`);
      connects.push({ client: p.step.client, protocol: p.protocol, server: p.server, ...(p.sni ? { sni: p.sni } : {}), outcome: r.outcome, command: r.command });
    }
    connects.push(...await recordProtocolClients(pod.netns, cluster.workDir, world, say));
    await new Promise((r) => setTimeout(r, 300));
    await capture.stop();
    writeFileSync(join(dir, "capture.pcap"), readFileSync(pcap));
    const truth: CorpusTruth = {
      recordedBy: "scripts/record-corpus (control/src/corpus/record.ts)", recordedAt: new Date().toISOString(),
      podIp: POD_IP, resolver: world.resolver, connects, resolves,
    };
    writeFileSync(join(dir, "truth.json"), JSON.stringify(truth, null, 2) + "\n");
    return truth;
  } finally {
    await cluster.destroy();
    rmSync(scratch, { recursive: true, force: true });
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const root = join(fileURLToPath(new URL(".", import.meta.url)), "../../../..");
  const dir = process.argv[2] ?? join(root, "corpus/protocols");
  const world = loadWorld(join(dir, "world.yaml"));
  recordCorpus(dir, world, (s) => console.log(s)).then(() => console.log(`written: ${dir}/capture.pcap, ${dir}/truth.json`), (e: Error) => { console.error(`record-corpus: ${e.message}`); process.exit(1); });
}
