// The enforcement filter's root context (one per VM): configuration, the control channel (Watch
// stream, Lookup calls, Report stream), the flat tables connections read (resolution table and
// policy snapshot), the registry of held connections with their deadlines, and the report batch.
//
// Heavy work happens here, never per connection: decoding Watch responses, rebuilding or patching
// the table, decoding the policy snapshot (one reference swapped), encoding report batches.
// Every gRPC answer arrives here (reference/proxy-wasm.md §5); answers about a connection are
// routed back to it through the pending-slot registry.
import { RootContext, StreamContext } from "../abi/context";
import { BufferType, LogLevel, Status } from "../abi/enums";
import { getBuffer, log, setTickPeriod, setEffectiveContext, lastStatus, currentTimeNanos } from "../abi/hostcalls";
import { HostBytes } from "../abi/memory";
import { GrpcMethod, encodeGrpcService, grpcSend, grpcCancel } from "../abi/grpc";
import { propertyString } from "../abi/properties";
import { EgressConfig, parseConfig, configError } from "./config";
import { EgressMetrics } from "./metrics";
import { nowMs, jitter, seedJitter } from "./clock";
import { ResolutionTable, ORIGIN_POD_DNS, ORIGIN_MESH_CONFIG } from "../resolve/table";

/** egret.v1.NameSource NAME_SOURCE_MESH_CONFIG (anything else is pod DNS). */
const NAME_SOURCE_MESH_CONFIG: i64 = 2;
import { parseIp, ipFromBytes, parsedHi, parsedLo } from "../resolve/ip";
import { PolicySnapshot, decodeSnapshot, lastDecodeError, lastDecodeErrorOffset } from "../policy/snapshot";
import { PbWriter } from "../pb/writer";
import {
  Span, WatchResponseView, ResolutionView, LookupResponseView, encodeSubscribe, encodeAck, encodeLookup,
  WATCH_ACK, WATCH_NACK, WATCH_SNAPSHOT, WATCH_DELTA, LOOKUP_FOUND,
} from "../pb/egret";
import { ReportBatch } from "./report";
import { EgressStream, PHASE_WAIT_CLAIM } from "./stream";
import { Inspector, ensureInspectScratch } from "./inspect";
import { SharedWatch, ROLE_OWN, ROLE_HOLDER, ROLE_FOLLOWER, ROLE_CANDIDATE } from "./shared";
import { RequestFramer } from "./requests";
import { ConnectionFacts } from "./facts";
import { H2RequestWalker } from "./h2requests";

const SERVICE = "egret.v1.FilterService";
/** Pending-slot kinds: why a connection is registered with the root. */
export const PENDING_NONE: u8 = 0;
export const PENDING_LOOKUP: u8 = 1;
export const PENDING_STARTUP: u8 = 2;
export const PENDING_DETECT: u8 = 3;
/** Lookup calls retried per connection after transport failures (within its deadline). */
const MAX_LOOKUP_RETRIES: i32 = 3;
/** Most connections one VM holds at once (held for Lookup, startup or detection). */
const MAX_PENDING: i32 = 8192;
/** How often expired resolutions are swept from the table. */
const SWEEP_INTERVAL_MS: i64 = 10000;
const MESSAGE_BUFFER_BYTES: u32 = 64 * 1024;
/** Longest wait for control's answer to a Report batch before sending it again. */
const REPORT_ANSWER_TIMEOUT_MS: i64 = 30000;
/** Connections one callback closes after a policy change at most (the rest: next tick). */
const MAX_REVOKES_PER_CALL: i32 = 256;
/** Shortest Watch lease (shared.ts): a holder that missed this many ms of ticks is replaced. */
const MIN_LEASE_MS: i64 = 1000;

export const WATCH_IDLE: u8 = 0; // no stream; reconnect at watchRetryAtMs
export const WATCH_OPEN: u8 = 1; // stream open (may not have received anything yet)

export class EgressRoot extends RootContext {
  config: EgressConfig | null = null;
  metrics: EgressMetrics | null = null;
  table: ResolutionTable | null = null;
  /** The policy in force; swapped whole when a new one decodes. */
  snapshot: PolicySnapshot | null = null;
  /** Policy bytes' hash (from the server) of the snapshot in force. */
  policyHash: string = "";

  podName: string = "";
  podNamespace: string = "";
  instanceId: string = "";
  /** Pod IPs as 4/16-byte strings for Watch (concatenated) and their lengths. */
  podIps: StaticArray<u8> = new StaticArray<u8>(16 * 8);
  podIpLens: StaticArray<u8> = new StaticArray<u8>(8);
  podIpCount: i32 = 0;

  // Control channel.
  watchMethod: GrpcMethod | null = null;
  lookupMethod: GrpcMethod | null = null;
  reportMethod: GrpcMethod | null = null;
  watchToken: u32 = 0;
  watchState: u8 = WATCH_IDLE;
  /** True once this stream delivered a response (control reachable right now). */
  watchLive: bool = false;
  watchRetryAtMs: i64 = 0;
  watchBackoffMs: u32 = 0;
  epoch: string = "";
  version: u64 = 0;
  /** local clock − server clock (from Watch responses), applied to every expiry the server sends. */
  skewMs: i64 = 0;
  /** The Report stream carrying the batch in flight (one batch per stream), 0 when none. */
  reportToken: u32 = 0;
  /** Control answered the batch in flight (ReportResponse). */
  reportAcked: bool = false;
  /** Give up waiting for the answer (cancel, resend) at this time. */
  reportDeadlineMs: i64 = 0;
  reportRetryAtMs: i64 = 0;
  reportBackoffMs: u32 = 0;
  report: ReportBatch | null = null;
  /** The clock at the last tick: what the per-data path compares against (no host call per chunk). */
  tickNowMs: i64 = 0;

