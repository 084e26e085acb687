// `egret simulate`: replays a capture through the production path, in capture time order:
//
//   DNS packets ──► DnsPipeline/DnsObserver (the agent's evidence rules) ──► toProto ──► store
//   pods file + policy files ──► ControlService (file mode: registry, compiler, Watch hub, Lookup)
//   TCP connections ──► one EnvoyHost per pod running egret.wasm ──Watch/Lookup/Report (gRPC)──► control
//   Report ──► audit records ──► one result per TCP connection
//
// Nothing is re-implemented here: the verdict is the filter's, reached through the same holds and
// Lookups as in a sidecar. Time is the capture's (SimClock); only gRPC round trips run in real time.
import { formatEndpoint, decodeCapture, TcpReassembler, type DecodedPacket } from "../pcap/index.js";
import { DnsObserver } from "../dns/observer.js";
import { DnsPipeline } from "../dns/pipeline.js";
import { toProto } from "../agent/replica-stream.js";
import { ControlService } from "../control/service.js";
import { createControlMetrics } from "../control/metrics.js";
import { fileControlSource, parsePodsFile } from "../control/file-source.js";
import { defaultPolicyApi } from "../control/policy-api.js";
import { loadPolicyFiles, formatDiagnostic } from "../policy/index.js";
import { EnvoyHost, type Connection } from "../host/index.js";
import { detectCapture, type ConnectionDetection } from "../detect/capture-detect.js";
import { DetectorEngine } from "../detect/wasm-detector.js";
import { EGRET_WASM } from "../wasm/tools.js";
import type { Logger } from "../common/log.js";
import { SimClock } from "./sim-clock.js";
import { readFileSync, mkdtempSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse as parseYaml, stringify as stringifyYaml } from "yaml";

const CONTROL_CLUSTER = "outbound|9090||egret-control.egret-system.svc.cluster.local";

/** One TCP connection of the capture and what the filter decided. */
export interface SimulatedConnection {
  client: string;
  server: string;
  /** "namespace/name" of the client pod, or null when the client is not a pod of the pods file. */
  pod: string | null;
  names: string[];
  protocol: string;
  sni: string | null;
  verdict: "allow" | "deny" | "alert";
  reason: string;
  policy: string | null;
  rule: string | null;
  /** Capture time of the first packet (seconds). */
  time: number;
  /** "monitor" when the deciding policy is in Monitor mode (verdict allow, reason would-deny). */
  mode?: string;
  detail?: string;
}

export class SimulateInputError extends Error {}

export interface SimulateOptions {
  policyPaths: string[];
  podsFile: string;
  capture: Uint8Array;
  /** Resolvers whose answers count as evidence; default: any server answering a pod's query. */
  trustedResolvers?: string[] | null;
  wasm?: string;
  log: Logger;
  /** Extra filter configuration (egress/README.md); defaults suit a replay. */
  filterConfig?: Record<string, unknown>;
  /**
   * When no forwardProxies are configured: treat every server that receives a CONNECT or an
   * absolute-form HTTP request in the capture as a declared forward proxy (default true).
   */
  detectProxies?: boolean;
}

type TimelineEvent =
  | { t: number; kind: "dns"; packet: DecodedPacket; frame: number }
  | { t: number; kind: "open"; id: number; client: string; server: string; clientIp: string }
  | { t: number; kind: "data"; id: number; fromClient: boolean; bytes: Buffer }
  | { t: number; kind: "close"; id: number };

interface Tracked {
  id: number;
  client: string;
  server: string;
  pod: string | null;
  time: number;
  conn?: Connection;
  closeRequested: boolean;
}

const DNS_PORT = 53;

