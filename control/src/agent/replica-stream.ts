// One agent → control replica stream (AgentService.Observe): batches what one event-loop turn
// captured and sends it as soon as the in-flight window allows (no timer: batching happens under
// load), keeps a bounded window of unacknowledged batches (back-pressure), reconnects with
// jittered exponential backoff, and on every (re)connect replays the agent's still-valid
// observations (replay = true) before live ones.
import * as grpc from "@grpc/grpc-js";
import type { DnsObservation } from "../dns/observer.js";
import { RRType } from "../dns/wire.js";
import { createAgentClient, ipToBytes, type AgentServiceClient, type ObserveRequest, type ObserveResponse, type Outgoing, type Observation } from "../proto/index.js";
import type { Logger } from "../common/log.js";
import type { AgentCredentials } from "./credentials.js";

export const INITIAL_BACKOFF_MS = 200;
export const MAX_BACKOFF_MS = 10_000;
export const BACKOFF_MULTIPLIER = 2;
export const BACKOFF_JITTER = 0.2;

export interface ReplicaStreamOptions {
  address: string;
  agentId: string;
  log: Logger;
  /** Still-valid observations to replay after each (re)connect, oldest first. */
  replaySource(): DnsObservation[];
  maxBatch: number;
  /**
   * Encoded bytes per batch at most (observationWireBytes), below control's gRPC message limit
   * (4 MiB by default). Halved, down to MIN_BATCH_BYTES, each time control refuses a message as
   * too large (RESOURCE_EXHAUSTED); an observation larger than the current limit is dropped and
   * counted, so no batch is resent forever.
   */
  maxBatchBytes?: number;
  /** Unacknowledged batches allowed in flight. */
  window: number;
  /** Live observations waiting to be sent (beyond a replay in progress); beyond it the oldest
   *  are dropped (counted; they are replayed after the next reconnect). */
  maxQueue: number;
  /** A batch unacknowledged this long means the stream is stuck: reconnect. */
  ackTimeoutMs: number;
  connectTimeoutMs: number;
  now(): number;
  /** Called with each acknowledged batch's latency (send → ack) in seconds. */
  onBatchAcked?(address: string, seconds: number, observations: number, replay: boolean): void;
  /** Injected for tests; defaults to the generated AgentService client. */
  createClient?(address: string): AgentServiceClient;
  /** Bearer token and TLS (control/src/agent/credentials.ts); default: none, plaintext. */
  credentials?: AgentCredentials;
  /** The capture's kernel drops so far, carried on every batch (control shows it in `egret status`). */
  captureDrops?(): number;
}

export const MIN_BATCH_BYTES = 16 << 10;
/** A quarter of gRPC's default 4 MiB message limit (control's): room for any framing. */
export const DEFAULT_BATCH_BYTES = 1 << 20;

export interface ReplicaStreamStats {
  /** Observations dropped because they alone exceed the batch byte limit (counted, never sent). */
  oversized: number;
  /** Messages control refused as too large (RESOURCE_EXHAUSTED). */
  refusedBatches: number;
  /** The current batch byte limit. */
  batchBytes: number;
  connected: boolean;
  connects: number;
  sent: number;
  acked: number;
  replayed: number;
  dropped: number;
  queued: number;
  inFlightBatches: number;
}

interface InFlight {
  sentAt: number;
  count: number;
  replay: boolean;
}

interface Pending {
  obs: DnsObservation;
  replay: boolean;
}

/**
 * Upper bound of an observation's protobuf size in an ObserveRequest: field tags, lengths and
 * varints at their widest, addresses at 16 bytes.
 */
export function observationWireBytes(o: DnsObservation): number {
  let n = 96 + o.qname.length + (o.iface?.length ?? 0);
  for (const c of o.cnameChain) n += 4 + c.length;
  for (const e of o.echPublicNames ?? []) n += 4 + e.length;
  return n + 32 * o.answers.length;
}