  // Held connections: parallel arrays indexed by slot (a free list links unused slots).
  slotStream: StaticArray<EgressStream | null> = new StaticArray<EgressStream | null>(MAX_PENDING);
  slotKind: StaticArray<u8> = new StaticArray<u8>(MAX_PENDING);
  slotToken: StaticArray<u32> = new StaticArray<u32>(MAX_PENDING);
  slotDeadline: StaticArray<i64> = new StaticArray<i64>(MAX_PENDING);
  slotNext: StaticArray<i32> = new StaticArray<i32>(MAX_PENDING);
  slotFree: i32 = 0;
  /** Highest slot index ever used + 1 (deadline scans stop there). */
  slotHigh: i32 = 0;
  pendingCount: i32 = 0;

  lastSweepMs: i64 = 0;
  /** The Watch shared by this sidecar's VMs (shared.ts); null before configuration. */
  shared: SharedWatch | null = null;
  /** Detector states not in use (a connection takes one only while it inspects). */
  private inspectors: Inspector[] = [];
  private laterHeads: Inspector | null = null;
  private framers: RequestFramer[] = [];
  /** Recorded facts not in use (an open, passing connection holds one). */
  private factsPool: ConnectionFacts[] = [];
  /** Open connections that passed, newest first (re-judged when the policy changes). */
  openHead: EgressStream | null = null;
  /** A new policy was applied: open connections are judged again (after the response, or on the next tick). */
  rejudgeDue: bool = false;
  /** Counts policy changes; a connection judged under the current policy carries this number. */
  policyGeneration: u32 = 0;
  private h2Walkers: H2RequestWalker[] = [];
  // Reused decoders and buffers (allocated once).
  private watchView: WatchResponseView = new WatchResponseView();
  private resView: ResolutionView = new ResolutionView();
  private lookupView: LookupResponseView = new LookupResponseView();
  private span: Span = new Span();
  private nameSpan: Span = new Span();
  /** nextName's outputs: [0] expiry, [1] egret.v1.NameSource. */
  private expiresOut: StaticArray<i64> = new StaticArray<i64>(2);
  private received: HostBytes = new HostBytes();
  private status: HostBytes = new HostBytes();
  msgBuf: StaticArray<u8> = new StaticArray<u8>(<i32>MESSAGE_BUFFER_BYTES);
  msg: PbWriter = new PbWriter(0, 0);
  /** Scratch for IP bytes in Lookup requests. */
  ipScratch: StaticArray<u8> = new StaticArray<u8>(32);

  constructor(id: u32) {
    super(id);
    this.msg.buf = changetype<usize>(this.msgBuf);
    this.msg.cap = MESSAGE_BUFFER_BYTES;
    for (let i = 0; i < MAX_PENDING; i++) unchecked((this.slotNext[i] = i + 1 < MAX_PENDING ? i + 1 : -1));
  }

  // ---- configuration ---------------------------------------------------------------------

  onConfigure(size: u32): bool {
    const raw = new HostBytes();
    const st = getBuffer(BufferType.PluginConfiguration, 0, size == 0 ? 0xffffffff : size, raw);
    if (st != Status.Ok && st != Status.NotFound) {
      log(LogLevel.Critical, "egret: cannot read the plugin configuration (status " + (<u32>st).toString() + ")");
      return false;
    }
    const cfg = parseConfig(raw.ptr, raw.len);
    raw.release();
    if (cfg === null) {
      log(LogLevel.Critical, configError);
      return false;
    }
    if (!this.readIdentity()) return false;
    this.config = cfg;
    if (this.metrics === null) this.metrics = new EgressMetrics();
    this.table = new ResolutionTable(cfg.maxResolutions, cfg.resolutionNameBytes);
    this.report = new ReportBatch(cfg.reportBufferBytes);
    ensureInspectScratch(cfg.maxInspectBytes);
    const upstream = encodeGrpcService(cfg.controlCluster, cfg.controlAuthority);
    this.watchMethod = new GrpcMethod(upstream, SERVICE, "Watch");
    this.lookupMethod = new GrpcMethod(upstream, SERVICE, "Lookup");
    this.reportMethod = new GrpcMethod(upstream, SERVICE, "Report");
    seedJitter(currentTimeNanos() ^ (<u64>this.id << 32));
    this.instanceId = this.podNamespace + "/" + this.podName + "#" + (currentTimeNanos() % 1000000007).toString(16);
    this.watchBackoffMs = cfg.watchBackoffInitialMs;
    this.reportBackoffMs = cfg.watchBackoffInitialMs;
    setTickPeriod(cfg.tickMs);
    const shared = new SharedWatch(this.podNamespace, this.podName, <u32>(currentTimeNanos() ^ (<u64>this.id << 16)) | 1);
    this.shared = shared;
    if (shared.leaseHeldByOther(nowMs())) {
      // Another VM of this sidecar holds the Watch (this VM was added or reloaded later): follow it.
      shared.role = ROLE_FOLLOWER;
      this.syncShared();
    } else {
      this.openWatch();
    }
    log(LogLevel.Info, "egret: configured for pod " + this.podNamespace + "/" + this.podName + ", control " + cfg.controlCluster + ", failure mode " + (cfg.failureMode == 0 ? "closed" : "open"));
    return true;
  }