/** Replays the capture; resolves to one result per TCP connection, in order of first packet. */
export async function simulateCapture(o: SimulateOptions): Promise<SimulatedConnection[]> {
  // Inputs fail loudly, with every problem at once.
  const loaded = loadPolicyFiles(o.policyPaths);
  const errors = loaded.diagnostics.filter((d) => d.severity === "error");
  if (errors.length > 0) throw new SimulateInputError(errors.map(formatDiagnostic).join("\n"));
  let podsText: string;
  try {
    podsText = readFileSync(o.podsFile, "utf8");
  } catch (e) {
    throw new SimulateInputError(`cannot read the pods file ${o.podsFile}: ${(e as Error).message}`);
  }
  // Control's file mode reads the canonical form; common spellings are accepted and rewritten.
  const canonicalPods = canonicalPodsYaml(podsText);
  let podsFile;
  try {
    podsFile = parsePodsFile(canonicalPods ?? podsText, o.podsFile);
  } catch (e) {
    throw new SimulateInputError((e as Error).message);
  }
  const workDir = mkdtempSync(join(tmpdir(), "egret-simulate-"));
  // Control serves a filter only from its pod's address. Each simulated sidecar connects from a
  // loopback address of its own (the host's upstream bind), listed as one more IP of its pod.
  const loopbackOfPod = new Map<string, string>();
  podsFile.pods.forEach((p, i) => loopbackOfPod.set(`${p.namespace}/${p.name}`, `127.77.${(i >> 8) & 255}.${i & 255}`));
  const podsPath = join(workDir, "pods.yaml");
  writeFileSync(podsPath, stringifyYaml({
    namespaces: Object.entries(podsFile.namespaces).map(([name, labels]) => ({ name, labels })),
    pods: podsFile.pods.map((p) => ({ name: p.name, namespace: p.namespace, labels: p.labels, ips: [...p.ips, loopbackOfPod.get(`${p.namespace}/${p.name}`)!] })),
  }));
  const podOfIp = new Map<string, { key: string; name: string; namespace: string; labels: Record<string, string>; ips: string[] }>();
  for (const p of podsFile.pods) for (const ip of p.ips) podOfIp.set(ip, { key: `${p.namespace}/${p.name}`, ...p });

  // Pass 1: the capture as a time-ordered list of DNS packets and TCP connection events.
  const timeline = buildTimeline(o.capture);
  const detections = detectionsByConnection(o.capture);
  const startMs = timeline.length > 0 ? timeline[0]!.t : Date.now();

  const clock = new SimClock(startMs);
  const audit: AuditRecord[] = [];
  const service = new ControlService({
    policyApi: defaultPolicyApi,
    source: fileControlSource({ policyPaths: o.policyPaths, podsFile: podsPath, policyApi: defaultPolicyApi, log: o.log }),
    log: o.log,
    grpcListen: "127.0.0.1:0",
    audit: { write: (line) => audit.push(JSON.parse(line) as AuditRecord) },
    now: () => clock.ms,
    metrics: createControlMetrics({ defaultMetrics: false }),
    sweepIntervalMs: 3_600_000,
    // Replay feeds every observation up to "now" before a connection opens: what control does not
    // know yet, it never will — answer Lookups at once instead of waiting in real time.
    grpcLimits: { maxLookupWaitMs: 0 },
  });
  let grpcPort: number;
  try {
    ({ grpcPort } = await service.start());
  } catch (e) {
    await service.stop().catch(() => undefined);
    rmSync(workDir, { recursive: true, force: true });
    throw e;
  }
  const observer = new DnsObserver({
    now: () => clock.ms,
    trustedResolvers: o.trustedResolvers ?? null,
    onObservation: (obs) => {
      if (obs.negative) return;
      const p = toProto(obs);
      service.store.record(p.pod_ip as Uint8Array, {
        queryName: p.query_name as string,
        cnameChain: (p.cname_chain ?? []) as string[],
        answers: ((p.answers ?? []) as Array<{ ip: Uint8Array; ttl_seconds: number }>).map((a) => ({ ip: a.ip, ttlSeconds: a.ttl_seconds })),
        observedUnixMs: p.observed_unix_ms as number,
      });
    },
  });
  const pipeline = new DnsPipeline(observer);

  const hosts = new Map<string, Promise<EnvoyHost>>();
  const declared = o.filterConfig?.forwardProxies;
  const proxies = declared !== undefined ? undefined : o.detectProxies === false ? [] : proxiesSeen(detections);
  const config = {
    controlCluster: CONTROL_CLUSTER,
    ...(proxies ? { forwardProxies: proxies } : {}),
    // Deadlines run in capture time; a generous Lookup deadline keeps real-time gRPC jitter from
    // ever deciding a verdict (control answers at once, see grpcLimits above).
    lookupTimeoutMs: 5000,
    detectTimeoutMs: 5000,
    reportIntervalMs: 10,
    reportBatchSize: 1000,
    startupWaitMs: 60_000,
    ...o.filterConfig,
  };
  const hostFor = (pod: { key: string; name: string; namespace: string; labels: Record<string, string>; ips: string[] }) => {
    let h = hosts.get(pod.key);
    if (!h) {
      h = EnvoyHost.create({
        wasm: o.wasm ?? EGRET_WASM,
        pluginConfig: JSON.stringify(config),
        concurrency: 1,
        node: { name: pod.name, namespace: pod.namespace, labels: pod.labels, instanceIps: pod.ips },
        grpcClusters: { [CONTROL_CLUSTER]: `127.0.0.1:${grpcPort}` },
        grpcSourceAddress: loopbackOfPod.get(pod.key),
        clock,
      }).then(async (host) => {
        await until(() => (host.metric("egret_watch_snapshots") ?? 0) >= 2, `the policy snapshot for ${pod.key}`);
        return host;
      });
      hosts.set(pod.key, h);
    }
    return h;
  };

  const tracked = new Map<number, Tracked>();
  const order: Tracked[] = [];
  try {
    // Pass 2: replay in capture order.
    for (const ev of timeline) {
      clock.advanceTo(ev.t);
      if (ev.kind === "dns") {
        pipeline.push(ev.packet, { time: ev.t, frame: ev.frame });
        continue;
      }
      if (ev.kind === "open") {
        const pod = podOfIp.get(ev.clientIp);
        const t: Tracked = { id: ev.id, client: ev.client, server: ev.server, pod: pod?.key ?? null, time: ev.t / 1000, closeRequested: false };
        tracked.set(ev.id, t);
        order.push(t);
        if (!pod) continue;
        const host = await hostFor(pod);
        t.conn = host.openConnection({ source: ev.client, destination: ev.server });
        // Held connections (Lookup) settle over real gRPC before the capture moves on.
        await Promise.race([t.conn.whenUpstreamRequested, t.conn.whenClosed, timeout(30_000)]);
        continue;
      }
      const t = tracked.get(ev.id);
      const c = t?.conn;
      if (!t || !c || c.closed) continue;
      if (ev.kind === "data") {
        if (ev.fromClient) c.downstreamData(ev.bytes);
        else if (c.upstreamConnectRequested) c.upstreamData(ev.bytes);
      } else {
        t.closeRequested = true;
      }
    }
    // Let every pending deadline (detection, Lookup) run out in capture time, then collect reports.
    clock.advanceTo(clock.ms + Number(config.detectTimeoutMs) + 1000);
    const decided = order.filter((t) => t.conn !== undefined).length;
    await until(() => { clock.advanceTo(clock.ms + 20); return audit.length >= decided; }, `${decided} verdict reports`, 30_000).catch(() => undefined);
  } finally {
    for (const h of hosts.values()) await h.then((host) => host.close(), () => undefined);
    await service.stop();
    rmSync(workDir, { recursive: true, force: true });
  }
  return joinResults(order, audit, detections);
}