/** The API form of an observation: A/AAAA of the final name of the chain. */
export function toProto(o: DnsObservation): Outgoing<Observation> {
  const final = o.cnameChain.length > 0 ? o.cnameChain[o.cnameChain.length - 1] : o.qname;
  const answers: { ip: Uint8Array; ttl_seconds: number }[] = [];
  for (const a of o.answers) {
    if ((a.typeCode === RRType.A || a.typeCode === RRType.AAAA) && a.name === final && typeof a.data === "string") {
      answers.push({ ip: ipToBytes(a.data), ttl_seconds: a.ttl });
    }
  }
  return {
    pod_ip: ipToBytes(o.podIp),
    query_name: o.qname,
    query_type: o.qtype,
    rcode: o.rcode,
    cname_chain: o.cnameChain,
    answers,
    resolver_ip: ipToBytes(o.resolver),
    resolver_port: o.resolverPort,
    transport: o.transport === "tcp" ? "DNS_TRANSPORT_TCP" : "DNS_TRANSPORT_UDP",
    observed_unix_ms: Math.round(o.time),
    interface_name: o.iface ?? "",
    ech_public_names: o.echPublicNames ?? [],
    ech_ttl_seconds: o.echTtlSec ?? 0,
  };
}

export class ReplicaStream {
  readonly stats: ReplicaStreamStats;
  private client: AgentServiceClient | undefined;
  private call: grpc.ClientDuplexStream<Outgoing<ObserveRequest>, ObserveResponse> | undefined;
  private queue: Pending[] = [];
  private queueHead = 0;
  private readonly inFlight = new Map<number, InFlight>();
  private sequence = 0;
  private backoffMs = INITIAL_BACKOFF_MS;
  private timer: NodeJS.Timeout | undefined;
  private ackTimer: NodeJS.Timeout | undefined;
  private closed = false;
  private writable = true;
  /** Replay entries still waiting in the queue (always at its front). */
  private replayQueued = 0;

  constructor(private readonly opts: ReplicaStreamOptions) {
    const batchBytes = opts.maxBatchBytes ?? DEFAULT_BATCH_BYTES;
    if (!(batchBytes >= MIN_BATCH_BYTES)) throw new Error(`batch bytes must be at least ${MIN_BATCH_BYTES}, got ${batchBytes}`);
    this.stats = {
      oversized: 0, refusedBatches: 0, batchBytes,
      connected: false, connects: 0, sent: 0, acked: 0, replayed: 0, dropped: 0, queued: 0, inFlightBatches: 0,
    };
  }

  get address(): string {
    return this.opts.address;
  }

  start(): void {
    this.connect();
  }

  /**
   * Queues a live observation. It leaves at the end of the current event-loop turn if the window
   * allows: every answer captured in the same turn shares one batch, and none waits longer.
   */
  push(obs: DnsObservation): void {
    if (this.closed) return;
    if (!this.stats.connected) return; // replayed from the store on connect
    this.enqueue({ obs, replay: false });
    if (!this.pumpScheduled) {
      this.pumpScheduled = true;
      setImmediate(() => {
        this.pumpScheduled = false;
        this.pump();
      });
    }
  }

  private pumpScheduled = false;

