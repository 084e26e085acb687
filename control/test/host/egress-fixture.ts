// Test fixture for the enforcement filter: the built egret.wasm in the Node proxy-wasm host, a
// scriptable egret.v1 FilterService on loopback (real gRPC), a manual clock shared by both, and
// builders for the client bytes tests send (TLS ClientHello, HTTP requests).
import * as grpc from "@grpc/grpc-js";
import { fileURLToPath } from "node:url";
import { filterServiceDefinition, ipToBytes, bytesToIp } from "../../src/proto/index.js";
import { EnvoyHost, ManualClock, type Clock, type Connection } from "../../src/host/index.js";
import { loadPolicyText, compilePodSnapshot, formatDiagnostic } from "../../src/policy/index.js";

export const CONTROL_CLUSTER = "outbound|9090||egret-control.egret-system.svc.cluster.local";
/** What control sends as the expiry of mesh-configuration names (control/src/control/mesh-config.ts). */
const MESH_EXPIRY_MS = 253_402_300_799_000;
export const EGRET_WASM = process.env.EGRET_TEST_WASM ?? fileURLToPath(new URL("../../../../filter/build/egret.wasm", import.meta.url));

export interface PodSpec { name: string; namespace: string; ip: string; labels: Record<string, string> }
export const DEFAULT_POD: PodSpec = { name: "web-0", namespace: "shop", ip: "10.1.0.7", labels: { app: "web" } };

export interface Event {
  verdict: string; reason: string; policy: string; rule: string; names: string[]; protocol: string;
  sni: string; host: string; destination: string; source: string; mode: string; matched_name: string; detail: string;
  /** NAME_SOURCE_* as sent ("NAME_SOURCE_UNSPECIFIED" when no name decided). */
  evidence: string;
  cluster: string;
}