  /** Pod identity from Istio node metadata (xds.node.metadata, or pre-1.33 node.metadata). */
  private readIdentity(): bool {
    let name = propertyString("xds", "node", "metadata", "NAME");
    let ns = propertyString("xds", "node", "metadata", "NAMESPACE");
    let ips = propertyString("xds", "node", "metadata", "INSTANCE_IPS");
    if (name === null && ns === null && ips === null) {
      name = propertyString("node", "metadata", "NAME");
      ns = propertyString("node", "metadata", "NAMESPACE");
      ips = propertyString("node", "metadata", "INSTANCE_IPS");
    }
    this.podName = name !== null ? name : "";
    this.podNamespace = ns !== null ? ns : "";
    this.podIpCount = 0;
    if (ips !== null) {
      const parts = ips.split(",");
      let off = 0;
      for (let i = 0; i < parts.length && this.podIpCount < 8; i++) {
        const t = parts[i].trim();
        const b = String.UTF8.encode(t);
        if (!parseIp(changetype<usize>(b), <usize>b.byteLength)) continue;
        const n = ipToBytes(parsedHi, parsedLo, changetype<usize>(this.podIps) + <usize>off);
        unchecked((this.podIpLens[this.podIpCount++] = <u8>n));
        off += <i32>n;
      }
    }
    if (this.podName.length == 0 && this.podIpCount == 0) {
      log(LogLevel.Critical, "egret configuration: the pod identity is unknown: node metadata NAME/NAMESPACE/INSTANCE_IPS are missing (xds.node.metadata); run egret.wasm in an Istio sidecar or give the host node metadata");
      return false;
    }
    return true;
  }

  newStream(id: u32): StreamContext {
    // A connection sees every response the Watch holder applied before it (one small read); held
    // connections this brings names for are re-judged on the next tick.
    this.syncShared();
    return new EgressStream(id, this);
  }

  // ---- time-driven work -------------------------------------------------------------------

  onTick(): void {
    const cfg = this.config;
    if (cfg === null) return;
    const now = nowMs();
    this.tickNowMs = now;
    this.runLease(now, cfg.tickMs);
    if (this.rejudgeDue) this.rejudgeOpen(now);
    if (this.watchState == WATCH_IDLE && now >= this.watchRetryAtMs && this.watchesItself()) this.openWatch();
    this.expireHeld(now);
    if (this.reportToken != 0 && now >= this.reportDeadlineMs) {
      // No answer in time (control hung or the stream stalled): the batch goes out again.
      grpcCancel(this.reportToken);
      this.reportFailed(now);
    }
    const rep = this.report;
    if (rep !== null && rep.entries() > 0 && (rep.entries() >= <i32>cfg.reportBatchSize || now - rep.firstAtMs >= <i64>cfg.reportIntervalMs)) this.flushReport();
    if (now - this.lastSweepMs >= SWEEP_INTERVAL_MS) {
      this.lastSweepMs = now;
      this.sweepTable(now);
    }
  }

  /** Keeps expired resolutions as long as the largest policy grace; drops older ones. */
  sweepTable(now: i64): void {
    const t = this.table;
    const m = this.metrics;
    if (t === null || m === null) return;
    const before = t.expired;
    t.sweep(now - this.graceMs());
    if (t.expired > before) m.tableExpired.increment(<i64>(t.expired - before));
    this.publishTableGauges();
  }

  graceMs(): i64 {
    const s = this.snapshot;
    return s !== null ? <i64>s.maxGraceSeconds * 1000 : 0;
  }

  publishTableGauges(): void {
    const t = this.table;
    const m = this.metrics;
    // One VM speaks for the sidecar's (identical) tables: gauges are process-wide in Envoy.
    if (t === null || m === null || !this.watchesItself()) return;
    m.tableEntries.record(t.size);
    m.tableNames.record(t.names.live);
  }

  private expireHeld(now: i64): void {
    for (let i = 0; i < this.slotHigh; i++) {
      const kind = unchecked(this.slotKind[i]);
      if (kind == PENDING_NONE) continue;
      if (now < unchecked(this.slotDeadline[i])) {
        // A Lookup whose call failed on the transport is retried on the next tick (token 0).
        if (kind == PENDING_LOOKUP && unchecked(this.slotToken[i]) == 0) this.retryLookup(i);
        else if (kind == PENDING_DETECT) {
          const waiting = unchecked(this.slotStream[i]);
          if (waiting !== null) waiting.coverSilentUpstream(now);
        }
        continue;
      }
      const s = unchecked(this.slotStream[i]);
      const token = unchecked(this.slotToken[i]);
      this.releaseSlot(i);
      if (s === null) continue;
      if (kind == PENDING_LOOKUP && token != 0) grpcCancel(token);
      setEffectiveContext(s.id);
      if (kind == PENDING_LOOKUP) s.onLookupTimeout(now);
      else if (kind == PENDING_STARTUP) s.onStartupTimeout(now);
      else s.onDetectTimeout(now);
    }
  }

  // ---- held-connection registry ------------------------------------------------------------

  /** Registers a held connection; returns its slot or -1 when the registry is full. */
  hold(s: EgressStream, kind: u8, token: u32, deadline: i64): i32 {
    const i = this.slotFree;
    if (i < 0) return -1;
    this.slotFree = unchecked(this.slotNext[i]);
    unchecked((this.slotStream[i] = s));
    unchecked((this.slotKind[i] = kind));
    unchecked((this.slotToken[i] = token));
    unchecked((this.slotDeadline[i] = deadline));
    if (i + 1 > this.slotHigh) this.slotHigh = i + 1;
    this.pendingCount++;
    // Every VM adds its own held connections to the one process-wide gauge.
    const m = this.metrics;
    if (m !== null) m.pendingConnections.increment(1);
    return i;
  }

