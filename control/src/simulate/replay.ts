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
  /**
   * The one name the filter matched for this connection (its last decision's matched_name): with a
   * verified SNI, Host or CONNECT claim, the claimed name among the candidates; null when no name
   * decided.
   */
  matchedName: string | null;
  verdict: "allow" | "deny" | "alert";
  reason: string;
  policy: string | null;
  rule: string | null;
  /** Capture time of the first packet (seconds). */
  time: number;
  /** "monitor" when the deciding policy is in Monitor mode (verdict allow, reason would-deny). */
  mode?: string;
  /**
   * When `server` is a forward proxy (declared, or detected in the capture) and the connection's
   * first request was a CONNECT or absolute-form request: its target, which is what the filter
   * evaluated as the destination (name or IP literal, and port) instead of the proxy itself.
   */
  proxyTarget?: { host: string; port: number };
  detail?: string;
  /**
   * Every decision the filter reported for this connection, in order; the fields above are the
   * last one (a later request on a keep-alive or proxy connection can revise the first verdict).
   */
  decisions: SimulatedDecision[];
}

/** One decision reported for a connection (a VerdictEvent as control's audit log records it). */
export interface SimulatedDecision {
  /** Capture time of the decision (seconds). */
  time: number;
  verdict: string;
  reason: string;
  policy: string | null;
  rule: string | null;
  names: string[];
  protocol: string | null;
  sni: string | null;
  host: string | null;
  /** The name the filter matched (see SimulatedConnection.matchedName). */
  matchedName: string | null;
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
  /** Capture time of the first packet (ms): reports from then on (until the tuple's next connection) are this connection's. */
  openMs: number;
  /** Client bytes given to the filter so far. */
  clientBytes: number;
  conn?: Connection;
  closeRequested: boolean;
}

const DNS_PORT = 53;

type PodEntry = { key: string; name: string; namespace: string; labels: Record<string, string>; ips: string[] };

/** Validated inputs: the pods file in control's canonical form (in a temporary folder when rewritten). */
interface Inputs {
  workDir: string;
  podsPath: string;
  podOfIp: Map<string, PodEntry>;
  /** The loopback address each pod's simulated sidecar connects to control from. */
  loopbackOfPod: Map<string, string>;
}

/** Replays the capture; resolves to one result per TCP connection, in order of first packet. */
export async function simulateCapture(o: SimulateOptions): Promise<SimulatedConnection[]> {
  const inputs = loadInputs(o);
  try {
    // Pass 1: the capture as a time-ordered list of DNS packets and TCP connection events.
    const timeline = buildTimeline(o.capture);
    const detections = detectionsByConnection(o.capture);
    const clock = new SimClock(timeline.length > 0 ? timeline[0]!.t : Date.now());
    const audit: AuditRecord[] = [];
    const control = await startControl(o, inputs.podsPath, clock, audit);
    try {
      const config = filterConfig(o, detections);
      const order = await replay(timeline, { o, clock, config, grpcPort: control.grpcPort, podOfIp: inputs.podOfIp, loopbackOfPod: inputs.loopbackOfPod, pipeline: control.pipeline, audit });
      return joinResults(order, audit, detections, new Set((config.forwardProxies as string[] | undefined) ?? []));
    } finally {
      await control.service.stop();
    }
  } finally {
    rmSync(inputs.workDir, { recursive: true, force: true });
  }
}

/** Inputs fail loudly, with every problem at once. */
function loadInputs(o: SimulateOptions): Inputs {
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
  const podOfIp = new Map<string, PodEntry>();
  for (const p of podsFile.pods) for (const ip of p.ips) podOfIp.set(ip, { key: `${p.namespace}/${p.name}`, ...p });
  return { workDir, podsPath, podOfIp, loopbackOfPod };
}

/** Control in file mode on loopback, fed by the agent's DNS observer as the replay goes. */
async function startControl(o: SimulateOptions, podsPath: string, clock: SimClock, audit: AuditRecord[]): Promise<{ service: ControlService; grpcPort: number; pipeline: DnsPipeline }> {
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
  return { service, grpcPort, pipeline: new DnsPipeline(observer) };
}

/**
 * The filter's own configuration defaults (egress/README.md), so verdicts match a sidecar's —
 * detectTimeoutMs 2 s included. One exception: the Lookup deadline is also the gRPC call's
 * deadline, which the Node host runs in real time; control answers at once in a replay and the
 * capture clock waits for it, so a long one never decides a verdict but keeps a loaded machine's
 * jitter from doing so.
 */
