// `egret agent`: the node's source of DNS evidence. Wiring only — capture (libpcap) → decode
// (../pcap) → DNS pipeline and observer (../dns) → observation store (replay) → one stream per
// control replica. Every piece gets its clock, limits and logger from here, so tests can drive the
// agent with injected frames and a fake clock.
import type { AgentCredentials } from "./credentials.js";
import { decodeFrame, decodeIp, fragmentInfo, ipHeaderOffset, IpReassembler, linkPacketType, PACKET_OUTGOING, type DecodedPacket, type DropCounts, type ReassemblyLimits, DEFAULT_REASSEMBLY_LIMITS } from "../pcap/index.js";
import { DnsObserver, type DnsObservation } from "../dns/observer.js";
import { DnsPipeline } from "../dns/pipeline.js";
import { CidrSet } from "../dns/cidr.js";
import type { Logger } from "../common/log.js";
import { frameTowardPod, LiveCapture, type Frame } from "./capture.js";
import type { RingStats } from "./packet-ring.js";
import { ControlTargets } from "./control-targets.js";
import { ReplicaStream } from "./replica-stream.js";
import { ObservationStore } from "./store.js";
import { EgressBypass } from "./egress-bypass.js";
import type { EgressWatchLimits } from "./egress-watch.js";

export interface AgentOptions {
  /** Stable id of this agent process, sent with every batch ("<node>/<boot id>"). */
  agentId: string;
  log: Logger;
  now?(): number;
  capture: {
    /** Interface names / globs, or ["any"]. Empty: no live capture (frames come from ingestFrame). */
    interfaces: readonly string[];
    bufferBytes: number;
    /** Captured frames waiting for the event loop, bytes, all sockets together (default 64 MiB). */
    queueBytes?: number;
    rescanMs: number;
  };
  dns: {
    ports: readonly number[];
    trustedResolvers: readonly string[];
    podCidrs: readonly string[];
    minTtlSec: number;
    maxTtlSec: number;
    queryTimeoutMs: number;
    maxPendingPerPod: number;
    maxPendingTotal: number;
  };
  store: { maxPerPod: number; maxTotal: number; negativeTtlSec: number; maxBytesPerPod?: number; maxBytesTotal?: number };
  control: {
    addresses: readonly string[];
    service?: string;
    resolveEveryMs: number;
    maxBatch: number;
    /** Encoded bytes per Observe batch at most (default 1 MiB, below control's 4 MiB). */
    maxBatchBytes?: number;
    window: number;
    maxQueue: number;
    ackTimeoutMs: number;
    connectTimeoutMs: number;
    /** Bearer token / TLS towards control (control/src/agent/credentials.ts). */
    credentials?: AgentCredentials;
  };
  /** IP fragment reassembly bounds (default DEFAULT_REASSEMBLY_LIMITS: 30 s, 1 MiB per pod, 16 MiB in total). */
  fragments?: Partial<ReassemblyLimits>;
  /** Bypass detection (egress-bypass.ts): outbound SYNs and UDP on pod interfaces; off when absent. */
  egress?: { limits?: Partial<EgressWatchLimits>; bufferBytes?: number; clusterCidrs?: readonly string[] };
  /** Called for every accepted observation (tests, debugging). */
  onObservation?(obs: DnsObservation): void;
}

export class Agent {
  readonly observer: DnsObserver;
  readonly pipeline: DnsPipeline;
  readonly store: ObservationStore;
  /** Bypass detection, when enabled. */
  readonly egress?: EgressBypass;
  readonly frameDrops: DropCounts = {};
  /** IP fragments, reassembled per interface and direction (ip-reassembler.ts). */
  readonly fragments: IpReassembler;
  /** Called with each acknowledged batch's latency (the metrics histogram). */
  onBatchAcked: ((replica: string, seconds: number) => void) | undefined;
  private capture: LiveCapture | undefined;
  private targets: ControlTargets | undefined;
  private readonly streams = new Map<string, ReplicaStream>();
  private injectedFrames = 0;
  private readonly now: () => number;