  releaseSlot(i: i32): void {
    if (i < 0 || i >= MAX_PENDING || unchecked(this.slotKind[i]) == PENDING_NONE) return;
    const s = unchecked(this.slotStream[i]);
    if (s !== null) s.slot = -1;
    unchecked((this.slotStream[i] = null));
    unchecked((this.slotKind[i] = PENDING_NONE));
    unchecked((this.slotToken[i] = 0));
    unchecked((this.slotNext[i] = this.slotFree));
    this.slotFree = i;
    this.pendingCount--;
    while (this.slotHigh > 0 && unchecked(this.slotKind[this.slotHigh - 1]) == PENDING_NONE) this.slotHigh--;
    const m = this.metrics;
    if (m !== null) m.pendingConnections.increment(-1);
  }

  /** The connection went away while held: forget it, and cancel its Lookup call if one is in flight. */
  abandonSlot(i: i32): void {
    if (i < 0 || i >= MAX_PENDING) return;
    const token = unchecked(this.slotToken[i]);
    const kind = unchecked(this.slotKind[i]);
    this.releaseSlot(i);
    if (kind == PENDING_LOOKUP && token != 0) grpcCancel(token);
  }

  grpcCancelCall(token: u32): void {
    if (token != 0) grpcCancel(token);
  }

  /** Slot of a pending Lookup with this token, or -1. */
  private slotOfToken(token: u32): i32 {
    for (let i = 0; i < this.slotHigh; i++) {
      if (unchecked(this.slotKind[i]) == PENDING_LOOKUP && unchecked(this.slotToken[i]) == token) return i;
    }
    return -1;
  }

  /** A reset detector from the pool (allocates only when the pool is empty). */
  takeInspector(): Inspector {
    const capacity = <i32>this.config!.maxInspectBytes;
    let insp: Inspector | null = null;
    while (this.inspectors.length > 0) {
      const pooled = this.inspectors.pop();
      if (pooled.detector.clientCapacity == capacity) { insp = pooled; break; } // else: from an older configuration
    }
    if (insp === null) insp = new Inspector(capacity);
    insp.reset();
    return insp;
  }

  /** The VM's one inspector for later request heads on framed connections (one callback at a time). */
  requestInspector(): Inspector {
    const capacity = <i32>this.config!.maxInspectBytes;
    let ri = this.laterHeads;
    if (ri === null || ri.detector.clientCapacity != capacity) this.laterHeads = ri = new Inspector(capacity);
    ri.reset();
    return ri;
  }

  /** A request framer from the pool (allocates only when the pool is empty). */
  takeFramer(): RequestFramer {
    const f = this.framers.length > 0 ? this.framers.pop() : new RequestFramer();
    f.reset(this.config!.maxInspectBytes);
    return f;
  }

  giveBackFramer(f: RequestFramer): void {
    if (this.framers.length < 1024) this.framers.push(f);
  }

  /** A facts record from the pool (allocates only when the pool is empty). */
  takeFacts(): ConnectionFacts {
    return this.factsPool.length > 0 ? this.factsPool.pop() : new ConnectionFacts();
  }

  linkOpen(s: EgressStream): void {
    const head = this.openHead;
    s.openPrev = null;
    s.openNext = head;
    if (head !== null) head.openPrev = s;
    this.openHead = s;
  }

  /** The connection closed: off the open list, its facts back to the pool. */
  unlinkOpen(s: EgressStream): void {
    const f = s.facts;
    if (f === null) return;
    const prev = s.openPrev;
    const next = s.openNext;
    if (prev !== null) prev.openNext = next;
    else this.openHead = next;
    if (next !== null) next.openPrev = prev;
    s.openPrev = null;
    s.openNext = null;
    s.facts = null;
    // Bounded: a burst of open connections does not pin memory forever.
    if (this.factsPool.length < 1024) this.factsPool.push(f);
  }

  /**
   * The policy changed: every open connection that passed is judged again on its recorded facts
   * (stream.ts rejudge). Closes are deferred by the host until this callback returns, so the list
   * is not changed under the walk; `next` is read first all the same. The host runs each deferred
   * close (and the callbacks it causes) nested in the previous one's (Envoy's after-VM-call
   * actions recurse, and so does the Node host), so one callback closes at most
   * MAX_REVOKES_PER_CALL connections and the next tick goes on with the rest.
   */
  private rejudgeOpen(now: i64): void {
    this.rejudgeDue = false;
    if (this.snapshot === null) return;
    const generation = this.policyGeneration;
    let closes = 0;
    let s = this.openHead;
    while (s !== null) {
      const next = s.openNext;
      if (s.judgedGeneration != generation) {
        if (closes >= MAX_REVOKES_PER_CALL) {
          this.rejudgeDue = true;
          return;
        }
        s.judgedGeneration = generation;
        setEffectiveContext(s.id);
        if (s.rejudge(now)) closes++;
      }
      s = next;
    }
  }

  /** A pooled h2c request walker (~41 KiB each: header block copy and HPACK table). */
  takeH2Walker(): H2RequestWalker {
    return this.h2Walkers.length > 0 ? this.h2Walkers.pop() : new H2RequestWalker();
  }

  giveBackH2Walker(w: H2RequestWalker): void {
    if (this.h2Walkers.length < 32) this.h2Walkers.push(w);
  }