function filterConfig(o: SimulateOptions, detections: Map<string, ConnectionDetection[]>): Record<string, unknown> {
  const declared = o.filterConfig?.forwardProxies;
  const proxies = declared !== undefined ? undefined : o.detectProxies === false ? [] : proxiesSeen(detections);
  return {
    controlCluster: CONTROL_CLUSTER,
    ...(proxies ? { forwardProxies: proxies } : {}),
    lookupTimeoutMs: 5000,
    reportIntervalMs: 10,
    reportBatchSize: 1000,
    startupWaitMs: 60_000,
    ...o.filterConfig,
  };
}

interface ReplayContext {
  o: SimulateOptions;
  clock: SimClock;
  config: Record<string, unknown>;
  grpcPort: number;
  podOfIp: Map<string, PodEntry>;
  loopbackOfPod: Map<string, string>;
  pipeline: DnsPipeline;
  audit: AuditRecord[];
}

/** Pass 2: replays the timeline in capture order through one filter host per pod. */
async function replay(timeline: TimelineEvent[], x: ReplayContext): Promise<Tracked[]> {
  const hosts = new Map<string, Promise<EnvoyHost>>();
  const hostFor = (pod: PodEntry) => {
    let h = hosts.get(pod.key);
    if (!h) {
      h = startHost(x, pod);
      hosts.set(pod.key, h);
    }
    return h;
  };
  const tracked = new Map<number, Tracked>();
  const order: Tracked[] = [];
  try {
    for (const ev of timeline) {
      x.clock.advanceTo(ev.t);
      if (ev.kind === "dns") {
        x.pipeline.push(ev.packet, { time: ev.t, frame: ev.frame });
      } else if (ev.kind === "open") {
        const pod = x.podOfIp.get(ev.clientIp);
        const t: Tracked = { id: ev.id, client: ev.client, server: ev.server, pod: pod?.key ?? null, time: ev.t / 1000, openMs: ev.t, clientBytes: 0, closeRequested: false };
        tracked.set(ev.id, t);
        order.push(t);
        if (!pod) continue;
        t.conn = (await hostFor(pod)).openConnection({ source: ev.client, destination: ev.server });
        // Held connections (Lookup) settle over real gRPC before the capture moves on.
        await Promise.race([t.conn.whenUpstreamRequested, t.conn.whenClosed, timeout(30_000)]);
        // The upstream connect completes on a later turn, as in Envoy; server bytes need it.
        if (t.conn.upstreamConnectRequested) await Promise.race([t.conn.whenUpstreamConnected, t.conn.whenClosed]);
      } else {
        await deliver(tracked.get(ev.id), ev);
      }
    }
    // Let every pending deadline (detection, Lookup) run out in capture time, then collect reports:
    // a connection is complete once no report arrives for a while (it may carry several decisions).
    x.clock.advanceTo(x.clock.ms + Number(x.config.detectTimeoutMs ?? 2000) + 1000);
    const decided = order.filter((t) => t.conn !== undefined).length;
    await until(() => { x.clock.advanceTo(x.clock.ms + 20); return x.audit.length >= decided; }, `${decided} verdict reports`, 30_000).catch(() => undefined);
    await settleReports(x);
  } finally {
    for (const h of hosts.values()) await h.then((host) => host.close(), () => undefined);
  }
  return order;
}

/** Waits until the report count stops growing (later decisions on a connection come after its first). */
async function settleReports(x: ReplayContext): Promise<void> {
  let seen = -1;
  for (let quiet = 0; quiet < 5;) {
    x.clock.advanceTo(x.clock.ms + 20);
    await new Promise((r) => setTimeout(r, 10));
    if (x.audit.length === seen) quiet++;
    else { seen = x.audit.length; quiet = 0; }
  }
}

function startHost(x: ReplayContext, pod: PodEntry): Promise<EnvoyHost> {
  return EnvoyHost.create({
    wasm: x.o.wasm ?? EGRET_WASM,
    pluginConfig: JSON.stringify(x.config),
    concurrency: 1,
    node: { name: pod.name, namespace: pod.namespace, labels: pod.labels, instanceIps: pod.ips },
    grpcClusters: { [CONTROL_CLUSTER]: `127.0.0.1:${x.grpcPort}` },
    grpcSourceAddress: x.loopbackOfPod.get(pod.key),
    clock: x.clock,
  }).then(async (host) => {
    await until(() => (host.metric("egret_watch_snapshots") ?? 0) >= 2, `the policy snapshot for ${pod.key}`);
    return host;
  });
}

async function deliver(t: Tracked | undefined, ev: TimelineEvent): Promise<void> {
  const c = t?.conn;
  if (!t || !c || c.closed) return;
  if (ev.kind === "data") {
    if (ev.fromClient) {
      c.downstreamData(ev.bytes);
      t.clientBytes += ev.bytes.length;
    } else if (c.upstreamConnectRequested) {
      // Behind a sidecar the server never gets client bytes the filter holds, so it cannot answer
      // them: let the filter decide on them (e.g. its claim Lookup, over real gRPC) first.
      if (c.sentUpstream.length < t.clientBytes) {
        await until(() => c.closed || c.sentUpstream.length >= t.clientBytes, "held client bytes", HELD_WAIT_MS).catch(() => undefined);
      }
      if (!c.closed) c.upstreamData(ev.bytes);
    }
  } else if (ev.kind === "close") {
    t.closeRequested = true;
  }
}