/**
 * Accepts the spellings people write for PODS.yaml and returns control's canonical form, or
 * undefined when the text is already canonical (or not YAML at all: control reports that).
 *   namespaces: [{name, labels}]  |  {ns: {labels: {…}}}  |  {ns: {key: value}}
 *   pods: [{name, namespace, ip|ips|podIP|podIPs, labels}]  |  {"ns/name": {ip, labels}}
 */
export function canonicalPodsYaml(text: string): string | undefined {
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch {
    return undefined;
  }
  if (typeof doc !== "object" || doc === null || Array.isArray(doc)) return undefined;
  const d = doc as Record<string, unknown>;
  let changed = false;
  const out: Record<string, unknown> = { ...d };
  const ns = d.namespaces;
  if (ns && typeof ns === "object" && !Array.isArray(ns)) {
    out.namespaces = Object.entries(ns as Record<string, unknown>).map(([name, v]) => {
      const obj = (v ?? {}) as Record<string, unknown>;
      const labels = typeof obj === "object" && obj !== null && "labels" in obj ? obj.labels : obj;
      return { name, labels: labels ?? {} };
    });
    changed = true;
  }
  const pods = d.pods;
  if (pods && typeof pods === "object" && !Array.isArray(pods)) {
    out.pods = Object.entries(pods as Record<string, unknown>).map(([key, v]) => {
      const [namespace, name] = key.includes("/") ? key.split("/", 2) : ["default", key];
      return { name, namespace, ...((v ?? {}) as object) };
    });
    changed = true;
  }
  if (Array.isArray(out.pods)) {
    out.pods = (out.pods as unknown[]).map((p) => {
      if (typeof p !== "object" || p === null) return p;
      const q = { ...(p as Record<string, unknown>) };
      for (const [from, to] of [["podIP", "ip"], ["podIPs", "ips"], ["address", "ip"]] as const) {
        if (from in q && !(to in q)) {
          q[to] = q[from];
          delete q[from];
          changed = true;
        }
      }
      if (typeof q.ip === "string" && q.ip.includes(",")) {
        q.ips = q.ip.split(",").map((s) => s.trim()).filter(Boolean);
        delete q.ip;
        changed = true;
      }
      return q;
    });
  }
  return changed ? stringifyYaml(out) : undefined;
}

