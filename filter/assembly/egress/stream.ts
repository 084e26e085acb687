// One outbound TCP connection through the enforcement filter. It decides once and caches the
// verdict (like Envoy's network RBAC filter); every later callback returns at once.
//
//   on_new_connection ─► destination known? ──no names, verdict depends on names──► hold + Lookup
//          │                                                                  (deadline: lookupTimeoutMs)
//          ├─► final verdict (CIDR/port/name, no protocol or claim needed) ──► allow / deny (no SYN)
//          └─► needs protocol or SNI/Host ──► continue connect, hold client bytes until the
//              detector answers (deadline: detectTimeoutMs); server-first protocols are judged on
//              the first server bytes (cannot be held: close on violation).
//
// Nothing here allocates per connection except what the ABI layer does to create the context;
// detector state comes from a pool owned by the root context.
import { StreamContext } from "../abi/context";
import { Action, BufferType, LogLevel, PeerType, Status, StreamType } from "../abi/enums";
import { closeStream, continueStream, readBuffer, log } from "../abi/hostcalls";
import { HostBytes } from "../abi/memory";
import { PropertyPath, getProperty } from "../abi/properties";
import { parseHostPort, parsedHi, parsedLo, parsedPort } from "../resolve/ip";
import {
  evaluate, EvalQuery, EvalResult, PROTOCOL_PENDING, CLAIM_NONE, CLAIM_SNI, CLAIM_HOST, CANDIDATE_SIZE,
  FLAG_DEPENDS_ON_NAMES, FLAG_DEPENDS_ON_CLAIM, VERDICT_PENDING, VERDICT_ALLOW, VERDICT_DENY, VERDICT_ALERT,
  REASON_PROTOCOL_MISMATCH, REASON_SNI_UNVERIFIED, REASON_HOST_UNVERIFIED, VERDICT_WOULD_DENY,
} from "../policy/engine";
import { FailureMode } from "./config";
import { RULE_ECH_ALLOWED } from "../policy/snapshot";
import { EgressRoot, PENDING_LOOKUP, PENDING_STARTUP, PENDING_DETECT } from "./root";
import { Inspector, INSPECT_NEED_MORE, inspectScratchPtr, inspectScratchSize } from "./inspect";
import { RequestFramer, FRAME_AWAIT, FRAME_BAD, FRAME_HEAD } from "./requests";
import { H2RequestWalker, H2_BAD, H2_REQUEST } from "./h2requests";
import { H2_CLAIM_BROKEN, H2_SERVER_PREFACE_HOLD, h2ServerPrefaceOnly } from "../detect/http2";
import { PROXY_CONNECT, PROXY_NONE, HTTP_CHUNKED, HTTP_UPGRADE, HTTP_UPGRADE_H2C } from "../detect/claims";
import {
  PROTO_TLS, PROTO_HTTP, PROTO_HTTP2, PROTO_UNKNOWN, PROTOCOL_COUNT, PROTO_POSTGRESQL, PROTO_MYSQL, PROTO_SMTP, PROTO_IMAP, PROTO_POP3,
  PROTO_FTP, PROTO_LDAP,
} from "../detect/protocols";
import { reportDecision, reportOpened } from "./decision";
import { nowMs } from "./clock";
import { outboundHost, clusterHostOffset, clusterHostLength } from "./cluster";
import { sameName } from "../policy/match";
import { ConnectionFacts, LAST, evaluateNoted, echPassesForEveryName, passes, UNVERIFIABLE_CLAIM } from "./facts";

// Phases of a connection.
export const PHASE_NEW: u8 = 0;
export const PHASE_WAIT_STARTUP: u8 = 1; // held in on_new_connection until the first snapshot
export const PHASE_WAIT_LOOKUP: u8 = 2; // held in on_new_connection until Lookup answers
export const PHASE_INSPECT: u8 = 3; // connected; client bytes held until the detector answers
export const PHASE_DECIDED: u8 = 4;
/** Inspected; the SNI/Host is not among the names known for the IP: client bytes held while Lookup asks control for it. */
export const PHASE_WAIT_CLAIM: u8 = 5;

// egret.v1.Reason values the filter itself assigns (the engine assigns the others).
export const REASON_LOOKUP_TIMEOUT: u8 = 9;
export const REASON_CONTROL_UNAVAILABLE: u8 = 10;
export const REASON_DETECTION_TIMEOUT: u8 = 12;
export const REASON_INTERNAL_ERROR: u8 = 13;
export const REASON_CLUSTER_UNVERIFIED: u8 = 14;
/** An open connection the pod's changed policy no longer allows (judged again on its recorded facts). */
export const REASON_REVOKED: u8 = 15;

// Shared per-VM scratch: a VM runs one callback at a time.
const RESULT = new EvalResult();
const QUERY = new EvalQuery();
const ADDRESS = new HostBytes();
const SOURCE_PATH = new PropertyPath(32).seg("source").seg("address");
const DESTINATION_PATH = new PropertyPath(32).seg("destination").seg("address");
/** Envoy's chosen upstream cluster (reference/proxy-wasm.md §4.3; docs/operations.md "Envoy properties"). */
export const CLUSTER_PATH = new PropertyPath(32).seg("xds").seg("cluster_name");
const CLUSTER = new HostBytes();
/** Client segments of an in-band-upgradable connection examined for a ClientHello before watching stops. */
const MAX_INNER_TLS_CHECKS: u32 = 32;
/** PostgreSQL SSLRequest code 80877103 as its big-endian bytes read little-endian. */
const SSL_REQUEST_CODE: u32 = 0x2f16d204;

/** Candidate buffer for traffic through a forward proxy: the one target name. */
const PROXY_CANDIDATE = memory.data(16);

/**
 * How stale the agent's cover of a decided connection may get before new client bytes renew it
 * (ms). Below the agent's correlation window (`--bypass-window-ms`, 4 s) minus the report interval,
 * so a SYN those bytes cause is always covered.
 */
const OPENED_REFRESH_MS: i64 = 1_000;
/** How long a connection may await its first bytes before it is reported opened (ms; see coverSilentUpstream). */
const OPENED_DELAY_MS: i64 = 250;