/** Longest real-time wait for the filter to release held client bytes before a server answer. */
const HELD_WAIT_MS = 2000;

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
  time: string; src: string; dst: string; verdict: string; reason: string;
  names?: string[]; protocol?: string; sni?: string; host?: string; policy?: string; rule?: string; matched_name?: string;
}

/**
 * Each connection's decisions: the reports for its address pair decided from its first packet on,
 * until the pair's next connection opens (a client port reused later in the capture).
 */
function decisionsOf(order: Tracked[], audit: AuditRecord[]): Map<Tracked, AuditRecord[]> {
  const byKey = new Map<string, AuditRecord[]>();
  for (const r of audit) {
    const k = `${r.src}>${r.dst}`;
    const list = byKey.get(k);
    if (list) list.push(r);
    else byKey.set(k, [r]);
  }
  const conns = new Map<string, Tracked[]>();
  for (const t of order) {
    const k = `${t.client}>${t.server}`;
    const list = conns.get(k);
    if (list) list.push(t);
    else conns.set(k, [t]);
  }
  const out = new Map<Tracked, AuditRecord[]>();
  for (const [k, ts] of conns) {
    const reports = (byKey.get(k) ?? []).map((r) => ({ r, at: Date.parse(r.time) })).sort((a, b) => a.at - b.at);
    const pods = ts.filter((t) => t.pod !== null);
    for (const [i, t] of pods.entries()) {
      const next = pods[i + 1]?.openMs ?? Infinity;
      // A connection's first report may carry a time a little before its first packet (clock granularity).
      const mine = reports.filter(({ at }) => (i === 0 || at >= t.openMs) && at < next);
      out.set(t, mine.map(({ r }) => r));
    }
  }
  return out;
}

function decisionOf(r: AuditRecord): SimulatedDecision {
  return {
    time: Date.parse(r.time) / 1000, verdict: r.verdict, reason: r.reason, policy: r.policy || null, rule: r.rule || null,
    names: r.names ?? [], protocol: r.protocol || null, sni: r.sni || null, host: r.host || null, matchedName: r.matched_name || null,
  };
}

/** The target a forward proxy's client asked for (see SimulatedConnection.proxyTarget). */
function proxyTargetOf(det: ConnectionDetection | undefined, proxies: Set<string>): SimulatedConnection["proxyTarget"] {
  const c = det?.claims;
  if (!c || !proxies.has(det.server) || c.proxyForm === null || !c.connectTarget || !c.connectTargetPort) return undefined;
  return { host: c.connectTarget, port: c.connectTargetPort };
}

function joinResults(order: Tracked[], audit: AuditRecord[], detections: Map<string, ConnectionDetection[]>, proxies: Set<string>): SimulatedConnection[] {
  const decisions = decisionsOf(order, audit);
  return order.map((t) => {
    const key = `${t.client}>${t.server}`;
    const det = detections.get(key)?.shift();
    const detProtocol = det?.protocol ?? "unknown";
    const detSni = det?.claims.sni ? det.claims.sni : null;
    const target = proxyTargetOf(det, proxies);
    const base = { client: t.client, server: t.server, pod: t.pod, protocol: detProtocol, sni: detSni, matchedName: null, policy: null, rule: null, time: t.time, ...(target ? { proxyTarget: target } : {}) };
    if (t.pod === null) return { ...base, names: [], verdict: "allow", reason: "not-a-pod", decisions: [] };
    const all = decisions.get(t) ?? [];
    const r = all[all.length - 1];
    // No report: the connection was still undecided when the capture ended (e.g. it sent nothing).
    if (!r) return { ...base, names: [], verdict: "deny", reason: "undecided", decisions: [] };
    let verdict = r.verdict;
    let reason = r.reason;
    const extra: Partial<SimulatedConnection> = {};
    if (verdict === "would-deny") {
      extra.mode = "monitor";
      extra.detail = `Enforce would deny: ${reason}`;
      verdict = "allow";
      reason = "would-deny";
    }
    // Protocol and SNI come from the first decision that saw them (a revision judges one request).
    const first = all.find((d) => d.protocol) ?? r;
    return {
      ...base, names: r.names ?? [], protocol: first.protocol || detProtocol, sni: first.sni || detSni, matchedName: r.matched_name || null,
      verdict: verdict as SimulatedConnection["verdict"], reason, policy: r.policy || null, rule: r.rule || null, ...extra,
      decisions: all.map(decisionOf),
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