  giveBackInspector(insp: Inspector): void {
    // Bounded: a burst of concurrent inspections does not pin memory forever.
    if (this.inspectors.length < 256) this.inspectors.push(insp);
  }

  // ---- Lookup ------------------------------------------------------------------------------

  /**
   * Asks control which names this pod resolved to the destination; returns the call token, or 0
   * when the call could not be started (control cluster unknown/unavailable).
   */
  startLookup(srcHi: u64, srcLo: u64, dstHi: u64, dstLo: u64, claimPtr: usize = 0, claimLen: i32 = 0): u32 {
    const cfg = this.config;
    const method = this.lookupMethod;
    if (cfg === null || method === null) return 0;
    const ips = changetype<usize>(this.ipScratch);
    const srcLen = ipToBytes(srcHi, srcLo, ips);
    const dstLen = ipToBytes(dstHi, dstLo, ips + 16);
    // Control answers NOT_FOUND a little before our own deadline, so the normal "nothing came"
    // outcome is an answer rather than a timeout.
    const margin: u32 = cfg.lookupTimeoutMs / 5 < 50 ? cfg.lookupTimeoutMs / 5 : 50;
    if (!encodeLookup(this.msg, srcHi == 0 && srcLo == 0 ? 0 : ips, srcHi == 0 && srcLo == 0 ? 0 : srcLen, ips + 16, dstLen, this.podName, this.podNamespace, cfg.lookupTimeoutMs - margin, this.instanceId, claimPtr, <u32>claimLen)) return 0;
    return method.call(changetype<usize>(this.msgBuf), this.msg.pos, cfg.lookupTimeoutMs + margin);
  }

  private onLookupAnswer(token: u32, size: u32): void {
    const slot = this.slotOfToken(token);
    // Apply what control knows even if the connection already gave up: the next one benefits.
    const found = this.readGrpcMessage(size) && this.lookupView.decode(this.received.ptr, this.received.len) && this.lookupView.result == LOOKUP_FOUND;
    const m = this.metrics!;
    if (found) {
      // Expiries are corrected with the Watch stream's skew estimate (one consistent source).
      this.applyResolution(this.lookupView.resolution.ptr, this.lookupView.resolution.len, nowMs());
      m.lookupFound.increment(1);
    } else {
      m.lookupNotFound.increment(1);
    }
    this.received.release();
    if (slot < 0) return;
    const s = unchecked(this.slotStream[slot]);
    this.releaseSlot(slot);
    if (s === null) return;
    setEffectiveContext(s.id);
    s.onLookupDone(nowMs(), found);
  }

  private onLookupFailed(token: u32, grpcStatus: u32): void {
    const slot = this.slotOfToken(token);
    this.metrics!.lookupFailed.increment(1);
    if (slot < 0) return;
    const s = unchecked(this.slotStream[slot]);
    const now = nowMs();
    // Past the connection's deadline the hold is over whatever the status says: Envoy reports its
    // own call timeout as UNAVAILABLE "upstream request timeout" (the router's local 504), and a
    // server enforcing grpc-timeout as DEADLINE_EXCEEDED (4); docs/reference/envoy-grpc.md.
    const timedOut = grpcStatus == 4 || now >= unchecked(this.slotDeadline[slot]);
    // A transport failure (connection reset, replica going away) is not an answer: ask again on
    // the next tick while the connection's deadline allows. The deadline still bounds the hold.
    if (s !== null && !timedOut && s.lookupRetries < MAX_LOOKUP_RETRIES) {
      s.lookupRetries++;
      unchecked((this.slotToken[slot] = 0));
      return;
    }
    this.releaseSlot(slot);
    if (s === null) return;
    setEffectiveContext(s.id);
    if (timedOut) s.onLookupTimeout(now);
    else s.onControlUnavailable(now);
  }

  private retryLookup(slot: i32): void {
    const s = unchecked(this.slotStream[slot]);
    if (s === null) return;
    const claimed = s.phase == PHASE_WAIT_CLAIM;
    const token = this.startLookup(s.srcHi, s.srcLo, s.dstHi, s.dstLo, claimed ? s.claimPtr : 0, claimed ? s.claimLen : 0);
    if (token == 0) return; // still cannot start a call: try again next tick, until the deadline
    unchecked((this.slotToken[slot] = token));
    this.metrics!.lookupRetries.increment(1);
  }

  // ---- Watch -------------------------------------------------------------------------------

  private openWatch(fresh: bool = false): void {
    const cfg = this.config;
    const method = this.watchMethod;
    if (cfg === null || method === null) return;
    if (this.watchToken != 0) grpcCancel(this.watchToken); // reconfigured: one stream per root
    this.watchToken = 0;
    const token = method.openStream();
    if (token == 0) {
      log(LogLevel.Warn, "egret: cannot open Watch to " + cfg.controlCluster + " (status " + (<u32>method.lastStatus).toString() + "); retrying");
      this.scheduleWatchRetry();
      return;
    }
    if (!encodeSubscribe(this.msg, this.podName, this.podNamespace, this.podIps, this.podIpLens, this.podIpCount, this.instanceId, fresh ? "" : this.epoch, fresh ? 0 : this.version) ||
        grpcSend(token, changetype<usize>(this.msgBuf), this.msg.pos) != Status.Ok) {
      grpcCancel(token);
      this.scheduleWatchRetry();
      return;
    }
    this.watchToken = token;
    this.watchState = WATCH_OPEN;
    this.watchLive = false;
  }