export class EgressStream extends StreamContext {
  phase: u8 = PHASE_NEW;
  /** Index in the root's held-connection registry, -1 when not registered. */
  slot: i32 = -1;
  srcHi: u64 = 0;
  srcLo: u64 = 0;
  srcPort: u32 = 0;
  dstHi: u64 = 0;
  dstLo: u64 = 0;
  dstPort: u32 = 0;
  /** The destination is a declared forward proxy: its CONNECT target is what gets evaluated. */
  viaProxy: bool = false;
  startMs: i64 = 0;
  holdStartMs: i64 = 0;
  /** Milliseconds the connection was held (Lookup/startup) or its bytes held (detection). */
  heldMs: i64 = 0;
  lookedUp: bool = false;
  /** Lookup already asked control for the claimed name (once per connection). */
  claimLookedUp: bool = false;
  /** The claim evaluated (CLAIM_*; pointer into the inspector's buffer, valid while it is held). */
  claimKind: i32 = CLAIM_NONE;
  claimPtr: usize = 0;
  claimLen: i32 = 0;
  /** Lookup calls retried after transport failures. */
  lookupRetries: i32 = 0;
  /** xds.cluster_name named a ServiceEntry host and the verdict was checked against it. */
  clusterChecked: bool = false;
  /** Milliseconds the connection was held for Lookup (-1: no Lookup). */
  lookupHeldMs: i64 = -1;
  /** on_downstream_data returned StopIteration: bytes wait in Envoy's buffer. */
  dataHeld: bool = false;
  /** Client bytes already given to the detector (Envoy re-offers the accumulated buffer). */
  clientFed: u32 = 0;
  serverFed: u32 = 0;
  inspector: Inspector | null = null;
  /** Request boundaries of an HTTP/1 connection whose verdict rested on a claim (every head is judged). */
  framer: RequestFramer | null = null;
  /** Later requests of an h2c connection whose verdict rested on its first :authority (each is judged). */
  h2: H2RequestWalker | null = null;
  /** Where the client bytes not yet walked start in Envoy's buffer (the first request's frames precede them). */
  private h2Offset: u32 = 0;
  /**
   * A claim-judged connection of a protocol that can switch to TLS in-band (PostgreSQL SSLRequest,
   * STARTTLS …): client segments are watched for the inner ClientHello, whose SNI is judged.
   */
  innerTls: bool = false;
  /** Where the inner ClientHello starts in the held bytes (it may follow an SSLRequest). */
  private innerOffset: u32 = 0;
  private innerChecks: u32 = 0;
  private outerProtocol: i32 = 0;
  /** Inside on_downstream_data: the held bytes are Envoy's to read (outside, only the detector's copy). */
  private inDownstream: bool = false;

  // The decision (valid in PHASE_DECIDED).
  verdict: u8 = VERDICT_PENDING;
  reason: u8 = 0;
  policy: i32 = -1;
  rule: i32 = -1;
  matchedCandidate: i32 = -1;
  candCount: i32 = 0;
  /** What a passing verdict rested on, for re-judging after a policy change (null: not tracked). */
  facts: ConnectionFacts | null = null;
  /** The root's list of open, passing connections (linked while `facts` is set). */
  openPrev: EgressStream | null = null;
  openNext: EgressStream | null = null;
  /** For a revoked connection: the reason the new policy gives (reported in the detail). */
  revokedBy: u8 = 0;
  /** When the agent was last told about this connection (verdict or OpenedConnection; 0: never). */
  coveredAtMs: i64 = 0;
  /** The root's policyGeneration this connection was last judged under. */
  judgedGeneration: u32 = 0;
  /** An h2c server's preface is held in Envoy's upstream buffer (counted once). */
  private h2PrefaceHeld: bool = false;
  /** The ECH opt-in judged the names the pod's HTTPS/SVCB answers narrowed the outer SNI to. */
  echNarrowed: bool = false;
  /** The verdict being adopted came from the ECH opt-in (every name taken as the SNI). */
  private echAdopted: bool = false;

  get egress(): EgressRoot {
    return changetype<EgressRoot>(this.root);
  }

  // ---- host callbacks ------------------------------------------------------------------------

  onNewConnection(): Action {
    const action = this.newConnection();
    // Denied in on_new_connection: close before tcp_proxy ever connects (no SYN leaves).
    if (this.phase == PHASE_DECIDED && this.verdict == VERDICT_DENY) closeStream(StreamType.Downstream);
    return action;
  }

  /**
   * Called on each tick while the connection awaits its first bytes (root.expireHeld). tcp_proxy
   * connected when inspection began (holdStartMs); a client that stays silent delays the verdict
   * report that would tell the node agent that SYN was the sidecar's. After OPENED_DELAY_MS
   * without one (and without a Lookup, which tells it too), report the connection opened, stamped
   * with when it went upstream. Most clients speak at once: their verdict covers the SYN alone.
   */
  coverSilentUpstream(now: i64): void {
    if (this.phase == PHASE_INSPECT && !this.lookedUp && this.coveredAtMs == 0 && now - this.holdStartMs >= OPENED_DELAY_MS) {
      reportOpened(this.egress, this, this.holdStartMs);
    }
  }

  /**
   * New client bytes on a decided connection may make Envoy open an upstream connection (an HTTP
   * chain's pool reconnecting for a later request): keep the agent's cover fresh, at most once a
   * second per connection. One compare against the tick clock per chunk; no host call, no allocation.
   */
  @inline private refreshCover(): void {
    const root = this.egress;
    if (root.tickNowMs - this.coveredAtMs >= OPENED_REFRESH_MS) reportOpened(root, this, nowMsCached());
  }

  private newConnection(): Action {
    const root = this.egress;
    const cfg = root.config;
    if (cfg === null) return this.decideFailure(REASON_INTERNAL_ERROR);
    const now = nowMsCached();
    this.startMs = now;
    if (!this.readAddresses()) {
      root.metrics!.internalErrors.increment(1);
      return this.decideFailure(REASON_INTERNAL_ERROR);
    }
    this.viaProxy = cfg.isForwardProxy(this.dstHi, this.dstLo, this.dstPort);
    if (root.snapshot === null) {
      // No policy yet (sidecar just started): hold briefly rather than guess.
      if (cfg.startupWaitMs > 0) {
        this.slot = root.hold(this, PENDING_STARTUP, 0, now + <i64>cfg.startupWaitMs);
        if (this.slot >= 0) {
          this.phase = PHASE_WAIT_STARTUP;
          this.holdStartMs = now;
          root.metrics!.holdsStartup.increment(1);
          return Action.StopIteration;
        }
      }
      return this.decideFailure(REASON_CONTROL_UNAVAILABLE);
    }
    return this.step(now);
  }

  onDownstreamData(size: u32, endOfStream: bool): Action {
    this.inDownstream = true;
    const action = this.downstreamData(size, endOfStream);
    this.inDownstream = false;
    return action;
  }

  private downstreamData(size: u32, endOfStream: bool): Action {
    if (this.phase == PHASE_DECIDED) {
      if (this.verdict == VERDICT_DENY) return Action.StopIteration;
      this.refreshCover();
      if (this.framer !== null) return this.walkRequests(size);
      if (this.h2 !== null) return this.walkH2(size);
      return this.innerTls ? this.watchInnerTls(size) : Action.Continue;
    }
    if (this.phase != PHASE_INSPECT) return Action.StopIteration; // cannot happen: reads are disabled while held
    const insp = this.inspector!;
    const cfg = this.egress.config!;
    const limit = cfg.maxInspectBytes;
    if (size > this.clientFed && this.clientFed < limit) {
      const want = (size < limit ? size : limit) - this.clientFed;
      const n = readBuffer(BufferType.DownstreamData, this.clientFed, insp.scratchPtr(), want);
      if (n > 0) {
        this.clientFed += <u32>n;
        insp.feedClient(insp.scratchPtr(), <u32>n);
      }
    }
    if (insp.state == INSPECT_NEED_MORE && (endOfStream || this.clientFed >= limit)) insp.giveUp();
    if (insp.state == INSPECT_NEED_MORE) {
      this.dataHeld = true;
      return Action.StopIteration;
    }
    const now = nowMsCached();
    this.heldMs = now - this.holdStartMs;
    this.finishInspection(now);
    if (this.phase == PHASE_WAIT_CLAIM) {
      this.dataHeld = true; // Lookup for the claimed name: the bytes wait for its answer
      return Action.StopIteration;
    }
    // Decided inside this callback: the held bytes go on (or the connection closes) by our return value.
    this.dataHeld = false;
    if (this.verdict == VERDICT_DENY) {
      closeStream(StreamType.Downstream);
      return Action.StopIteration;
    }
    if (this.framer !== null) return this.walkRequests(size);
    if (this.h2 !== null) return this.walkH2(size);
    return this.innerTls ? this.watchInnerTls(size) : Action.Continue;
  }