/** Polls `fn` until it returns a truthy value (generous timeout; no timing assertion). */
export async function eventually<T>(fn: () => T | undefined | null | false | Promise<T | undefined | null | false>, what: string, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

type WatchCall = grpc.ServerDuplexStream<any, any>;

/** A FilterService whose state tests script: policy, resolutions, availability, Lookup behaviour. */
export class FakeControl {
  readonly events: Event[] = [];
  /** ReportRequest.opened_connections entries: "src → dst:port" and the filter's time. */
  readonly opened: { source: string; destination: string; time: number }[] = [];
  readonly watchRequests: any[] = [];
  readonly lookups: any[] = [];
  readonly resolutions = new Map<string, Map<string, number>>();
  /** ECH public names the pod's HTTPS/SVCB answers named, per queried name (ResolvedName.ech_public_names). */
  readonly echPublicNames = new Map<string, string[]>();
  /** IP → names that come from mesh configuration (ServiceEntry addresses), sent with NAME_SOURCE_MESH_CONFIG. */
  readonly meshNames = new Map<string, Set<string>>();
  policy: { bytes: Uint8Array; hash: string; selected: boolean } = { bytes: new Uint8Array(), hash: "", selected: false };
  /** Lookup: "answer" (at once if known, else wait up to wait_ms for addResolution), "hang" (never answers), "fail" (UNAVAILABLE). */
  lookupMode: "answer" | "hang" | "fail" = "answer";
  /** Watch refuses subscriptions (control down). */
  refuseWatch = false;
  /** Report streams fail with UNAVAILABLE before anything is recorded (control down or restarting). */
  refuseReport = false;
  /** Report streams that delivered an answer, and dropped_events counts received. */
  reportAnswers = 0;
  droppedEvents = 0;
  /**
   * Longest real-time wait of a Lookup for an unknown IP. Short by default so NOT_FOUND comes back
   * long before the gRPC deadline even on a loaded machine; tests that add the resolution while
   * the Lookup waits raise it.
   */
  lookupWaitCapMs = 100;
  private server = new grpc.Server();
  private streams = new Map<WatchCall, { version: number }>();
  private waiters: Array<{ ip: string; claim: string; done: (found: boolean) => void }> = [];
  private hanging: Array<() => void> = [];
  private version = 0;
  address = "";

  constructor(private readonly now: () => number) {}

  async start(): Promise<string> {
    this.server.addService(filterServiceDefinition(), {
      Watch: (call: WatchCall) => this.onWatch(call),
      Lookup: (call: grpc.ServerUnaryCall<any, any>, cb: grpc.sendUnaryData<any>) => this.onLookup(call, cb),
      Report: (call: grpc.ServerReadableStream<any, any>, cb: grpc.sendUnaryData<any>) => {
        if (this.refuseReport) {
          call.on("data", () => undefined);
          call.on("error", () => undefined);
          cb({ code: grpc.status.UNAVAILABLE, details: "control restarting" } as any, null);
          return;
        }
        call.on("data", (req: any) => {
          this.droppedEvents += Number(req.dropped_events ?? 0);
          for (const o of req.opened_connections ?? []) {
            this.opened.push({ source: bytesToIp(o.source_ip) ?? "", destination: `${bytesToIp(o.destination_ip)}:${o.destination_port}`, time: Number(o.time_unix_ms) });
          }
          for (const e of req.events) {
            this.events.push({
              ...e, names: e.names, destination: `${bytesToIp(e.destination_ip)}:${e.destination_port}`,
              source: e.source_ip.length ? `${bytesToIp(e.source_ip)}:${e.source_port}` : "",
              verdict: String(e.verdict).replace("VERDICT_", "").toLowerCase().replace("_", "-"),
              reason: String(e.reason).replace("REASON_", "").toLowerCase().replaceAll("_", "-"),
            });
          }
        });
        call.on("end", () => { this.reportAnswers++; cb(null, { accepted_events: 0 }); });
        call.on("error", () => undefined);
      },
    });
    const port = await new Promise<number>((resolve, reject) =>
      this.server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
    this.address = `127.0.0.1:${port}`;
    return this.address;
  }

  setPolicy(yaml: string, pod: PodSpec, namespaceLabels: Record<string, string> = {}): void {
    const { policies, diagnostics } = loadPolicyText(yaml, "test-policy.yaml");
    const errors = diagnostics.filter((d) => d.severity === "error");
    if (errors.length) throw new Error(errors.map(formatDiagnostic).join("\n"));
    const c = compilePodSnapshot(policies, { name: pod.name, namespace: pod.namespace, labels: pod.labels }, { "kubernetes.io/metadata.name": pod.namespace, ...namespaceLabels });
    this.policy = { bytes: c.bytes, hash: c.hash, selected: c.selected };
  }

  /** Records a resolution (absolute expiry in clock ms); wakes waiting Lookups; optionally pushes a delta. */
  addResolution(ip: string, name: string, expiresMs: number, push = false): void {
    let m = this.resolutions.get(ip);
    if (!m) this.resolutions.set(ip, (m = new Map()));
    m.set(name, Math.max(m.get(name) ?? 0, expiresMs));
    const ready = (x: { ip: string; claim: string }) => x.ip === ip && (!x.claim || m!.has(x.claim));
    for (const w of this.waiters.filter(ready)) w.done(true);
    this.waiters = this.waiters.filter((x) => !ready(x));
    if (push) this.pushDelta({ upserts: [ip] });
  }

  /** The pod's HTTPS/SVCB answer for `name` named these ECH public names; optionally pushes the IPs resolved from it. */
  setEchPublicNames(name: string, publicNames: string[], push = false): void {
    this.echPublicNames.set(name, publicNames);
    if (push) this.pushDelta({ upserts: [...this.resolutions].filter(([, m]) => m.has(name)).map(([ip]) => ip) });
  }

  /** A ServiceEntry address: `name` for `ip`, as mesh configuration (never expires). */
  addMeshName(ip: string, name: string): void {
    let s = this.meshNames.get(ip);
    if (!s) this.meshNames.set(ip, (s = new Set()));
    s.add(name);
    this.addResolution(ip, name, MESH_EXPIRY_MS);
  }

  pushDelta(d: { upserts?: string[]; removals?: string[]; policy?: boolean }): void {
    for (const [call, st] of this.streams) {
      const base = st.version;
      st.version = ++this.version;
      call.write({
        type: "WATCH_RESPONSE_TYPE_DELTA", epoch: "test", version: st.version, base_version: base, nonce: `n${st.version}`,
        ...(d.policy ? { policy: this.policy.bytes, policy_hash: this.policy.hash } : {}),
        pod_selected: this.policy.selected,
        upserts: (d.upserts ?? []).map((ip) => this.resolution(ip)),
        removals: (d.removals ?? []).map((ip) => ipToBytes(ip)),
        server_time_unix_ms: this.now(),
      });
    }
  }

  /** Ends every Watch stream with UNAVAILABLE (control went away). */
  dropWatches(): void {
    for (const call of this.streams.keys()) call.emit("error", { code: grpc.status.UNAVAILABLE, details: "control restarting" });
    this.streams.clear();
  }

  get watchCount(): number { return this.streams.size; }

  private resolution(ip: string): any {
    const names = [...(this.resolutions.get(ip) ?? new Map()).entries()].sort(([a], [b]) => a.localeCompare(b));
    return {
      ip: ipToBytes(ip),
      names: names.map(([name, exp]) => ({
        name, cname_chain: [], expires_unix_ms: exp,
        source: this.meshNames.get(ip)?.has(name) ? "NAME_SOURCE_MESH_CONFIG" : "NAME_SOURCE_POD_DNS",
        ech_public_names: this.echPublicNames.get(name) ?? [],
      })),
      expires_unix_ms: Math.max(0, ...names.map(([, e]) => e)),
    };
  }

  /** Refused Watch subscriptions: clock time (ms) and the subscribing filter instance. */
  readonly refusedWatches: Array<{ at: number; instance: string }> = [];

  private onWatch(call: WatchCall): void {
    if (this.refuseWatch) {
      call.on("data", (req: any) => {
        this.refusedWatches.push({ at: this.now(), instance: String(req.instance_id) });
        call.emit("error", { code: grpc.status.UNAVAILABLE, details: "refused" });
      });
      call.on("error", () => undefined);
      return;
    }
    call.on("data", (req: any) => {
      this.watchRequests.push(req);
      if (req.type !== "WATCH_REQUEST_TYPE_SUBSCRIBE") return;
      const v = ++this.version;
      this.streams.set(call, { version: v });
      call.write({
        type: "WATCH_RESPONSE_TYPE_SNAPSHOT", epoch: "test", version: v, nonce: `n${v}`,
        policy: this.policy.bytes, policy_hash: this.policy.hash, pod_selected: this.policy.selected,
        upserts: [...this.resolutions.keys()].map((ip) => this.resolution(ip)), server_time_unix_ms: this.now(),
      });
    });
    const drop = () => this.streams.delete(call);
    call.on("end", () => { drop(); call.end(); });
    call.on("error", drop);
    call.on("cancelled", drop);
  }

  private onLookup(call: grpc.ServerUnaryCall<any, any>, cb: grpc.sendUnaryData<any>): void {
    const req = call.request;
    this.lookups.push(req);
    const ip = bytesToIp(req.destination_ip)!;
    if (this.lookupMode === "fail") return cb({ code: grpc.status.UNAVAILABLE, details: "no replica" } as any, null);
    if (this.lookupMode === "hang") { this.hanging.push(() => cb({ code: grpc.status.CANCELLED } as any, null)); return; }
    const answer = (found: boolean) =>
      cb(null, found
        ? { result: "LOOKUP_RESULT_FOUND", resolution: this.resolution(ip), server_time_unix_ms: this.now() }
        : { result: "LOOKUP_RESULT_NOT_FOUND", server_time_unix_ms: this.now() });
    // Like control: a claimed name (SNI/Host the filter could not verify) must be among the names.
    const claim = String(req.claimed_name ?? "").toLowerCase();
    const known = () => this.resolutions.has(ip) && (!claim || this.resolutions.get(ip)!.has(claim));
    if (known()) return answer(true);
    // Wait for the observation (real time: the test drives it), up to wait_ms of real time.
    const w = { ip, claim, done: (found: boolean) => { clearTimeout(timer); answer(found); } };
    const timer = setTimeout(() => { this.waiters = this.waiters.filter((x) => x !== w); answer(this.resolutions.has(ip)); }, Math.max(1, Math.min(req.wait_ms, this.lookupWaitCapMs)));
    this.waiters.push(w);
  }

  async stop(): Promise<void> {
    for (const h of this.hanging) h();
    this.dropWatches();
    await new Promise<void>((r) => this.server.tryShutdown(() => r()));
    this.server.forceShutdown();
  }
}

export interface World {
  host: EnvoyHost;
  control: FakeControl;
  clock: ManualClock;
  pod: PodSpec;
  /** Opens a connection from the pod to `destination` ("ip:port"); `cluster` = what tcp_proxy routes it to. */
  connect(destination: string, cluster?: string): Connection;
  /**
   * connect(), then wait until tcp_proxy's upstream connect completed — on a later event-loop
   * turn, as Envoy's connection-pool callback — or the filter closed the connection. Client bytes
   * sent after it reach the filter as sent (one byte at a time stays one byte at a time); server
   * bytes can only arrive from then on. Only for destinations decided in on_new_connection
   * without a Lookup that the test must drive with ticks.
   */
  open(destination: string, cluster?: string): Promise<Connection>;
  /** Advances the clock so ticks run (deadlines, report flushes). */
  tick(ms?: number): Promise<void>;
  /** Waits until `n` report events arrived (flushing batches with ticks). */
  events(n: number): Promise<Event[]>;
  metric(name: string): number;
  close(): Promise<void>;
}

export interface WorldOptions {
  policy: string;
  pod?: PodSpec;
  namespaceLabels?: Record<string, string>;
  /** [ip, name, ttl seconds from now] known to control (and in the first snapshot). */
  resolutions?: Array<[string, string, number]>;
  config?: Record<string, unknown>;
  concurrency?: number;
  /** Do not wait for the first snapshot (startup and outage tests). */
  noWait?: boolean;
  prepare?: (control: FakeControl) => void;
  /** Default: a ManualClock that tests advance with tick(). */
  clock?: Clock;
}

let nextPort = 40000;

export async function egressWorld(o: WorldOptions): Promise<World> {
  const clock = (o.clock ?? new ManualClock()) as ManualClock;
  const nowMs = () => Number(clock.nowNs() / 1_000_000n);
  const pod = o.pod ?? DEFAULT_POD;
  const control = new FakeControl(nowMs);
  control.setPolicy(o.policy, pod, o.namespaceLabels);
  for (const [ip, name, ttl] of o.resolutions ?? []) control.addResolution(ip, name, nowMs() + ttl * 1000);
  o.prepare?.(control);
  const address = await control.start();
  const concurrency = o.concurrency ?? 1;
  let host: EnvoyHost;
  try {
    host = await EnvoyHost.create({
      wasm: EGRET_WASM,
      pluginConfig: JSON.stringify({ controlCluster: CONTROL_CLUSTER, reportIntervalMs: 10, lookupTimeoutMs: 5000, ...o.config }),
      concurrency,
      node: { name: pod.name, namespace: pod.namespace, labels: pod.labels, instanceIps: [pod.ip] },
      grpcClusters: { [CONTROL_CLUSTER]: address },
      clock,
    });
  } catch (e) {
    await control.stop();
    throw e;
  }
  const metric = (name: string) => host.metric(name) ?? 0;
  // Every VM has a snapshot: its own (before the first ticks every VM watches), or the one the
  // Watch holder published for the others (filter/assembly/egress/shared.ts).
  const published = () => host.sharedData(`egret.watch/${pod.namespace}/${pod.name}/head`) !== undefined;
  if (!o.noWait) await eventually(() => metric("egret_watch_snapshots") >= concurrency + 1 || published(), "the first snapshot in every VM");
  const connect = (destination: string, cluster?: string) => host.openConnection({ source: `${pod.ip}:${nextPort++ % 20000 + 40000}`, destination, ...(cluster ? { cluster } : {}) });
  return {
    host, control, clock, pod, metric,
    connect,
    async open(destination, cluster) {
      const c = connect(destination, cluster);
      await Promise.race([c.whenUpstreamConnected, c.whenClosed]);
      return c;
    },
    tick: async (ms = 50) => { if (clock instanceof ManualClock) await clock.advance(ms); },
    async events(n) {
      return eventually(async () => { if (clock instanceof ManualClock) await clock.advance(20); return control.events.length >= n && control.events; }, `${n} report events`);
    },
    async close() {
      await host.close();
      await control.stop();
    },
  };
}

// ---- client bytes -------------------------------------------------------------------------------

/** A TLS 1.2/1.3 ClientHello record carrying `sni` (omitted when empty) and optional ALPN. */
export function clientHello(sni: string, alpn: string[] = []): Buffer {
  const ext: Buffer[] = [];
  if (sni) {
    const name = Buffer.from(sni);
    const entry = Buffer.concat([Buffer.from([0]), u16(name.length), name]);
    const list = Buffer.concat([u16(entry.length), entry]);
    ext.push(Buffer.concat([u16(0), u16(list.length), list]));
  }
  if (alpn.length) {
    const protos = Buffer.concat(alpn.map((p) => Buffer.concat([Buffer.from([p.length]), Buffer.from(p)])));
    const body = Buffer.concat([u16(protos.length), protos]);
    ext.push(Buffer.concat([u16(16), u16(body.length), body]));
  }
  const sv = Buffer.from([0x02, 0x03, 0x04]); // supported_versions: TLS 1.3
  ext.push(Buffer.concat([u16(43), u16(sv.length), sv]));
  const exts = Buffer.concat(ext);
  const body = Buffer.concat([
    Buffer.from([0x03, 0x03]), Buffer.alloc(32, 7), Buffer.from([0]),
    u16(4), Buffer.from([0x13, 0x01, 0x13, 0x02]), Buffer.from([1, 0]), u16(exts.length), exts,
  ]);
  const hs = Buffer.concat([Buffer.from([1]), u24(body.length), body]);
  return Buffer.concat([Buffer.from([0x16, 0x03, 0x01]), u16(hs.length), hs]);
}

export function httpRequest(host: string, path = "/"): Buffer {
  return Buffer.from(`GET ${path} HTTP/1.1\r\nHost: ${host}\r\nUser-Agent: egret-test\r\nAccept: */*\r\n\r\n`);
}

export function connectRequest(target: string): Buffer {
  return Buffer.from(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\n`);
}

/** PostgreSQL StartupMessage (protocol 3.0). */
export function pgStartup(user = "app", database = "app"): Buffer {
  const params = Buffer.from(`user\0${user}\0database\0${database}\0\0`);
  const b = Buffer.alloc(8 + params.length);
  b.writeUInt32BE(b.length, 0);
  b.writeUInt32BE(0x00030000, 4);
  params.copy(b, 8);
  return b;
}

/** A MySQL/MariaDB server greeting (Handshake v10): what a server-first protocol sends first. */
export function mysqlGreeting(version = "8.0.36"): Buffer {
  const body = Buffer.concat([
    Buffer.from([10]), Buffer.from(version + "\0"), Buffer.from([1, 0, 0, 0]), Buffer.alloc(8, 0x41), Buffer.from([0]),
    Buffer.from([0xff, 0xf7]), Buffer.from([0x21]), Buffer.from([0x02, 0x00]), Buffer.from([0xff, 0x81]), Buffer.from([21]),
    Buffer.alloc(10, 0), Buffer.concat([Buffer.alloc(12, 0x42), Buffer.from([0])]), Buffer.from("mysql_native_password\0"),
  ]);
  return Buffer.concat([Buffer.from([body.length & 0xff, (body.length >> 8) & 0xff, body.length >> 16, 0]), body]);
}

function u16(n: number): Buffer { const b = Buffer.alloc(2); b.writeUInt16BE(n); return b; }
function u24(n: number): Buffer { return Buffer.from([(n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff]); }

/** Delivers `bytes` one byte at a time. */
export function sendByteByByte(c: Connection, bytes: Buffer): void {
  for (let i = 0; i < bytes.length && !c.closed; i++) c.downstreamData(bytes.subarray(i, i + 1));
}