function buildTimeline(capture: Uint8Array): TimelineEvent[] {
  const timeline: TimelineEvent[] = [];
  const { packets } = decodeCapture(capture);
  let now = 0;
  let frame = 0;
  const reassembler = new TcpReassembler({
    onOpen(conn) {
      timeline.push({
        t: now, kind: "open", id: conn.id, client: formatEndpoint(conn.client.ip, conn.client.port),
        server: formatEndpoint(conn.server.ip, conn.server.port), clientIp: conn.client.ip,
      });
    },
    onData(conn, dir, bytes) {
      timeline.push({ t: now, kind: "data", id: conn.id, fromClient: dir === "fromClient", bytes: Buffer.from(bytes) });
    },
    onClose(conn) {
      timeline.push({ t: now, kind: "close", id: conn.id });
    },
  });
  for (const { time, packet } of packets) {
    frame++;
    now = time * 1000;
    if (packet.proto === "udp" || packet.proto === "tcp") {
      if (packet.srcPort === DNS_PORT || packet.dstPort === DNS_PORT) timeline.push({ t: now, kind: "dns", packet, frame });
    }
    reassembler.push(packet, time);
  }
  reassembler.flush();
  // Stable sort: capture files are not always in time order.
  return timeline.map((e, i) => [e, i] as const).sort((a, b) => a[0].t - b[0].t || a[1] - b[1]).map(([e]) => e);
}

/** The detector's view of each connection (for protocol/SNI when the filter had no need to inspect). */
function detectionsByConnection(capture: Uint8Array): Map<string, ConnectionDetection[]> {
  const out = new Map<string, ConnectionDetection[]>();
  const engine = new DetectorEngine();
  for (const c of detectCapture(capture, engine).connections) {
    const k = `${c.client}>${c.server}`;
    const list = out.get(k);
    if (list) list.push(c);
    else out.set(k, [c]);
  }
  return out;
}

/** Servers that received proxy-form requests (CONNECT host:port, or GET http://host/…). */
function proxiesSeen(detections: Map<string, ConnectionDetection[]>): string[] {
  const out = new Set<string>();
  for (const list of detections.values()) for (const d of list) if (d.claims.proxyForm !== null) out.add(d.server);
  return [...out];
}

/** The fields of a verdict audit record (control's audit log, one JSON line per report) the join reads. */
interface AuditRecord {
  src: string; dst: string; verdict: string; reason: string;
  names?: string[]; protocol?: string; sni?: string; policy?: string; rule?: string;
}

function joinResults(order: Tracked[], audit: AuditRecord[], detections: Map<string, ConnectionDetection[]>): SimulatedConnection[] {
  const reports = new Map<string, AuditRecord[]>();
  for (const r of audit) {
    const k = `${r.src}>${r.dst}`;
    const list = reports.get(k);
    if (list) list.push(r);
    else reports.set(k, [r]);
  }
  return order.map((t) => {
    const key = `${t.client}>${t.server}`;
    const det = detections.get(key)?.shift();
    const detProtocol = det?.protocol ?? "unknown";
    const detSni = det?.claims.sni ? det.claims.sni : null;
    if (t.pod === null) {
      return { client: t.client, server: t.server, pod: null, names: [], protocol: detProtocol, sni: detSni, verdict: "allow", reason: "not-a-pod", policy: null, rule: null, time: t.time };
    }
    const r = reports.get(key)?.shift();
    if (!r) {
      // No report: the connection was still undecided when the capture ended (e.g. it sent nothing).
      return { client: t.client, server: t.server, pod: t.pod, names: [], protocol: detProtocol, sni: detSni, verdict: "deny", reason: "undecided", policy: null, rule: null, time: t.time };
    }
    let verdict = r.verdict;
    let reason = r.reason;
    const extra: Partial<SimulatedConnection> = {};
    if (verdict === "would-deny") {
      extra.mode = "monitor";
      extra.detail = `Enforce would deny: ${reason}`;
      verdict = "allow";
      reason = "would-deny";
    }
    return {
      client: t.client, server: t.server, pod: t.pod, names: r.names ?? [],
      protocol: r.protocol || detProtocol, sni: r.sni || detSni,
      verdict: verdict as SimulatedConnection["verdict"], reason, policy: r.policy || null, rule: r.rule || null, time: t.time, ...extra,
    };
  });
}

async function until(fn: () => boolean, what: string, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!fn()) {
    if (Date.now() > deadline) throw new Error(`simulate: timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

function timeout(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms).unref());
}