  onUpstreamData(size: u32, endOfStream: bool): Action {
    if (this.phase == PHASE_DECIDED) {
      if (this.verdict != VERDICT_DENY) return this.framer !== null ? this.serverAnswer(size) : Action.Continue;
      closeStream(StreamType.Downstream);
      return Action.StopIteration;
    }
    if (this.phase == PHASE_WAIT_CLAIM) return this.closeUndecided();
    if (this.phase != PHASE_INSPECT) return Action.Continue;
    const insp = this.inspector!;
    if (this.serverFed == 0 && this.holdsH2ServerPreface(size, insp)) return Action.StopIteration;
    // Server-first protocols: judged on the first server bytes. They cannot be held (§3.5): the
    // only way to stop them is to close the connection now.
    const limit = this.egress.config!.maxInspectBytes;
    if (size > this.serverFed && this.serverFed < limit) {
      const want = (size < limit ? size : limit) - this.serverFed;
      const n = readBuffer(BufferType.UpstreamData, this.serverFed, insp.scratchPtr(), want);
      if (n > 0) {
        this.serverFed += <u32>n;
        insp.feedServer(insp.scratchPtr(), <u32>n);
      }
    }
    if (insp.state == INSPECT_NEED_MORE && (endOfStream || this.serverFed >= limit)) insp.giveUp();
    // Server bytes cannot be held and must not reach the app before a verdict: a greeting too
    // short to judge closes the connection.
    if (insp.state == INSPECT_NEED_MORE) return this.closeUndecided();
    const now = nowMsCached();
    this.heldMs = now - this.holdStartMs;
    this.finishInspection(now);
    if (this.phase == PHASE_WAIT_CLAIM) return Action.Continue; // client bytes stay held until Lookup answers
    if (this.verdict == VERDICT_DENY) {
      this.egress.metrics!.upstreamCloses.increment(1);
      closeStream(StreamType.Downstream);
      return Action.StopIteration;
    }
    if (this.dataHeld) {
      this.dataHeld = false;
      continueStream(StreamType.Downstream);
    }
    return Action.Continue;
  }

  /**
   * An h2c server may send its connection preface (SETTINGS) before the client's first request.
   * Those bytes carry no response, so they are held, not judged: StopIteration leaves them in
   * Envoy's upstream buffer, offered again (accumulated) with the server's next bytes, which come
   * only after the client's request was let through (§3.5). Bounded: H2_SERVER_PREFACE_HOLD bytes.
   */
  private holdsH2ServerPreface(size: u32, insp: Inspector): bool {
    if (size > <u32>H2_SERVER_PREFACE_HOLD || size > inspectScratchSize() || !insp.detector.clientMayBeH2c()) return false;
    const n = readBuffer(BufferType.UpstreamData, 0, insp.scratchPtr(), size);
    if (n <= 0 || !h2ServerPrefaceOnly(insp.scratchPtr(), n)) return false;
    if (!this.h2PrefaceHeld) this.egress.metrics!.h2ServerPrefaceHeld.increment(1);
    this.h2PrefaceHeld = true;
    return true;
  }

  /** Server bytes arrived while the verdict is open: they can be neither held nor passed. */
  private closeUndecided(): Action {
    const now = nowMsCached();
    if (this.slot >= 0) this.egress.abandonSlot(this.slot);
    this.heldMs = now - this.holdStartMs;
    this.egress.metrics!.upstreamCloses.increment(1);
    this.decideNow(VERDICT_DENY, REASON_DETECTION_TIMEOUT, now);
    closeStream(StreamType.Downstream);
    return Action.StopIteration;
  }

  onDownstreamClose(peer: PeerType): void {
    this.release();
  }

  onDone(): bool {
    this.release();
    return true;
  }

  onDelete(): void {
    this.release();
  }

  // ---- events routed from the root context (effective context already set) --------------------

  onSnapshotReady(now: i64): void {
    this.heldMs = now - this.holdStartMs;
    this.resumeHeld(this.step(now));
  }

  onStartupTimeout(now: i64): void {
    this.heldMs = now - this.holdStartMs;
    this.decideFailure(REASON_CONTROL_UNAVAILABLE);
    this.resumeHeld(Action.Continue);
  }

  onLookupDone(now: i64, found: bool): void {
    if (this.phase == PHASE_WAIT_CLAIM) {
      this.finishClaimLookup(now);
      return;
    }
    this.heldMs = now - this.holdStartMs;
    this.recordLookupLatency();
    this.resumeHeld(this.step(now));
  }

  onLookupTimeout(now: i64): void {
    if (this.phase == PHASE_WAIT_CLAIM) {
      this.egress.metrics!.lookupTimeout.increment(1);
      this.finishClaimLookup(now);
      return;
    }
    this.heldMs = now - this.holdStartMs;
    this.recordLookupLatency();
    this.egress.metrics!.lookupTimeout.increment(1);
    this.resumeHeld(this.stepWithoutControl(now, REASON_LOOKUP_TIMEOUT));
  }

  onControlUnavailable(now: i64): void {
    if (this.phase == PHASE_WAIT_CLAIM) {
      this.finishClaimLookup(now);
      return;
    }
    this.heldMs = now - this.holdStartMs;
    this.recordLookupLatency();
    this.resumeHeld(this.stepWithoutControl(now, REASON_CONTROL_UNAVAILABLE));
  }

  onDetectTimeout(now: i64): void {
    const insp = this.inspector;
    if (insp === null || this.phase != PHASE_INSPECT) return;
    this.egress.metrics!.detectTimeouts.increment(1);
    insp.giveUp();
    this.heldMs = now - this.holdStartMs;
    this.finishInspection(now);
    this.releaseInspected();
  }

  /** After an out-of-band decision on an inspected connection: close, or let held bytes go. */
  private releaseInspected(): void {
    if (this.phase != PHASE_DECIDED) return; // still waiting (claim Lookup)
    if (this.verdict == VERDICT_DENY) closeStream(StreamType.Downstream);
    else if (this.dataHeld) {
      this.dataHeld = false;
      continueStream(StreamType.Downstream);
    }
  }

  // ---- decision --------------------------------------------------------------------------------

  /**
   * Evaluates what is known now. From on_new_connection the returned action is
   * the callback's result; from a held state the caller turns it into continue/close.
   */
  private step(now: i64): Action {
    const root = this.egress;
    const cfg = root.config!;
    if (this.viaProxy) return this.startInspection(now);
    const n = this.evaluateNow(now, PROTOCOL_PENDING, CLAIM_NONE, 0, 0);
    if ((RESULT.flags & FLAG_DEPENDS_ON_NAMES) != 0 && n == 0 && !this.lookedUp) {
      // The race: the pod may have just received the DNS answer that control has not pushed yet.
      this.lookedUp = true;
      const token = root.startLookup(this.srcHi, this.srcLo, this.dstHi, this.dstLo);
      if (token != 0) {
        this.slot = root.hold(this, PENDING_LOOKUP, token, now + <i64>cfg.lookupTimeoutMs);
        if (this.slot >= 0) {
          this.phase = PHASE_WAIT_LOOKUP;
          this.holdStartMs = now;
          root.metrics!.holdsLookup.increment(1);
          return Action.StopIteration;
        }
        root.metrics!.internalErrors.increment(1);
        return this.decideFailure(REASON_INTERNAL_ERROR);
      }
      root.metrics!.lookupFailed.increment(1);
      return this.stepWithoutControl(now, REASON_CONTROL_UNAVAILABLE);
    }
    return this.inspectOrDecide(now);
  }