  constructor(private readonly opts: AgentOptions) {
    this.now = opts.now ?? Date.now;
    this.dnsPorts = new Set(opts.dns.ports);
    if (opts.dns.trustedResolvers.length === 0) {
      throw new Error("no trusted resolver: give --trusted-resolver IP (the cluster DNS Service IP and, with --interface any, its endpoints)");
    }
    this.store = new ObservationStore({ now: this.now, ...opts.store });
    this.fragments = new IpReassembler({ ...DEFAULT_REASSEMBLY_LIMITS, ...opts.fragments });
    this.observer = new DnsObserver({
      now: this.now,
      trustedResolvers: opts.dns.trustedResolvers,
      podCidrs: opts.dns.podCidrs,
      minTtlSec: opts.dns.minTtlSec,
      maxTtlSec: opts.dns.maxTtlSec,
      queryTimeoutMs: opts.dns.queryTimeoutMs,
      maxPendingPerPod: opts.dns.maxPendingPerPod,
      maxPendingTotal: opts.dns.maxPendingTotal,
      maxAnsweredRemembered: opts.dns.maxPendingTotal,
      addressRecordsOnly: true,
      onObservation: (obs) => this.onObservation(obs),
    });
    // DNS over TCP is rare and short-lived: a tight budget keeps a flood of half-open or
    // half-sent streams from growing the heap.
    const trusted = new CidrSet(opts.dns.trustedResolvers, "trusted resolver");
    this.pipeline = new DnsPipeline(this.observer, {
      dnsPorts: opts.dns.ports, maxTcpConnections: 16_384, maxTcpConnectionsPerClient: 64, maxTcpBufferedBytes: 32 << 20,
      isTrustedServer: (ip) => trusted.has(ip),
    });
    if (opts.egress) {
      this.egress = new EgressBypass({
        agentId: opts.agentId,
        log: opts.log,
        now: this.now,
        interfaces: opts.capture.interfaces,
        bufferBytes: opts.egress.bufferBytes ?? opts.capture.bufferBytes,
        rescanMs: opts.capture.rescanMs,
        dnsPorts: opts.dns.ports,
        trustedResolvers: opts.dns.trustedResolvers,
        podCidrs: opts.dns.podCidrs,
        clusterCidrs: opts.egress.clusterCidrs ?? [],
        limits: opts.egress.limits,
        connectTimeoutMs: opts.control.connectTimeoutMs,
        ...(opts.control.credentials ? { credentials: opts.control.credentials } : {}),
      });
    }
  }

  async start(): Promise<void> {
    if (this.opts.capture.interfaces.length > 0) {
      this.capture = new LiveCapture({
        interfaces: this.opts.capture.interfaces,
        dnsPorts: this.opts.dns.ports,
        bufferBytes: this.opts.capture.bufferBytes,
        ...(this.opts.capture.queueBytes !== undefined ? { queueBytes: this.opts.capture.queueBytes } : {}),
        rescanMs: this.opts.capture.rescanMs,
        log: this.opts.log,
        onFrame: (f) => this.ingestFrame(f),
      });
      this.capture.start();
    }
    this.egress?.start();
    this.targets = new ControlTargets({
      addresses: this.opts.control.addresses,
      ...(this.opts.control.service ? { service: this.opts.control.service } : {}),
      resolveEveryMs: this.opts.control.resolveEveryMs,
      log: this.opts.log,
      onChange: (addresses) => this.setReplicas(addresses),
    });
    await this.targets.start();
  }

  /**
   * Graceful stop (SIGTERM): keeps capturing for `captureTailMs` (answers still in the kernel's
   * capture ring and the pipeline), then stops capturing and waits until every replica has
   * acknowledged every observation — live and, after a reconnect, replayed — or `timeoutMs`
   * passes. Resolves to what stayed unacknowledged per replica (empty when all was delivered).
   */
  async drain(opts: { captureTailMs: number; timeoutMs: number; sleep?(ms: number): Promise<void> }): Promise<Record<string, string>> {
    const sleep = opts.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
    const deadline = this.now() + opts.timeoutMs;
    await sleep(Math.min(opts.captureTailMs, opts.timeoutMs));
    this.capture?.stop();
    this.egress?.stop();
    this.targets?.stop();
    const pending = (): Record<string, string> => {
      const out: Record<string, string> = {};
      for (const [a, s] of this.streams) {
        const n = s.unacknowledged();
        // A replica never reached is waited for only when there is evidence it could still
        // get (the store replays it on connect); with nothing captured, waiting helps no one.
        if (n === undefined) { if (this.store.size > 0) out[a] = "not connected"; }
        else if (n > 0) out[a] = `${n} observations unacknowledged`;
      }
      return out;
    };
    while (Object.keys(pending()).length > 0 && this.now() < deadline) await sleep(20);
    const left = pending();
    this.stop();
    return left;
  }

  stop(): void {
    this.capture?.stop();
    this.egress?.stop();
    this.targets?.stop();
    for (const s of this.streams.values()) s.close();
    this.streams.clear();
  }

  /** One captured frame (live capture calls this; tests may too). Never throws on its contents. */
  ingestFrame(frame: Frame): void {
    if (!this.capture) this.injectedFrames++;
    try {
      const pkt = this.decode(frame);
      if (!pkt) return;
      const towardPod = frameTowardPod(pkt.pktType, pkt.srcPort, pkt.dstPort, this.dnsPorts);
      if (towardPod === null) {
        this.wrongDirectionFrames++;
        return;
      }
      this.pipeline.push(pkt, { time: frame.time, iface: frame.iface, fromPod: !towardPod });
    } catch (err) {
      // A bug must cost one packet, not the node's evidence: count, log (rate-limited), go on.
      this.internalErrors++;
      const now = this.now();
      if (now - this.lastErrorLog > 10_000) {
        this.lastErrorLog = now;
        this.opts.log.error({ err: (err as Error).stack ?? String(err), total: this.internalErrors }, "internal error processing a frame");
      }
    }
  }