  private scheduleWatchRetry(): void {
    const cfg = this.config!;
    this.watchToken = 0;
    this.watchState = WATCH_IDLE;
    this.watchLive = false;
    const b = this.watchBackoffMs;
    // Full jitter between b/2 and b, then double up to the cap.
    this.watchRetryAtMs = nowMs() + <i64>(b / 2 + jitter(b / 2 + 1));
    const nb = <u64>b * 2;
    this.watchBackoffMs = nb > <u64>cfg.watchBackoffMaxMs ? cfg.watchBackoffMaxMs : <u32>nb;
    const m = this.metrics;
    if (m !== null && this.watchesItself()) m.watchConnected.record(0);
  }

  // ---- one Watch per sidecar (shared.ts) -----------------------------------------------------

  /** This VM runs a Watch stream of its own: the holder, or any VM before the first election. */
  watchesItself(): bool {
    const sh = this.shared;
    return sh === null || sh.role == ROLE_HOLDER || sh.role == ROLE_OWN;
  }

  /** The lease round of this tick, and what a change of role means for this VM's stream. */
  private runLease(now: i64, tickMs: u32): void {
    const sh = this.shared;
    if (sh === null) return;
    const before = sh.role;
    // A VM joins the election once its own stream delivered a snapshot (or it follows already): a
    // VM that stopped its stream earlier would have nothing to decide with until the holder
    // publishes, and while control is unreachable at startup every VM keeps trying, as before.
    if (before == ROLE_OWN && this.snapshot === null) return;
    const lease = <i64>tickMs * 10 > MIN_LEASE_MS ? <i64>tickMs * 10 : MIN_LEASE_MS;
    if (before != ROLE_HOLDER && before != ROLE_OWN && this.syncShared()) this.resumeHeld();
    const role = sh.tickLease(now, lease);
    if (role == ROLE_HOLDER) {
      if (before != ROLE_HOLDER) this.becomeHolder();
      return;
    }
    if (role == ROLE_FOLLOWER && before != ROLE_FOLLOWER) {
      // Another VM holds the Watch: close ours. Our state follows the shared log (from its base
      // when it came from our own stream: then seq is 0).
      if (this.watchToken != 0) grpcCancel(this.watchToken);
      this.watchToken = 0;
      this.watchState = WATCH_IDLE;
      this.watchLive = false;
      log(LogLevel.Debug, "egret: following the Watch held by another VM of this sidecar");
      if (this.syncShared()) this.resumeHeld();
    }
  }

  /**
   * Takes over the Watch: catch up with what the previous holder published, then resume from that
   * version (control answers with what changed since) — or, when this VM's state is not the
   * shared log's, subscribe afresh so that the snapshot becomes the new base.
   */
  private becomeHolder(): void {
    const sh = this.shared!;
    const wasFollower = sh.seq > 0;
    if (wasFollower) this.syncShared();
    const inLog = sh.readHead() && sh.seq == sh.headSeq && sh.seq > 0;
    if (inLog) sh.baseSeq = sh.headBase;
    else if (sh.readHead()) sh.seq = sh.headSeq; // continue the numbering; the snapshot re-bases
    sh.role = ROLE_HOLDER;
    log(LogLevel.Info, "egret: this VM holds the Watch for the sidecar (" + (inLog ? "resuming version " + this.version.toString() : "fresh snapshot") + ")");
    this.watchBackoffMs = this.config!.watchBackoffInitialMs;
    this.openWatch(!inLog);
  }

  /**
   * Follower: applies what the holder published since this VM's last entry (base first when this
   * VM is behind it). Returns whether anything changed (the caller re-judges held connections).
   */
  syncShared(): bool {
    const sh = this.shared;
    if (sh === null || sh.role == ROLE_HOLDER || sh.role == ROLE_OWN || !sh.readHead()) return false;
    if (sh.headSeq == sh.seq) return false;
    let changed = false;
    if (sh.seq < sh.headBase || sh.seq > sh.headSeq) {
      if (!this.applyShared(sh.headBase, true)) return false;
      changed = true;
    }
    while (sh.seq < sh.headSeq) {
      if (!this.applyShared(sh.seq + 1, false)) {
        sh.seq = 0; // overwritten or refused: start again from the base next time
        break;
      }
      changed = true;
    }
    return changed;
  }

  private applyShared(seq: u64, base: bool): bool {
    const sh = this.shared!;
    if (!sh.readEntry(seq, base)) return false;
    const v = this.watchView;
    let ok = v.decode(sh.entryMessagePtr(), sh.entryMessageLen());
    if (ok) {
      this.skewMs = sh.entrySkew();
      ok = this.applyWatchResponse(v, false).length == 0;
    }
    sh.value.release();
    if (ok) sh.seq = seq;
    return ok;
  }

  /** Control is reachable as far as we know (a Watch response arrived on the open stream). */
  controlReachable(): bool {
    return this.watchState == WATCH_OPEN && this.watchLive;
  }