  /** After Lookup timed out or control is unreachable: decide from what the table says. */
  private stepWithoutControl(now: i64, reason: u8): Action {
    const cfg = this.egress.config!;
    const n = this.evaluateNow(now, PROTOCOL_PENDING, CLAIM_NONE, 0, 0);
    if (n == 0 && (RESULT.flags & FLAG_DEPENDS_ON_NAMES) != 0) {
      // Names would matter and we could not learn them: the failure mode decides. Closed never
      // adopts what the table alone says (a deny-list would allow what a name it missed denies).
      return this.decideNow(cfg.failureMode == FailureMode.Open ? VERDICT_ALLOW : VERDICT_DENY, reason, now);
    }
    return this.inspectOrDecide(now);
  }

  /**
   * The engine needs the protocol or a claim: hold the connection for its first bytes, unless no
   * protocol and no claim could make it pass — then decide now, before tcp_proxy connects.
   */
  private inspectOrDecide(now: i64): Action {
    if (RESULT.verdict != VERDICT_PENDING && (RESULT.flags & FLAG_DEPENDS_ON_CLAIM) == 0) return this.adopt(now);
    if (this.anyOutcomeCanPass()) return this.startInspection(now);
    this.evaluateNow(now, PROTO_UNKNOWN, CLAIM_NONE, 0, 0);
    if (RESULT.verdict == VERDICT_PENDING) return this.decideNow(VERDICT_DENY, REASON_DETECTION_TIMEOUT, now);
    return this.adopt(now);
  }

  /**
   * Could some protocol make the connection pass (allow, alert, or would-deny)? With names for the
   * IP, a claim (or a name control learns meanwhile, asked by the claim Lookup) may change the
   * verdict, so only connections whose verdict no name can change are decided here: an IP with no
   * names (Lookup already waited for them), or rules that look at no names.
   */
  private anyOutcomeCanPass(): bool {
    const snap = this.egress.snapshot!;
    const cands = changetype<usize>(this.egress.table!.candBuf);
    const n = this.candCount;
    for (let k = 0; k < PROTOCOL_COUNT; k++) {
      // TLS and HTTP first: most connections that can pass do so with one of them.
      const protocol = k == 0 ? PROTO_TLS : (k == 1 ? PROTO_HTTP : (k <= PROTO_HTTP ? k - 2 : k));
      evaluate(snap, QUERY.destination(this.dstHi, this.dstLo, this.dstPort).names(cands, n).detected(protocol).noClaim(), RESULT);
      if (passes(RESULT.verdict)) return true;
      if (n > 0 && (RESULT.flags & (FLAG_DEPENDS_ON_NAMES | FLAG_DEPENDS_ON_CLAIM)) != 0) return true;
    }
    return false;
  }

  /** Runs the engine; leaves the result in RESULT and returns the candidate count used. */
  private evaluateNow(now: i64, protocol: i32, claimKind: i32, claimPtr: usize, claimLen: i32): i32 {
    const root = this.egress;
    const snap = root.snapshot!;
    const t = root.table!;
    const n = t.lookup(this.dstHi, this.dstLo, now, root.graceMs());
    evaluateNoted(snap, QUERY.destination(this.dstHi, this.dstLo, this.dstPort).names(changetype<usize>(t.candBuf), n).detected(protocol).claim(claimKind, claimPtr, claimLen), RESULT);
    this.candCount = n;
    return n;
  }

  private startInspection(now: i64): Action {
    const root = this.egress;
    const cfg = root.config!;
    this.inspector = root.takeInspector();
    this.phase = PHASE_INSPECT;
    this.holdStartMs = now;
    this.slot = root.hold(this, PENDING_DETECT, 0, now + <i64>cfg.detectTimeoutMs);
    root.metrics!.holdsDetect.increment(1);
    if (this.slot < 0) {
      root.metrics!.internalErrors.increment(1);
      return this.decideFailure(REASON_INTERNAL_ERROR);
    }
    return Action.Continue; // let tcp_proxy connect; client bytes are held in on_downstream_data
  }

  /** The detector answered (or gave up): evaluate with protocol and claim, and decide. */
  private finishInspection(now: i64): void {
    const root = this.egress;
    const insp = this.inspector!;
    if (this.slot >= 0) root.releaseSlot(this.slot);
    root.metrics!.detectLatencyMs.record(now - this.holdStartMs);
    this.judgeInspected(now);
  }

  /** Evaluates with the detector's protocol and claim; decides, or asks control about the claim once. */
  private judgeInspected(now: i64): void {
    const insp = this.inspector!;
    const protocol = insp.protocol;
    if (this.viaProxy) {
      this.evaluateProxied(now, protocol, insp);
    } else {
      let kind = insp.claimKind;
      let ptr: usize = insp.claimPtr;
      let len: i32 = <i32>insp.claimLen;
      if (insp.claimUnverifiable) {
        // A claim that should be there but cannot be read or is ambiguous: a server may route on
        // a name no resolution supports (fronting on a shared IP), so nothing can support it.
        kind = insp.protocol == PROTO_TLS ? CLAIM_SNI : CLAIM_HOST;
        ptr = UNVERIFIABLE_CLAIM;
        len = 1;
      }
      // Mesh-configuration names: Envoy routed the VIP to one ServiceEntry host's cluster. That
      // host is the destination; the candidate evaluated must be it, and a client claim naming
      // another host is refused.
      if (this.routedByMeshConfig(now)) {
        const hostPtr = CLUSTER.ptr + <usize>clusterHostOffset;
        const hostLen = <i32>clusterHostLength;
        const supported = this.egress.table!.candidateIndexOf(hostPtr, <u32>hostLen) >= 0;
        if (!supported || (kind != CLAIM_NONE && !sameName(ptr, len, hostPtr, hostLen))) {
          this.decideNow(this.egress.snapshot!.allMonitor ? VERDICT_WOULD_DENY : VERDICT_DENY, REASON_CLUSTER_UNVERIFIED, now);
          return;
        }
        if (kind == CLAIM_NONE) {
          kind = CLAIM_SNI; // the routed host narrows the candidates like a verified claim
          ptr = hostPtr;
          len = hostLen;
        }
      }
      this.claimKind = kind;
      this.claimPtr = ptr;
      this.claimLen = len;
      if (insp.echOnly && this.echAllowedForEveryName(now, protocol)) {
        this.echAdopted = true;
        this.adopt(now);
        return;
      }
      this.evaluateNow(now, protocol, kind, ptr, len);
      // The race with an already-known address: the app resolved the claimed name an instant ago
      // to an IP the table knows under other names. Ask control once before denying for it.
      if (!this.claimLookedUp && !insp.claimUnverifiable && this.claimUnverifiedDeny()) {
        if (this.claimWouldBeAllowed(now, protocol) && this.startClaimLookup(now)) return;
        this.evaluateNow(now, protocol, kind, ptr, len); // RESULT back to the verdict to adopt
      }
    }
    if (RESULT.verdict == VERDICT_PENDING) {
      // The engine still wants a protocol: only possible if the detector gave none.
      this.decideNow(VERDICT_DENY, REASON_DETECTION_TIMEOUT, now);
      return;
    }
    if (insp.gaveUp && RESULT.verdict == VERDICT_DENY && RESULT.reason == REASON_PROTOCOL_MISMATCH) {
      this.decideNow(VERDICT_DENY, REASON_DETECTION_TIMEOUT, now);
      return;
    }
    this.adopt(now);
  }