  /**
   * The frame's TCP/UDP packet, its IP fragments first reassembled (null: not ours, or a fragment
   * held or dropped). Never decapsulated: the outer packet is the one the kernel filter and the
   * network judged. Fragments are reassembled per interface and direction: what a pod sends can
   * never complete a datagram travelling to a pod.
   */
  private decode(frame: Frame): DecodedPacket | null {
    const pktType = frame.pktType ?? linkPacketType(frame.linkType, frame.data);
    const off = ipHeaderOffset(frame.linkType, frame.data);
    const ip = off >= 0 ? frame.data.subarray(off) : null;
    let pkt: DecodedPacket | null;
    if (ip && fragmentInfo(ip) !== null) {
      const toPod = pktType === PACKET_OUTGOING;
      const lane = `${frame.iface}${pktType < 0 ? "?" : toPod ? ">" : "<"}`;
      const whole = this.fragments.push(ip, lane, toPod || pktType < 0 ? "dst" : "src", frame.time);
      if (!whole) return null;
      pkt = decodeIp(whole, this.frameDrops);
    } else {
      pkt = decodeFrame(frame.linkType, frame.data, this.frameDrops);
    }
    if (pkt) pkt.pktType = pktType;
    return pkt;
  }

  /** Frames whose direction contradicts their ports (an answer sent by a pod, a query sent to one). */
  wrongDirectionFrames = 0;
  private readonly dnsPorts: ReadonlySet<number>;

  /** Frames whose processing threw (a bug; see the log). */
  internalErrors = 0;
  private lastErrorLog = -Infinity;

  replicas(): ReplicaStream[] {
    return [...this.streams.values()];
  }

  get capturedFrames(): number {
    return (this.capture?.frames ?? 0) + this.injectedFrames;
  }

  get truncatedFrames(): number {
    return this.capture?.truncatedFrames ?? 0;
  }

  get captureInterfaces(): number {
    return this.capture?.interfaces.length ?? 0;
  }

  health(): { ok: boolean; interfaces: string[]; failedInterfaces: Record<string, string>; replicas: Record<string, boolean> } {
    const interfaces = this.capture?.interfaces ?? [];
    // Healthy unless an interface we should capture on cannot be opened (or "any" is not open):
    // a node without pods yet has nothing to capture and is fine.
    const wantsAny = this.opts.capture.interfaces.includes("any");
    const ok = this.opts.capture.interfaces.length === 0 || (wantsAny ? interfaces.length > 0 : (this.capture?.failures.size ?? 0) === 0);
    return {
      ok,
      interfaces,
      failedInterfaces: Object.fromEntries(this.capture?.failures ?? []),
      replicas: Object.fromEntries([...this.streams].map(([a, s]) => [a, s.stats.connected])),
    };
  }

  private onObservation(obs: DnsObservation): void {
    this.store.add(obs);
    for (const s of this.streams.values()) s.push(obs);
    this.opts.onObservation?.(obs);
  }

  private setReplicas(addresses: string[]): void {
    this.egress?.setReplicas(addresses);
    const wanted = new Set(addresses);
    for (const [a, s] of this.streams) {
      if (!wanted.has(a)) {
        s.close();
        this.streams.delete(a);
        this.opts.log.info({ replica: a }, "control replica removed");
      }
    }
    for (const a of wanted) {
      if (this.streams.has(a)) continue;
      const s = new ReplicaStream({
        address: a,
        agentId: this.opts.agentId,
        log: this.opts.log,
        replaySource: () => this.store.valid(),
        captureDrops: () => {
          // Evidence lost at capture: ring overflows in the kernel and the agent's own queue.
          const k = this.captureKernelStats();
          return k.drops + k.queueDrops;
        },
        maxBatch: this.opts.control.maxBatch,
        ...(this.opts.control.maxBatchBytes ? { maxBatchBytes: this.opts.control.maxBatchBytes } : {}),
        window: this.opts.control.window,
        maxQueue: this.opts.control.maxQueue,
        ackTimeoutMs: this.opts.control.ackTimeoutMs,
        connectTimeoutMs: this.opts.control.connectTimeoutMs,
        ...(this.opts.control.credentials ? { credentials: this.opts.control.credentials } : {}),
        now: this.now,
        onBatchAcked: (replica, seconds) => this.onBatchAcked?.(replica, seconds),
      });
      this.streams.set(a, s);
      s.start();
    }
  }

  /** The kernel's counters for the capture sockets (PACKET_STATISTICS), summed. */
  captureKernelStats(): RingStats {
    return this.capture?.kernelStats() ?? { packets: 0, drops: 0, freezes: 0, queueDrops: 0 };
  }
}