  private onWatchResponse(size: u32): void {
    const m = this.metrics!;
    const v = this.watchView;
    if (!this.readGrpcMessage(size) || !v.decode(this.received.ptr, this.received.len)) {
      // Undecodable: we cannot even ACK by version; NACK the last good one so the server resends.
      this.sendAck(WATCH_NACK, this.version, this.span, "malformed WatchResponse");
      this.received.release();
      return;
    }
    if (!this.watchLive) {
      this.watchLive = true;
      this.watchBackoffMs = this.config!.watchBackoffInitialMs;
      m.watchConnected.record(1);
    }
    const err = this.applyWatchResponse(v, true);
    let resnapshot = false;
    if (err.length > 0) {
      m.watchNacks.increment(1);
      log(LogLevel.Warn, "egret: rejecting Watch version " + v.version.toString() + ": " + err);
      this.sendAck(WATCH_NACK, v.version, v.nonce, err);
    } else {
      this.sendAck(WATCH_ACK, v.version, v.nonce, "");
      const sh = this.shared;
      if (sh !== null && sh.role == ROLE_HOLDER) resnapshot = sh.publish(this.received.ptr, this.received.len, v.type == WATCH_SNAPSHOT, this.skewMs);
    }
    this.received.release();
    // The shared ring is about to lose the deltas that lead from the base: re-base on a snapshot.
    if (resnapshot) this.openWatch(true);
    this.publishTableGauges();
    this.resumeHeld();
    if (this.rejudgeDue) this.rejudgeOpen(nowMs());
  }

  /**
   * Applies a SNAPSHOT or DELTA; returns "" or why it was rejected (state unchanged then).
   * `fromControl`: received on this VM's own stream (false: published by the holder, whose skew
   * the caller set; the holder already counted it).
   */
  private applyWatchResponse(v: WatchResponseView, fromControl: bool): string {
    const m = this.metrics!;
    const t = this.table!;
    if (v.type != WATCH_SNAPSHOT && v.type != WATCH_DELTA) return "unknown response type " + v.type.toString();
    if (v.type == WATCH_DELTA && (this.snapshot === null || v.baseVersion != this.version || v.epoch.toString() != this.epoch)) {
      return "delta from version " + v.baseVersion.toString() + " does not apply to version " + this.version.toString();
    }
    // Decode the policy first: a bad policy rejects the whole response, keeping the last good state.
    let snap: PolicySnapshot | null = null;
    if (v.type == WATCH_SNAPSHOT && v.policy.len == 0 && !v.podSelected) {
      // Control has no compiled policy for this pod and says nothing selects it: not enforced.
      snap = new PolicySnapshot(new StaticArray<u8>(0), 0);
    } else if (v.policy.len > 0 || v.type == WATCH_SNAPSHOT) {
      snap = decodeSnapshot(v.policy.ptr, v.policy.len);
      if (snap === null) return "policy snapshot rejected: error " + lastDecodeError().toString() + " at offset " + lastDecodeErrorOffset().toString();
    }
    if (fromControl) this.noteServerTime(v.serverTimeMs);
    const now = nowMs();
    if (v.type == WATCH_SNAPSHOT) {
      t.clear();
      if (fromControl) m.watchSnapshots.increment(1);
    } else {
      if (fromControl) m.watchDeltas.increment(1);
      v.rewind();
      while (v.nextRemoval(this.span)) {
        if (ipFromBytes(this.span.ptr, this.span.len)) t.removeIp(parsedHi, parsedLo);
      }
    }
    v.rewind();
    const res = this.resView;
    const evictedBefore = t.evicted;
    while (v.nextUpsert(res)) this.applyResolutionView(res, now, true);
    if (t.evicted > evictedBefore && fromControl) m.tableEvictions.increment(<i64>(t.evicted - evictedBefore));
    if (snap !== null) {
      const hash = v.policyHash.toString();
      // A different policy (or one control did not hash): open connections are judged again.
      if (this.snapshot !== null && (hash.length == 0 || hash != this.policyHash)) {
        this.policyGeneration++;
        if (this.openHead !== null) this.rejudgeDue = true;
      }
      this.snapshot = snap;
      this.policyHash = hash;
      m.policyLoaded.record(1);
    }
    this.epoch = v.epoch.toString();
    this.version = v.version;
    return "";
  }

  private sendAck(type: u32, version: u64, nonce: Span, detail: string): void {
    if (this.watchToken == 0) return;
    if (encodeAck(this.msg, type, version, nonce, detail)) grpcSend(this.watchToken, changetype<usize>(this.msgBuf), this.msg.pos);
  }

  private noteServerTime(serverMs: i64): void {
    if (serverMs > 0) this.skewMs = nowMs() - serverMs;
  }

  /** Applies an encoded egret.v1.Resolution (Lookup answer): upserts its names. */
  private applyResolution(ptr: usize, len: u32, now: i64): void {
    if (this.resView.decode(ptr, len)) this.applyResolutionView(this.resView, now, false);
  }

  private applyResolutionView(res: ResolutionView, now: i64, replace: bool): void {
    const t = this.table!;
    if (!res.valid || !ipFromBytes(res.ip.ptr, res.ip.len)) {
      this.metrics!.internalErrors.increment(1);
      return;
    }
    const hi = parsedHi;
    const lo = parsedLo;
    // A Watch upsert replaces the IP's entry wholesale; a Lookup answer only adds.
    if (replace) t.removeIp(hi, lo);
    const name = this.nameSpan;
    while (res.nextName(name, this.expiresOut)) {
      if (name.len == 0) continue;
      let exp = unchecked(this.expiresOut[0]);
      if (exp == 0) exp = res.expiresMs;
      const origin = unchecked(this.expiresOut[1]) == NAME_SOURCE_MESH_CONFIG ? ORIGIN_MESH_CONFIG : ORIGIN_POD_DNS;
      if (t.upsert(hi, lo, name.ptr, name.len, name.ptr, name.len, exp + this.skewMs, now, origin) == false) {
        this.metrics!.tableRejected.increment(1);
        continue;
      }
      for (let k = 0; k < res.echCount; k++) {
        const p = unchecked(res.echNames[k]);
        if (!t.attachEch(k, p.ptr, p.len, now)) this.metrics!.tableRejected.increment(1);
      }
    }
  }