  /**
   * Traffic to a declared forward proxy: the proxy resolves and connects to the CONNECT target
   * (or the absolute URI's host), so that name — not the proxy's own IP — is the destination.
   * An IP-literal target is evaluated as that IP with no names; a name target as the unspecified
   * address :: with that one name as its candidate.
   */
  private evaluateProxied(now: i64, protocol: i32, insp: Inspector): void {
    const root = this.egress;
    if (insp.targetLen == 0) {
      if (insp.detector.claimCut || insp.detector.proxyForm() != PROXY_NONE) {
        // A request line cut by the deadline or limit, or a CONNECT / absolute target that does not
        // parse: a destination that matches no name.
        store<u32>(PROXY_CANDIDATE, <u32>UNVERIFIABLE_CLAIM);
        store<u32>(PROXY_CANDIDATE + 4, 1);
        store<i32>(PROXY_CANDIDATE + 8, 0);
        store<u32>(PROXY_CANDIDATE + 12, 0);
        evaluateNoted(root.snapshot!, QUERY.destination(0, 0, this.dstPort).names(PROXY_CANDIDATE, 1).detected(protocol).noClaim(), RESULT);
        this.candCount = 1;
        return;
      }
      // Not a proxy request (no CONNECT / absolute URI): judge the proxy itself.
      this.evaluateNow(now, protocol, CLAIM_NONE, 0, 0);
      return;
    }
    let hi: u64 = 0;
    let lo: u64 = 0;
    let n = 0;
    if (insp.targetIsIp) {
      hi = insp.targetHi;
      lo = insp.targetLo;
    } else {
      store<u32>(PROXY_CANDIDATE, <u32>insp.targetPtr);
      store<u32>(PROXY_CANDIDATE + 4, insp.targetLen);
      store<i32>(PROXY_CANDIDATE + 8, 0);
      store<u32>(PROXY_CANDIDATE + 12, 0);
      n = 1;
    }
    evaluateNoted(root.snapshot!, QUERY.destination(hi, lo, insp.targetPort).names(PROXY_CANDIDATE, n).detected(protocol).noClaim(), RESULT);
    this.candCount = n;
  }

  /**
   * ECH opt-in (`encryptedClientHello: Allow` on a rule): see facts.ts echPassesForEveryName, over
   * the IP's names narrowed by the pod's HTTPS/SVCB answers when they name the outer SNI.
   * Leaves RESULT at the first name's result.
   */
  private echAllowedForEveryName(now: i64, protocol: i32): bool {
    let n = this.evaluateNow(now, protocol, CLAIM_NONE, 0, 0);
    const t = this.egress.table!;
    const insp = this.inspector!;
    // Narrowing: when the outer SNI is a public name this pod's own HTTPS/SVCB answers named for
    // some of the IP's names, the hidden name is taken to be one of those names only.
    const narrowed = insp.sniLen > 0 ? t.narrowToEchPublicName(insp.sniPtr, insp.sniLen) : 0;
    if (narrowed > 0) {
      n = narrowed;
      evaluateNoted(this.egress.snapshot!, QUERY.destination(this.dstHi, this.dstLo, this.dstPort).names(changetype<usize>(t.candBuf), n).detected(protocol).noClaim(), RESULT);
    }
    if (!echPassesForEveryName(this.egress.snapshot!, QUERY.destination(this.dstHi, this.dstLo, this.dstPort).names(changetype<usize>(t.candBuf), n).detected(protocol), RESULT)) return false;
    if (narrowed > 0) {
      // The connection stands on the narrowed names: its facts (LAST), report and count say so.
      this.echNarrowed = true;
      this.candCount = n;
      this.egress.metrics!.echNarrowed.increment(1);
    }
    return true;
  }

  /**
   * Whether the destination has mesh-configuration candidates and Envoy routed it to an outbound
   * cluster of one host (then CLUSTER holds the name and cluster.ts locates the host). Reads
   * `xds.cluster_name` once per connection, only for ServiceEntry addresses.
   */
  private routedByMeshConfig(now: i64): bool {
    const root = this.egress;
    if (root.snapshot === null || !root.snapshot!.selected) return false;
    const t = root.table!;
    const n = t.lookup(this.dstHi, this.dstLo, now, root.graceMs());
    let mesh = false;
    for (let i = 0; i < n; i++) if (t.candMeshOnly(i)) { mesh = true; break; }
    if (!mesh) return false;
    if (getProperty(CLUSTER_PATH, CLUSTER) != Status.Ok || !outboundHost(CLUSTER.ptr, CLUSTER.len)) return false;
    this.clusterChecked = true;
    root.metrics!.clusterChecks.increment(1);
    return true;
  }

  private claimUnverifiedDeny(): bool {
    return (RESULT.verdict == VERDICT_DENY || RESULT.verdict == VERDICT_WOULD_DENY) &&
      (RESULT.reason == REASON_SNI_UNVERIFIED || RESULT.reason == REASON_HOST_UNVERIFIED);
  }

  /**
   * Would the claimed name, were it among the IP's names, be allowed (or alerted)? Only then can
   * asking control change the verdict; a claim of a denied or unlisted name is denied at once.
   */
  private claimWouldBeAllowed(now: i64, protocol: i32): bool {
    store<u32>(PROXY_CANDIDATE, <u32>this.claimPtr);
    store<u32>(PROXY_CANDIDATE + 4, <u32>this.claimLen);
    store<i32>(PROXY_CANDIDATE + 8, 0);
    store<u32>(PROXY_CANDIDATE + 12, 0);
    evaluate(this.egress.snapshot!, QUERY.destination(this.dstHi, this.dstLo, this.dstPort).names(PROXY_CANDIDATE, 1).detected(protocol).claim(this.claimKind, this.claimPtr, this.claimLen), RESULT);
    return RESULT.verdict != VERDICT_DENY && RESULT.verdict != VERDICT_WOULD_DENY && RESULT.verdict != VERDICT_PENDING;
  }

  /** Holds the (already held) client bytes while Lookup asks for the claimed name; false if no call could start. */
  private startClaimLookup(now: i64): bool {
    const root = this.egress;
    const cfg = root.config!;
    this.claimLookedUp = true;
    const token = root.startLookup(this.srcHi, this.srcLo, this.dstHi, this.dstLo, this.claimPtr, this.claimLen);
    if (token == 0) {
      root.metrics!.lookupFailed.increment(1);
      return false;
    }
    this.slot = root.hold(this, PENDING_LOOKUP, token, now + <i64>cfg.lookupTimeoutMs);
    if (this.slot < 0) {
      root.grpcCancelCall(token);
      root.metrics!.internalErrors.increment(1);
      return false;
    }
    this.phase = PHASE_WAIT_CLAIM;
    this.holdStartMs = now;
    root.metrics!.holdsLookup.increment(1);
    return true;
  }

  /** The claim Lookup ended (answer, timeout or failure): judge again with what the table knows now. */
  private finishClaimLookup(now: i64): void {
    this.heldMs += now - this.holdStartMs;
    this.lookupHeldMs = now - this.holdStartMs;
    this.egress.metrics!.lookupLatencyMs.record(this.lookupHeldMs);
    this.phase = PHASE_INSPECT;
    this.judgeInspected(now);
    this.releaseInspected();
  }