  /**
   * Observations this replica has not acknowledged yet: queued plus in flight; undefined while the
   * stream is down (then everything still valid will be replayed on reconnect).
   */
  unacknowledged(): number | undefined {
    if (!this.stats.connected) return undefined;
    let inFlight = 0;
    for (const b of this.inFlight.values()) inFlight += b.count;
    return this.queue.length - this.queueHead + inFlight;
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.ackTimer) clearInterval(this.ackTimer);
    this.teardown();
  }

  private enqueue(p: Pending): void {
    if (this.queue.length - this.queueHead - this.replayQueued >= this.opts.maxQueue) {
      this.stats.dropped++;
      // Drop the oldest live observation; while a replay is still queued in front, drop the new
      // one instead (a replay is never cut). Either is replayed after the next reconnect.
      if (this.replayQueued > 0) return;
      this.queueHead++;
    }
    this.queue.push(p);
    this.stats.queued = this.queue.length - this.queueHead;
  }

  private connect(): void {
    if (this.closed) return;
    const client = this.opts.createClient ? this.opts.createClient(this.opts.address) : createAgentClient(this.opts.address, this.opts.credentials?.channel, this.opts.credentials?.options);
    this.client = client;
    client.waitForReady(Date.now() + this.opts.connectTimeoutMs, (err) => {
      if (this.closed || this.client !== client) return;
      if (err) {
        this.opts.log.debug({ replica: this.opts.address, err: err.message }, "control replica not reachable");
        this.retry();
        return;
      }
      this.openStream(client);
    });
  }

  private openStream(client: AgentServiceClient): void {
    let metadata: grpc.Metadata;
    try {
      metadata = this.opts.credentials?.callMetadata() ?? new grpc.Metadata();
    } catch (err) {
      this.opts.log.error({ replica: this.opts.address, err: (err as Error).message }, "agent credentials unreadable; retrying");
      this.retry();
      return;
    }
    const call = client.Observe(metadata);
    this.call = call;
    this.sequence = 0;
    this.inFlight.clear();
    this.writable = true;
    this.stats.connected = true;
    this.stats.connects++;
    // Replay replaces whatever was queued: the store holds everything still valid.
    this.queue = this.opts.replaySource().map((obs) => ({ obs, replay: true }));
    this.queueHead = 0;
    this.replayQueued = this.queue.length;
    this.stats.queued = this.queue.length;
    this.opts.log.info({ replica: this.opts.address, replay: this.stats.queued }, "connected to control replica");
    call.on("data", (resp: ObserveResponse) => this.onAck(resp));
    call.on("drain", () => {
      this.writable = true;
      this.pump();
    });
    const onEnd = (err?: Error) => {
      if (this.call !== call) return;
      const code = (err as grpc.ServiceError | undefined)?.code;
      const errorCode = (err as grpc.ServiceError | undefined)?.metadata?.get("egret-error-code")[0];
      // Too large (control's EGRET_MESSAGE_TOO_LARGE, or a plain gRPC size refusal) — not other
      // RESOURCE_EXHAUSTED refusals such as too many streams from this address.
      if (code === grpc.status.RESOURCE_EXHAUSTED && (errorCode === undefined || errorCode === "EGRET_MESSAGE_TOO_LARGE" || errorCode === "EGRET_OBSERVE_BATCH_TOO_LARGE")) {
        // Control refused a message as too large: smaller batches from now on (whatever is too
        // big for the floor is dropped in pump), never the same batch again and again.
        this.stats.refusedBatches++;
        this.stats.batchBytes = Math.max(MIN_BATCH_BYTES, Math.floor(this.stats.batchBytes / 2));
      }
      if (errorCode === "EGRET_AGENT_TOKEN_EXPIRED") {
        // Expected once per token lifetime: the reconnect reads the token the kubelet rotated.
        this.opts.log.info({ replica: this.opts.address }, "the stream's token expired; reconnecting with the current token file");
      } else if (code === grpc.status.UNAUTHENTICATED || code === grpc.status.PERMISSION_DENIED) {
        this.opts.log.error({ replica: this.opts.address, err: err?.message }, "control refused this agent's credentials (check --token-file); retrying");
      } else {
        this.opts.log.warn({ replica: this.opts.address, err: err?.message ?? "stream ended" }, "control replica stream lost; reconnecting");
      }
      this.retry();
    };
    call.on("error", (err: Error) => onEnd(err));
    call.on("end", () => onEnd());
    this.ackTimer = setInterval(() => this.checkAcks(), Math.max(100, Math.floor(this.opts.ackTimeoutMs / 4)));
    this.ackTimer.unref();
    this.pump();
  }

  private pump(): void {
    const call = this.call;
    if (!call || !this.stats.connected) return;
    while (this.writable && this.inFlight.size < this.opts.window && this.queueHead < this.queue.length) {
      const first = this.queue[this.queueHead]!;
      const batch: DnsObservation[] = [];
      let bytes = 64;
      const limit = this.stats.batchBytes;
      // A batch is all-replay or all-live, so the flag means what it says; it stays under the
      // byte limit, and an observation that alone exceeds it is dropped (counted).
      while (batch.length < this.opts.maxBatch && this.queueHead < this.queue.length && this.queue[this.queueHead]!.replay === first.replay) {
        const next = this.queue[this.queueHead]!;
        const size = observationWireBytes(next.obs);
        if (64 + size > limit) {
          this.queueHead++;
          if (next.replay) this.replayQueued--;
          this.stats.oversized++;
          continue;
        }
        if (bytes + size > limit) break;
        bytes += size;
        batch.push(next.obs);
        this.queueHead++;
      }
      if (first.replay) this.replayQueued -= batch.length;
      if (batch.length === 0) continue;
      const sequence = ++this.sequence;
      const observations: Outgoing<Observation>[] = [];
      for (const o of batch) {
        try {
          observations.push(toProto(o));
        } catch (err) {
          this.opts.log.error({ err: (err as Error).message, qname: o.qname }, "observation not encodable; dropped");
        }
      }
      this.inFlight.set(sequence, { sentAt: this.opts.now(), count: batch.length, replay: first.replay });
      this.writable = call.write({ agent_id: this.opts.agentId, sequence, observations, replay: first.replay, capture_drops: this.opts.captureDrops?.() ?? 0 });
      this.stats.sent += batch.length;
      if (first.replay) this.stats.replayed += batch.length;
    }
    if (this.queueHead > 4096 && this.queueHead * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.queueHead);
      this.queueHead = 0;
    }
    this.stats.queued = this.queue.length - this.queueHead;
    this.stats.inFlightBatches = this.inFlight.size;
  }

  private onAck(resp: ObserveResponse): void {
    const acked = Number(resp.acked_sequence);
    const now = this.opts.now();
    for (const [seq, b] of this.inFlight) {
      if (seq > acked) break;
      this.inFlight.delete(seq);
      this.stats.acked += b.count;
      this.opts.onBatchAcked?.(this.opts.address, (now - b.sentAt) / 1000, b.count, b.replay);
    }
    this.backoffMs = INITIAL_BACKOFF_MS; // a working stream resets the backoff
    this.pump();
  }

  private checkAcks(): void {
    const oldest = this.inFlight.values().next().value as InFlight | undefined;
    if (oldest && this.opts.now() - oldest.sentAt > this.opts.ackTimeoutMs) {
      this.opts.log.warn({ replica: this.opts.address }, "control replica stopped acknowledging; reconnecting");
      this.retry();
    }
  }

  private retry(): void {
    this.teardown();
    if (this.closed) return;
    const jitter = 1 + (Math.random() * 2 - 1) * BACKOFF_JITTER;
    const delay = Math.round(this.backoffMs * jitter);
    this.backoffMs = Math.min(MAX_BACKOFF_MS, this.backoffMs * BACKOFF_MULTIPLIER);
    this.timer = setTimeout(() => this.connect(), delay);
    this.timer.unref();
  }

  private teardown(): void {
    this.stats.connected = false;
    this.stats.inFlightBatches = 0;
    if (this.ackTimer) clearInterval(this.ackTimer);
    this.ackTimer = undefined;
    const call = this.call;
    this.call = undefined;
    if (call) {
      call.removeAllListeners();
      call.on("error", () => {}); // cancel() emits a CANCELLED error we do not care about
      call.cancel();
    }
    this.client?.close();
    this.client = undefined;
    this.inFlight.clear();
    this.queue = [];
    this.queueHead = 0;
    this.replayQueued = 0;
    this.stats.queued = 0;
  }
}