  /** After new resolutions or policy: re-evaluate connections waiting for them. */
  private resumeHeld(): void {
    if (this.snapshot === null) return;
    const now = nowMs();
    const t = this.table!;
    for (let i = 0; i < this.slotHigh; i++) {
      const kind = unchecked(this.slotKind[i]);
      if (kind != PENDING_STARTUP && kind != PENDING_LOOKUP) continue;
      const s = unchecked(this.slotStream[i]);
      if (s === null) continue;
      if (kind == PENDING_LOOKUP) {
        // Waiting for the IP's first names, or (claim Lookup) for the claimed name among them.
        if (s.phase == PHASE_WAIT_CLAIM ? !s.claimNowKnown(now) : t.lookup(s.dstHi, s.dstLo, now, this.graceMs()) == 0) continue;
      }
      const token = unchecked(this.slotToken[i]);
      this.releaseSlot(i);
      if (kind == PENDING_LOOKUP && token != 0) grpcCancel(token);
      setEffectiveContext(s.id);
      if (kind == PENDING_STARTUP) s.onSnapshotReady(now);
      else s.onLookupDone(now, true);
    }
  }

  // ---- Report ------------------------------------------------------------------------------

  /**
   * Sends every buffered event as one batch on its own Report stream (half-closed at once, so
   * control answers with a ReportResponse). One batch in flight at a time; it stays buffered until
   * that answer arrives, and goes out again (with what was decided meanwhile) if the stream fails,
   * so a control restart loses no verdict that fits the buffer.
   */
  flushReport(): void {
    const rep = this.report;
    const method = this.reportMethod;
    const cfg = this.config;
    if (rep === null || method === null || cfg === null || rep.entries() == 0 || this.reportToken != 0) return;
    const now = nowMs();
    if (now < this.reportRetryAtMs) return;
    const token = method.openStream();
    if (token == 0) {
      this.scheduleReportRetry(now);
      return;
    }
    const len = rep.finish();
    const st = grpcSend(token, rep.ptr(), len, true);
    rep.unfinish();
    if (st != Status.Ok) {
      grpcCancel(token);
      this.scheduleReportRetry(now);
      return;
    }
    rep.markSent();
    this.reportToken = token;
    this.reportAcked = false;
    this.reportDeadlineMs = now + REPORT_ANSWER_TIMEOUT_MS;
  }

  private onReportAnswer(): void {
    const rep = this.report;
    const m = this.metrics;
    if (rep === null || m === null || this.reportAcked) return;
    this.reportAcked = true;
    m.reportEventsSent.increment(rep.sentCount);
    m.reportBatches.increment(1);
    rep.ack(nowMs());
    this.reportBackoffMs = this.config!.watchBackoffInitialMs;
  }

  private reportFailed(now: i64): void {
    this.reportToken = 0;
    const rep = this.report;
    if (rep !== null) rep.unsent();
    this.scheduleReportRetry(now);
  }

  private scheduleReportRetry(now: i64): void {
    const cfg = this.config!;
    const b = this.reportBackoffMs;
    this.reportRetryAtMs = now + <i64>(b / 2 + jitter(b / 2 + 1));
    const nb = <u64>b * 2;
    this.reportBackoffMs = nb > <u64>cfg.watchBackoffMaxMs ? cfg.watchBackoffMaxMs : <u32>nb;
  }

  // ---- gRPC callbacks ------------------------------------------------------------------------

  onGrpcReceive(token: u32, size: u32): void {
    if (token == this.watchToken && token != 0) this.onWatchResponse(size);
    else if (token == this.reportToken && token != 0) this.onReportAnswer();
    else this.onLookupAnswer(token, size);
  }

  onGrpcClose(token: u32, grpcStatus: u32): void {
    const msg = lastStatus(this.status) != 0 ? this.status.toString() : "";
    this.status.release();
    if (token == this.watchToken && token != 0) {
      if (this.config !== null) {
        log(LogLevel.Warn, "egret: Watch stream closed (grpc-status " + grpcStatus.toString() + (msg.length > 0 ? ": " + msg : "") + "); keeping the last tables, reconnecting");
        this.metrics!.watchReconnects.increment(1);
        this.scheduleWatchRetry();
      }
      return;
    }
    if (token == this.reportToken && token != 0) {
      if (this.reportAcked) this.reportToken = 0; // answered: the next batch may go
      else this.reportFailed(nowMs());
      return;
    }
    this.onLookupFailed(token, grpcStatus);
  }

  private readGrpcMessage(size: u32): bool {
    return getBuffer(BufferType.GrpcReceiveBuffer, 0, size, this.received) == Status.Ok;
  }

  onDone(): bool {
    if (this.report !== null) this.flushReport();
    // Going away: let another VM take the Watch over at its next tick instead of after the lease.
    const sh = this.shared;
    if (sh !== null && sh.role == ROLE_HOLDER) sh.releaseLease();
    return true;
  }
}

/** Writes 4 (IPv4-mapped) or 16 network-order bytes of the address at `out`; returns the length. */
export function ipToBytes(hi: u64, lo: u64, out: usize): u32 {
  if (hi == 0 && (lo >> 32) == 0xffff) {
    store<u32>(out, bswap<u32>(<u32>lo));
    return 4;
  }
  store<u64>(out, bswap<u64>(hi));
  store<u64>(out + 8, bswap<u64>(lo));
  return 16;
}

export function createEgressRoot(id: u32): RootContext {
  return new EgressRoot(id);
}