  /** For a connection waiting on a claim Lookup: does the table now support the claim? */
  claimNowKnown(now: i64): bool {
    if (this.phase != PHASE_WAIT_CLAIM || this.inspector === null) return false;
    this.evaluateNow(now, this.inspector!.protocol, this.claimKind, this.claimPtr, this.claimLen);
    return !this.claimUnverifiedDeny();
  }

  /** Takes the engine's verdict as final. */
  private adopt(now: i64): Action {
    this.verdict = RESULT.verdict;
    this.reason = RESULT.reason;
    this.policy = RESULT.policy;
    this.rule = RESULT.rule;
    this.matchedCandidate = RESULT.matchedCandidate;
    // A connection that stays open keeps what it was judged on: a policy change judges it again.
    if (passes(this.verdict)) this.rememberFacts();
    return this.decided(now);
  }

  /** Copies the deciding evaluation's inputs (LAST) and lists the connection with the root. */
  private rememberFacts(): void {
    let f = this.facts;
    if (f === null) {
      f = this.egress.takeFacts();
      this.facts = f;
      this.egress.linkOpen(this);
    }
    f.record(LAST, this.echAdopted);
    this.judgedGeneration = this.egress.policyGeneration; // decided under the policy in force
  }

  /**
   * The pod's policy changed (called from the root context, effective context set): judge this
   * open connection again on its recorded facts. Now denied: closed and reported `revoked`; now a
   * Monitor policy's would-deny: only reported `revoked`; still passing: nothing happens.
   * Returns whether it closed the connection.
   */
  rejudge(now: i64): bool {
    const facts = this.facts;
    if (facts === null || this.phase != PHASE_DECIDED || this.verdict == VERDICT_DENY) return false;
    const root = this.egress;
    root.metrics!.rejudged.increment(1);
    if (!facts.judge(root.snapshot!, RESULT)) return false;
    const reported = RESULT.verdict == VERDICT_DENY || (RESULT.verdict == VERDICT_WOULD_DENY && this.verdict != VERDICT_WOULD_DENY);
    this.verdict = RESULT.verdict;
    this.policy = RESULT.policy; // indexes into the new snapshot from now on
    this.rule = RESULT.rule;
    this.matchedCandidate = RESULT.matchedCandidate;
    if (!reported) {
      this.reason = RESULT.reason;
      return false;
    }
    this.reason = REASON_REVOKED;
    this.revokedBy = RESULT.reason;
    root.metrics!.decided(this.verdict, this.reason);
    reportDecision(root, this, now);
    if (this.verdict != VERDICT_DENY) return false;
    this.dataHeld = false;
    closeStream(StreamType.Downstream);
    return true;
  }

  /** A verdict the filter assigns itself (failure mode, timeouts). */
  private decideNow(verdict: u8, reason: u8, now: i64): Action {
    this.verdict = verdict;
    this.reason = reason;
    this.policy = RESULT.policy;
    this.rule = RESULT.rule;
    this.matchedCandidate = -1;
    return this.decided(now);
  }

  private decideFailure(reason: u8): Action {
    const cfg = this.egress.config;
    const open = cfg !== null && cfg.failureMode == FailureMode.Open;
    this.policy = -1;
    this.rule = -1;
    this.verdict = open ? VERDICT_ALLOW : VERDICT_DENY;
    this.reason = reason;
    this.matchedCandidate = -1;
    return this.decided(nowMsCached());
  }

  private decided(now: i64): Action {
    this.phase = PHASE_DECIDED;
    const root = this.egress;
    root.metrics!.decided(this.verdict, this.reason);
    reportDecision(root, this, now);
    const insp = this.inspector;
    if (insp !== null && !this.innerTls && this.mayUpgradeInBand(insp, now)) this.startInnerTlsWatch(insp);
    if (insp !== null && this.framer === null && this.needsFraming(insp, now)) {
      this.startFraming(insp);
      // Decided on a timer or a Lookup answer: the held bytes are released without passing
      // through on_downstream_data again, so the pipelined ones are judged now, from the copy.
      if (!this.inDownstream) this.walkDetectorCopy(insp);
    }
    if (insp !== null && this.h2 === null && this.needsH2Walk(insp, now)) {
      this.startH2Walk(insp);
      if (!this.inDownstream) this.walkH2DetectorCopy(insp);
    }
    this.returnInspector();
    if (this.verdict == VERDICT_DENY) {
      return Action.StopIteration;
    }
    return Action.Continue;
  }

  /** Continues or closes a connection held in on_new_connection, after an out-of-band decision. */
  private resumeHeld(action: Action): void {
    if (this.phase == PHASE_DECIDED) {
      if (this.verdict == VERDICT_DENY) closeStream(StreamType.Downstream);
      else continueStream(StreamType.Downstream);
      return;
    }
    if (this.phase == PHASE_INSPECT) {
      // Inspection starts once tcp_proxy connects: let it.
      continueStream(StreamType.Downstream);
      return;
    }
    // Still held (another Lookup round started): nothing to do until the next answer.
  }

  private recordLookupLatency(): void {
    this.lookupHeldMs = this.heldMs;
    this.egress.metrics!.lookupLatencyMs.record(this.heldMs);
  }

  private readAddresses(): bool {
    if (getProperty(DESTINATION_PATH, ADDRESS) != Status.Ok || !parseHostPort(ADDRESS.ptr, ADDRESS.len)) {
      ADDRESS.release();
      log(LogLevel.Warn, "egret: connection without a parseable destination.address");
      return false;
    }
    this.dstHi = parsedHi;
    this.dstLo = parsedLo;
    this.dstPort = parsedPort;
    if (getProperty(SOURCE_PATH, ADDRESS) == Status.Ok && parseHostPort(ADDRESS.ptr, ADDRESS.len)) {
      this.srcHi = parsedHi;
      this.srcLo = parsedLo;
      this.srcPort = parsedPort;
    }
    ADDRESS.release();
    return true;
  }

  private returnInspector(): void {
    const insp = this.inspector;
    if (insp !== null) {
      this.egress.giveBackInspector(insp);
      this.inspector = null;
    }
  }

  private release(): void {
    if (this.slot >= 0) this.egress.abandonSlot(this.slot);
    if (this.facts !== null) this.egress.unlinkOpen(this);
    this.returnInspector();
    const f = this.framer;
    if (f !== null) {
      this.framer = null;
      this.egress.giveBackFramer(f);
    }
    const w = this.h2;
    if (w !== null) {
      this.h2 = null;
      this.egress.giveBackH2Walker(w);
    }
  }

  // ---- later requests on a claim-judged HTTP/1 connection --------------------------------------

  /**
   * Whether every later request head must be judged: HTTP/1 through a declared proxy, or straight
   * to an IP whose verdict a different claim could change.
   */
  private needsFraming(insp: Inspector, now: i64): bool {
    if (insp.protocol != PROTO_HTTP || insp.detector.httpHeadLength() < 0 || !passes(this.verdict)) return false;
    if (this.viaProxy) return true;
    if (this.candCount == 0) return false;
    this.evaluateNow(now, PROTO_HTTP, CLAIM_HOST, UNVERIFIABLE_CLAIM, 1);
    return !passes(RESULT.verdict); // a claim no name supports would not pass: claims matter here
  }

  /** Starts framing after the first head (its body, if any, follows). */
  private startFraming(insp: Inspector): void {
    const f = this.egress.takeFramer();
    const c = insp.detector.claims;
    f.pos = <u32>insp.detector.httpHeadLength();
    f.afterHead(c.contentLength, (c.httpFlags & HTTP_CHUNKED) != 0, c.proxyForm == PROXY_CONNECT, (c.httpFlags & HTTP_UPGRADE) != 0,
      (c.httpFlags & HTTP_UPGRADE_H2C) != 0);
    this.framer = f;
  }

  /**
   * Walks the client bytes Envoy holds for this connection (from the framer's position): bodies
   * are skipped, each complete head is judged; a head still arriving keeps everything held.
   */
  private walkRequests(size: u32): Action {
    const f = this.framer!;
    const scratch = inspectScratchPtr();
    while (f.pos < size) {
      const skip = f.skippable();
      if (skip > 0) {
        const left = <i64>(size - f.pos);
        f.skip(<u32>(skip < left ? skip : left));
        continue;
      }
      const want = min(size - f.pos, inspectScratchSize());
      const n = readBuffer(BufferType.DownstreamData, f.pos, scratch, want);
      if (n <= 0) break;
      const ev = f.advance(scratch, <u32>n);
      if (ev == FRAME_AWAIT) break;
      if (ev == FRAME_BAD) return this.requestFailed();
      if (ev == FRAME_HEAD) {
        const len = f.pos - f.headStart;
        if (readBuffer(BufferType.DownstreamData, f.headStart, scratch, len) != <i32>len || !this.judgeLaterHead(scratch, len)) {
          return this.requestFailed();
        }
      }
    }
    if (f.headPending() || (f.awaiting() && f.heldWhileAwaiting)) {
      this.dataHeld = true;
      return Action.StopIteration;
    }
    this.dataHeld = false;
    f.drained();
    return Action.Continue;
  }

  /**
   * Out of band (deadline or claim Lookup) the held bytes cannot be read from Envoy, only from the
   * detector's copy: walk them there. Anything that cannot be judged in full closes the connection.
   */
  private walkDetectorCopy(insp: Inspector): void {
    const f = this.framer!;
    const d = insp.detector;
    const held = d.clientBytes();
    // More held than the copy holds: what lies beyond it cannot be judged.
    if (d.clientFed() > <i64>held || <u32>held >= this.egress.config!.maxInspectBytes) { this.requestFailed(); return; }
    const base = d.clientBufferPtr();
    while (f.pos < <u32>held) {
      const skip = f.skippable();
      if (skip > 0) {
        const left = <i64>(<u32>held - f.pos);
        f.skip(<u32>(skip < left ? skip : left));
        continue;
      }
      const ev = f.advance(base + <usize>f.pos, <u32>held - f.pos);
      if (ev == FRAME_BAD || ev == FRAME_AWAIT) { this.requestFailed(); return; }
      if (ev == FRAME_HEAD && !this.judgeLaterHead(base + <usize>f.headStart, f.pos - f.headStart)) { this.requestFailed(); return; }
    }
    if (f.headPending()) { this.requestFailed(); return; }
    f.drained();
  }

  // ---- later requests on a claim-judged h2c connection ----------------------------------------

  /** h2c straight to an IP whose verdict a different :authority could change: every request is judged. */
  private needsH2Walk(insp: Inspector, now: i64): bool {
    if (insp.protocol != PROTO_HTTP2 || insp.claimUnverifiable || !passes(this.verdict) || this.viaProxy) return false;
    if (!insp.detector.h2Parser().complete() || this.candCount == 0) return false;
    this.evaluateNow(now, PROTO_HTTP2, CLAIM_HOST, UNVERIFIABLE_CLAIM, 1);
    return !passes(RESULT.verdict); // an :authority no name supports would not pass: it matters here
  }

  private startH2Walk(insp: Inspector): void {
    const w = this.egress.takeH2Walker();
    const parser = insp.detector.h2Parser();
    w.startAfterFirst(parser.block, parser.firstStream());
    this.h2 = w;
    this.h2Offset = <u32>parser.framesEnd();
  }

  /**
   * 101 to an `Upgrade: h2c` request on a claim-judged connection: its HTTP/2 streams are judged as
   * prior-knowledge ones are. A compliant client sends nothing before the 101 (RFC 7540 §3.2), so
   * bytes held meanwhile (which cannot be re-read from here) close the connection.
   */
  private switchToH2(f: RequestFramer): Action {
    const held = f.heldWhileAwaiting;
    this.framer = null;
    this.egress.giveBackFramer(f);
    const w = this.egress.takeH2Walker();
    w.startAfterUpgrade();
    this.h2 = w;
    this.h2Offset = 0;
    if (held) {
      this.requestFailed();
      return Action.StopIteration;
    }
    return Action.Continue;
  }

  /** Walks the client bytes Envoy holds from h2Offset; each new request's block is judged before they pass. */
  private walkH2(size: u32): Action {
    const w = this.h2!;
    const scratch = inspectScratchPtr();
    let pos = this.h2Offset;
    while (pos < size) {
      const n = readBuffer(BufferType.DownstreamData, pos, scratch, min(size - pos, inspectScratchSize()));
      if (n <= 0) break;
      let off = 0;
      while (off < n) {
        const ev = w.advance(scratch + <usize>off, n - off);
        off += w.consumed;
        if (ev == H2_BAD || (ev == H2_REQUEST && !this.judgeH2Request())) return this.requestFailed();
      }
      pos += <u32>n;
    }
    this.h2Offset = 0; // what passes now is gone from Envoy's buffer
    return Action.Continue;
  }

  /** Out of band, the held bytes are judged from the detector's copy; what it lacks cannot be. */
  private walkH2DetectorCopy(insp: Inspector): void {
    const d = insp.detector;
    const held = d.clientBytes();
    if (d.clientFed() > <i64>held) { this.requestFailed(); return; }
    const w = this.h2!;
    let off = <i32>this.h2Offset;
    while (off < held) {
      const ev = w.advance(d.clientBufferPtr() + <usize>off, held - off);
      off += w.consumed;
      if (ev == H2_BAD || (ev == H2_REQUEST && !this.judgeH2Request())) { this.requestFailed(); return; }
    }
    this.h2Offset = 0;
  }

  /** Judges one later h2c request by its :authority with the connection's names; false when denied. */
  private judgeH2Request(): bool {
    const w = this.h2!;
    const now = nowMsCached();
    const a = w.authority;
    // A later request without an authority after one with it names no destination either.
    if ((w.requestFlags & H2_CLAIM_BROKEN) != 0 || (a.len == 0 && this.claimKind != CLAIM_NONE)) {
      this.evaluateNow(now, PROTO_HTTP2, CLAIM_HOST, UNVERIFIABLE_CLAIM, 1);
    } else if (a.len == 0) {
      this.evaluateNow(now, PROTO_HTTP2, CLAIM_NONE, 0, 0);
    } else {
      this.evaluateNow(now, PROTO_HTTP2, CLAIM_HOST, a.buffer + <usize>a.off, a.len);
    }
    if (passes(RESULT.verdict) && !(RESULT.verdict == VERDICT_WOULD_DENY && this.verdict != VERDICT_WOULD_DENY)) return true;
    this.verdict = RESULT.verdict;
    this.reason = RESULT.reason;
    this.policy = RESULT.policy;
    this.rule = RESULT.rule;
    this.matchedCandidate = RESULT.matchedCandidate;
    this.egress.metrics!.decided(this.verdict, this.reason);
    reportDecision(this.egress, this, now);
    return this.verdict != VERDICT_DENY;
  }

  // ---- TLS started inside another protocol ---------------------------------------------------

  /** A passed, claim-judged connection whose protocol can turn into TLS in-band. */
  private mayUpgradeInBand(insp: Inspector, now: i64): bool {
    const p = insp.protocol;
    if (p != PROTO_POSTGRESQL && p != PROTO_MYSQL && p != PROTO_SMTP && p != PROTO_IMAP && p != PROTO_POP3 &&
      p != PROTO_FTP && p != PROTO_LDAP) return false;
    if (this.viaProxy || this.candCount == 0 || !passes(this.verdict)) return false;
    this.evaluateNow(now, p, CLAIM_SNI, UNVERIFIABLE_CLAIM, 1);
    return !passes(RESULT.verdict); // an SNI no name supports would not pass: it matters here
  }

  private startInnerTlsWatch(insp: Inspector): void {
    this.innerTls = true;
    this.outerProtocol = insp.protocol;
    this.innerChecks = 0;
    // A PostgreSQL SSLRequest (8 bytes) may be followed by the ClientHello in the same bytes.
    const d = insp.detector;
    this.innerOffset = insp.protocol == PROTO_POSTGRESQL && d.clientBytes() >= 8 && load<u32>(d.clientBufferPtr() + 4) == SSL_REQUEST_CODE ? 8 : 0;
  }

  /**
   * Client bytes of a connection that may switch to TLS: a segment that starts a TLS handshake
   * record is held until its ClientHello is complete, and its SNI is judged as the claim (with the
   * outer protocol). Watching stops once TLS started, or after a bounded number of segments.
   */
  private watchInnerTls(size: u32): Action {
    const start = this.innerOffset;
    if (size <= start) {
      this.innerOffset = 0; // these bytes go on: the next ones start a new buffer
      return Action.Continue;
    }
    const scratch = inspectScratchPtr();
    const limit = this.egress.config!.maxInspectBytes;
    const n = readBuffer(BufferType.DownstreamData, start, scratch, min(size - start, limit));
    if (n <= 0) return Action.Continue;
    if (load<u8>(scratch) != 0x16) {
      this.innerOffset = 0;
      if (++this.innerChecks >= MAX_INNER_TLS_CHECKS) this.innerTls = false;
      return Action.Continue;
    }
    const ri = this.egress.requestInspector();
    ri.feedClient(scratch, <u32>n);
    if (ri.state == INSPECT_NEED_MORE && <u32>n < limit) {
      this.innerOffset = start; // the rest of the ClientHello: Envoy offers the held bytes again
      this.dataHeld = true;
      return Action.StopIteration;
    }
    ri.giveUp();
    this.innerTls = false;
    this.innerOffset = 0;
    this.dataHeld = false;
    const now = nowMsCached();
    const unverifiable = ri.protocol != PROTO_TLS || ri.claimUnverifiable;
    if (unverifiable) this.evaluateNow(now, this.outerProtocol, CLAIM_SNI, UNVERIFIABLE_CLAIM, 1);
    else this.evaluateNow(now, this.outerProtocol, ri.claimKind, ri.claimPtr, <i32>ri.claimLen);
    if (this.revise(ri, now)) return Action.Continue;
    closeStream(StreamType.Downstream);
    return Action.StopIteration;
  }

  /**
   * Takes the verdict in RESULT for a later request (or inner handshake) on a passed connection:
   * true when it still passes. A changed verdict is reported as a decision of its own (with the
   * claims of `judged`).
   */
  private revise(judged: Inspector, now: i64): bool {
    if (passes(RESULT.verdict) && !(RESULT.verdict == VERDICT_WOULD_DENY && this.verdict != VERDICT_WOULD_DENY)) return true;
    const root = this.egress;
    const first = this.inspector;
    this.inspector = judged;
    this.verdict = RESULT.verdict;
    this.reason = RESULT.reason;
    this.policy = RESULT.policy;
    this.rule = RESULT.rule;
    this.matchedCandidate = RESULT.matchedCandidate;
    root.metrics!.decided(this.verdict, this.reason);
    reportDecision(root, this, now);
    this.inspector = first;
    return this.verdict != VERDICT_DENY;
  }

  /** Judges one later request head with the connection's names; false when it is denied. */
  private judgeLaterHead(ptr: usize, len: u32): bool {
    const root = this.egress;
    const now = nowMsCached();
    const ri = root.requestInspector();
    ri.feedClient(ptr, len);
    ri.giveUp();
    if (ri.protocol != PROTO_HTTP) return false;
    if (this.viaProxy) {
      this.evaluateProxied(now, PROTO_HTTP, ri);
    } else {
      // A later request without a Host after one with a Host names no destination either.
      const unverifiable = ri.claimUnverifiable || (ri.claimKind == CLAIM_NONE && this.claimKind != CLAIM_NONE);
      if (unverifiable) this.evaluateNow(now, PROTO_HTTP, CLAIM_HOST, UNVERIFIABLE_CLAIM, 1);
      else this.evaluateNow(now, PROTO_HTTP, ri.claimKind, ri.claimPtr, <i32>ri.claimLen);
    }
    const c = ri.detector.claims;
    this.framer!.afterHead(c.contentLength, (c.httpFlags & HTTP_CHUNKED) != 0, c.proxyForm == PROXY_CONNECT, (c.httpFlags & HTTP_UPGRADE) != 0,
      (c.httpFlags & HTTP_UPGRADE_H2C) != 0);
    return this.revise(ri, now);
  }

  /** A later request was denied or cannot be framed: close, nothing more reaches the server. */
  private requestFailed(): Action {
    if (this.verdict != VERDICT_DENY) {
      // Framing broke (no head judged): the connection's claim can no longer be followed.
      this.verdict = VERDICT_DENY;
      this.reason = this.viaProxy || this.claimKind != CLAIM_SNI ? REASON_HOST_UNVERIFIED : REASON_SNI_UNVERIFIED;
      this.egress.metrics!.decided(this.verdict, this.reason);
      reportDecision(this.egress, this, nowMsCached());
    }
    this.dataHeld = false;
    closeStream(StreamType.Downstream);
    return Action.StopIteration;
  }

  /** Server bytes on a framed connection: the answer to a CONNECT / Upgrade says whether HTTP/1 goes on. */
  private serverAnswer(size: u32): Action {
    const f = this.framer!;
    if (!f.awaiting()) return Action.Continue;
    const scratch = inspectScratchPtr();
    const n = readBuffer(BufferType.UpstreamData, 0, scratch, min(size, 16));
    if (n <= 0 || !f.serverBytes(scratch, <u32>n)) return Action.Continue;
    if (f.switchedToH2c()) return this.switchToH2(f);
    if (!f.heldWhileAwaiting) return Action.Continue;
    if (f.skippable() > 0) {
      // A tunnel: the held bytes belong to it.
      this.dataHeld = false;
      continueStream(StreamType.Downstream);
      return Action.Continue;
    }
    // HTTP/1 goes on, but the bytes held meanwhile can no longer be re-read to be judged.
    this.requestFailed();
    return Action.StopIteration;
  }
}

// @ts-ignore: decorator
@inline function nowMsCached(): i64 {
  return nowMs();
}
