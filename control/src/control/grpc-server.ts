// The gRPC edge: FilterService (Watch, Lookup, Report) and AgentService (Observe) over
// @grpc/grpc-js. The only place where ControlError codes become gRPC status codes.
import * as grpc from "@grpc/grpc-js";
import type { Logger } from "../common/log.js";
import {
  agentServiceDefinition,
  filterServiceDefinition,
  operatorServiceDefinition,
  type OperatorServiceHandlers,
  type AgentServiceHandlers,
  type FilterServiceHandlers,
  type LookupRequest,
  type LookupResponse,
  type ObserveRequest,
  type Outgoing,
  type ReportRequest,
  type ReportResponse,
  type WatchRequest,
} from "../proto/index.js";
import { bytesToIp } from "../proto/ip.js";
import { AuthFailure, type AgentAuthenticator, type AgentIdentity } from "../auth/agent-auth.js";
import type { BoundPod, FilterBinder, FilterCall } from "../auth/filter-binding.js";
import type { NodeBinding } from "../auth/node-binding.js";
import type { PodRegistry } from "./pods.js";
import { asControlError, ControlError, type ErrorKind } from "./errors.js";
import type { WatchHub, Subscription } from "./hub.js";
import type { CoverageTracker } from "./coverage.js";
import type { BypassHub } from "./bypass.js";
import type { EgressHandler, EgressRequest } from "../proto/index.js";
import type { LookupService } from "./lookup.js";
import type { ControlMetrics } from "./metrics.js";
import type { ReportSink } from "./reports.js";
import type { AgentStream, AgentTracker } from "./agent-tracker.js";
import { normalizeName, type ResolutionStore } from "./store.js";
import { DEFAULT_PEER_LIMITS, PeerLimiter, type PeerLimitKind, type PeerLimits } from "./peer-limits.js";
import { peerIp } from "../auth/peer.js";
import type * as http2 from "node:http2";

const STATUS_OF: Record<ErrorKind, grpc.status> = {
  "invalid-argument": grpc.status.INVALID_ARGUMENT,
  "not-found": grpc.status.NOT_FOUND,
  "failed-precondition": grpc.status.FAILED_PRECONDITION,
  "resource-exhausted": grpc.status.RESOURCE_EXHAUSTED,
  unavailable: grpc.status.UNAVAILABLE,
  unauthenticated: grpc.status.UNAUTHENTICATED,
  "permission-denied": grpc.status.PERMISSION_DENIED,
  internal: grpc.status.INTERNAL,
};

/** A ControlError (or anything thrown) as a gRPC status; the code travels in trailing metadata. */
export function toStatus(err: unknown): Partial<grpc.StatusObject> {
  const e = asControlError(err);
  const metadata = new grpc.Metadata();
  metadata.set("egret-error-code", e.code);
  return { code: STATUS_OF[e.kind], details: `${e.code}: ${e.message}`, metadata };
}

/** How much earlier than the caller's deadline a waiting Lookup answers (at most 10% of the wait). */
const DEADLINE_MARGIN_MS = 20;

export interface GrpcLimits {
  /** Longest Lookup wait honoured (ms), whatever the caller asks. */
  maxLookupWaitMs: number;
  /** Wait used when the caller sets neither wait_ms nor a deadline (ms). */
  defaultLookupWaitMs: number;
  maxObservationsPerBatch: number;
  maxEventsPerBatch: number;
}

export const DEFAULT_GRPC_LIMITS: GrpcLimits = {
  maxLookupWaitMs: 5_000,
  defaultLookupWaitMs: 250,
  maxObservationsPerBatch: 10_000,
  maxEventsPerBatch: 10_000,
};

export interface GrpcEdgeOptions {
  hub: WatchHub;
  /** Counts the Watch streams bound to each pod (enforcement coverage). */
  coverage?: Pick<CoverageTracker, "filterConnected">;
  /** Bypass detection: agents' Egress streams (absent: the RPC answers UNIMPLEMENTED). */
  bypass?: Pick<BypassHub, "attachAgent" | "attempts" | "lookedUp" | "opened">;
  lookups: LookupService;
  store: ResolutionStore;
  reports: ReportSink;
  metrics: ControlMetrics;
  log: Logger;
  serverId: string;
  limits?: Partial<GrpcLimits>;
  registry: PodRegistry;
  /** Who an Observe stream speaks for (UNAUTHENTICATED when it cannot say). */
  agentAuth: AgentAuthenticator;
  /** Which pod a filter call comes from (PERMISSION_DENIED when not the one it names). */
  filterBinder: FilterBinder;
  /** Whether an observation's pod is on the agent's node. */
  nodeBinding: NodeBinding;
  /** Accept calls only once true (initial sync done); Watch/Lookup get UNAVAILABLE before. */
  isReady: () => boolean;
  /**
   * Certificate and key (PEM) of the TLS listener; AgentService is then served only there. With
   * `files`, they are re-read every `reloadMs` (a renewed Secret the kubelet updated is served to
   * new connections without a restart).
   */
  tls?: { cert: Buffer; key: Buffer; files?: { cert: string; key: string; reloadMs: number } };
  /** The service clock (server_time_unix_ms); call deadlines stay on real time. */
  now?: () => number;
  /** Authenticated Observe streams, for `egret status`. */
  agents?: AgentTracker;
  /** OperatorService (`egret observe`, `egret status`): bearer tokens, so served like AgentService. */
  operator?: OperatorServiceHandlers;
  /** What one peer address may hold and do (peer-limits.ts). */
  peerLimits?: Partial<PeerLimits>;
}

// Server-initiated keepalive (dead peers are found); client pings are policed by PeerLimiter, since
// grpc-js does not enforce a minimum ping interval itself.
const SERVER_OPTIONS: grpc.ServerOptions = {
  "grpc.keepalive_time_ms": 30_000,
  "grpc.keepalive_timeout_ms": 10_000,
  "grpc.keepalive_permit_without_calls": 1,
};

/** Fixed PEM, or files re-read on an interval (grpc-js's FileWatcherCertificateProvider). */
function tlsCredentials(tls: NonNullable<GrpcEdgeOptions["tls"]>): grpc.ServerCredentials {
  if (!tls.files) return grpc.ServerCredentials.createSsl(null, [{ cert_chain: tls.cert, private_key: tls.key }], false);
  const identity = new grpc.experimental.FileWatcherCertificateProvider({ certificateFile: tls.files.cert, privateKeyFile: tls.files.key, refreshIntervalMs: tls.files.reloadMs });
  // grpc-js 1.14 declares (ca, identity) but passes its first argument on as the identity
  // provider; control-tls.test.ts "a renewed certificate…" proves which one serves.
  return grpc.experimental.createCertificateProviderServerCredentials(identity, null, false);
}

/** A peer's key for the per-peer limits: its IP (the whole string when it is not an IP peer). */
const peerKey = (call: { getPeer(): string }) => peerIp(call.getPeer()) ?? call.getPeer();

/** How often one (peer, limit) is logged; every hit is counted. */
const LIMIT_LOG_INTERVAL_MS = 10_000;

function bind(server: grpc.Server, address: string, credentials: grpc.ServerCredentials, peers: PeerLimiter): Promise<number> {
  return new Promise<number>((resolve, reject) => server.bindAsync(address, credentials, (err, port) => (err ? reject(err) : resolve(port)))).then((port) => {
    guardSessions(server, peers);
    return port;
  });
}

/**
 * Puts every new HTTP/2 connection of `server` under the per-peer connection and keepalive limits.
 * grpc-js gives no public hook for its sessions; its http2 servers are reached through the
 * (stable since 1.8) `http2Servers` map, and a missing map fails loudly here rather than leaving
 * the limits silently off (control-peer-limits.test.ts attacks both limits).
 */
const guarded = new WeakSet<object>();
function guardSessions(server: grpc.Server, peers: PeerLimiter): void {
  const http2Servers = (server as unknown as { http2Servers?: Map<http2.Http2Server, unknown> }).http2Servers;
  if (!(http2Servers instanceof Map)) throw new Error("grpc-js internals changed: no http2Servers map; per-peer connection limits cannot be applied");
  for (const h of http2Servers.keys()) {
    if (guarded.has(h)) continue;
    guarded.add(h);
    h.on("session", (session: http2.ServerHttp2Session) => peers.guardSession(session));
  }
}

function shutdown(server: grpc.Server, graceMs: number): Promise<void> {
  return new Promise<void>((resolve) => {
    const timer = setTimeout(() => {
      server.forceShutdown();
      resolve();
    }, graceMs);
    server.tryShutdown(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}

interface ObserveState {
  lastSequence: number;
  agentId: string;
  /** The stream's row in `egret status`, once authenticated. */
  tracked?: AgentStream;
}

export class GrpcEdge {
  private readonly server: grpc.Server;
  private readonly tlsServer?: grpc.Server;
  private readonly limits: GrpcLimits;
  private readonly openCalls = new Set<grpc.ServerDuplexStream<unknown, unknown>>();
  private shuttingDown = false;
  /** Bound Watch streams by pod key: re-checked when that pod changes (IP reassigned, deleted). */
  private readonly boundWatches = new Map<string, Set<() => void>>();
  readonly peers: PeerLimiter;
  private readonly limitLogged = new Map<string, number>();

  constructor(private readonly o: GrpcEdgeOptions) {
    this.peers = new PeerLimiter({ ...DEFAULT_PEER_LIMITS, ...o.peerLimits }, (kind, peer) => this.limitExceeded(kind, peer));
    o.registry.onChange((c) => {
      if (c.kind !== "pod") return;
      for (const recheck of [...(this.boundWatches.get(c.key) ?? [])]) recheck();
    });
    this.limits = { ...DEFAULT_GRPC_LIMITS, ...o.limits };
    const filter: FilterServiceHandlers = {
      Watch: (call) => this.watch(call),
      Lookup: (call, callback) => void this.lookup(call, callback),
      Report: (call, callback) => this.report(call, callback),
    };
    const egress: EgressHandler = (call) => this.egress(call);
    const agent: AgentServiceHandlers = { Observe: (call) => this.observe(call), ...(o.bypass ? { Egress: egress } : {}) };
    // Plaintext: filters (no credential travels; they are bound by source address). Agents too,
    // unless TLS is configured: then bearer tokens travel only on the TLS listener.
    const options: grpc.ServerOptions = {
      ...SERVER_OPTIONS,
      "grpc.max_receive_message_length": this.peers.limits.maxMessageBytes,
      interceptors: [(_method, call) => this.countOversizedMessages(call)],
    };
    this.server = new grpc.Server(options);
    this.server.addService(filterServiceDefinition(), filter);
    if (!o.tls) this.server.addService(agentServiceDefinition(), agent);
    const operator = o.operator && this.limitedOperator(o.operator);
    if (!o.tls && operator) this.server.addService(operatorServiceDefinition(), operator);
    if (o.tls) {
      this.tlsServer = new grpc.Server(options);
      this.tlsServer.addService(agentServiceDefinition(), agent);
      if (operator) this.tlsServer.addService(operatorServiceDefinition(), operator);
      this.tlsServer.addService(filterServiceDefinition(), filter);
    }
  }

  /** Binds `address` ("0.0.0.0:9090", "127.0.0.1:0") in plaintext; resolves to the bound port. */
  listen(address: string): Promise<number> {
    return bind(this.server, address, grpc.ServerCredentials.createInsecure(), this.peers);
  }

  /** Binds the TLS listener (AgentService and FilterService); only with `tls` options. */
  listenTls(address: string): Promise<number> {
    if (!this.tlsServer || !this.o.tls) throw new Error("listenTls needs the tls option");
    return bind(this.tlsServer, address, tlsCredentials(this.o.tls), this.peers);
  }

  /** Ends every stream with UNAVAILABLE (clients reconnect elsewhere) and stops the server. */
  async close(graceMs = 2_000): Promise<void> {
    this.shuttingDown = true;
    for (const call of this.openCalls) call.emit("error", toStatus(new ControlError("EGRET_SHUTTING_DOWN")));
    await Promise.all([this.server, this.tlsServer].filter((s): s is grpc.Server => s !== undefined).map((server) => shutdown(server, graceMs)));
  }

  // ---- Watch ---------------------------------------------------------------------------------

  private watch(call: grpc.ServerDuplexStream<WatchRequest, unknown>): void {
    const stream = call as grpc.ServerDuplexStream<unknown, unknown>;
    if (this.refuse(call)) return;
    const releaseSlot = this.streamSlot(call);
    if (!releaseSlot) return;
    this.openCalls.add(stream);
    let subscription: Subscription | undefined;
    let finished = false;
    let unbind: (() => void) | undefined;
    let disconnected: (() => void) | undefined;
    const finish = (err?: unknown) => {
      if (finished) return;
      finished = true;
      releaseSlot();
      this.openCalls.delete(stream);
      unbind?.();
      disconnected?.();
      subscription?.close();
      if (err) {
        this.o.log.info({ err: asControlError(err).message }, "watch: ending stream");
        call.emit("error", toStatus(err));
      } else if (!call.cancelled) call.end();
    };
    call.on("data", (req: WatchRequest) => {
      try {
        if (req.type === "WATCH_REQUEST_TYPE_SUBSCRIBE") {
          if (subscription) throw new ControlError("EGRET_WATCH_DUPLICATE_SUBSCRIBE");
          if (!req.pod_name || !req.pod_namespace) throw new ControlError("EGRET_WATCH_IDENTITY_MISSING");
          const bound = this.bind("watch", call, () => this.o.filterBinder.bindNamed(call.getPeer(), req.pod_namespace, req.pod_name));
          unbind = this.watchBinding(bound, () => finish(new ControlError("EGRET_FILTER_POD_GONE", `${bound.namespace}/${bound.name} from ${bound.peer}`)));
          subscription = this.o.hub.subscribe(
            {
              namespace: req.pod_namespace,
              name: req.pod_name,
              instanceId: req.instance_id,
              podIps: req.pod_ips.map((ip) => bytesToIp(ip)).filter((ip): ip is string => ip !== undefined),
              resumeEpoch: req.resume_epoch || undefined,
              resumeVersion: req.resume_version || undefined,
            },
            { send: (m) => call.write(m), onDrain: (cb) => call.on("drain", cb) },
          );
          disconnected = this.o.coverage?.filterConnected(req.pod_namespace, req.pod_name);
        } else if (!subscription) {
          throw new ControlError("EGRET_WATCH_SUBSCRIBE_FIRST");
        } else if (req.type === "WATCH_REQUEST_TYPE_ACK") {
          subscription.ack(req.response_version, req.response_nonce);
        } else if (req.type === "WATCH_REQUEST_TYPE_NACK") {
          subscription.nack(req.response_version, req.response_nonce, req.error_detail);
        } else {
          throw new ControlError("EGRET_WATCH_BAD_REQUEST_TYPE", String(req.type));
        }
      } catch (err) {
        finish(err);
      }
    });
    call.on("end", () => finish());
    call.on("cancelled", () => finish());
    call.on("error", () => finish());
  }

  // ---- Lookup --------------------------------------------------------------------------------

  private async lookup(
    call: grpc.ServerUnaryCall<LookupRequest, unknown>,
    callback: grpc.sendUnaryData<Outgoing<LookupResponse>>,
  ): Promise<void> {
    let releaseSlot: (() => void) | undefined;
    try {
      if (this.shuttingDown) throw new ControlError("EGRET_SHUTTING_DOWN");
      if (!this.o.isReady()) throw new ControlError("EGRET_NOT_READY");
      releaseSlot = this.peers.startLookup(peerKey(call));
      const req = call.request;
      this.bind("lookup", call, () => this.o.filterBinder.bindSource(call.getPeer(), req.source_ip, req.pod_namespace, req.pod_name));
      this.o.bypass?.lookedUp(req.source_ip, req.destination_ip);
      const deadline = call.getDeadline();
      const deadlineMs = deadline instanceof Date ? deadline.getTime() : deadline;
      // Answer a little before the caller's deadline so NOT_FOUND arrives rather than DEADLINE_EXCEEDED.
      const remaining = deadlineMs - Date.now();
      const untilDeadline = Number.isFinite(deadlineMs) ? Math.max(0, remaining - Math.min(DEADLINE_MARGIN_MS, remaining / 10)) : Infinity;
      let wait = req.wait_ms > 0 ? Math.min(req.wait_ms, untilDeadline) : untilDeadline;
      if (wait === Infinity) wait = this.limits.defaultLookupWaitMs;
      wait = Math.min(wait, this.limits.maxLookupWaitMs);
      const abort = new AbortController();
      call.on("cancelled", () => abort.abort());
      const answer = await this.o.lookups.lookup(req.source_ip, req.destination_ip, wait, abort.signal, req.claimed_name ?? "");
      if (call.cancelled) return;
      callback(null, { result: answer.result, resolution: answer.resolution ?? null, server_time_unix_ms: (this.o.now ?? Date.now)() });
    } catch (err) {
      this.o.metrics.lookups.inc({ result: "error" });
      callback(toStatus(err) as grpc.ServiceError, null);
    } finally {
      releaseSlot?.();
    }
  }

  // ---- Report --------------------------------------------------------------------------------

  private report(
    call: grpc.ServerReadableStream<ReportRequest, unknown>,
    callback: grpc.sendUnaryData<Outgoing<ReportResponse>>,
  ): void {
    let accepted = 0;
    let rejected = 0;
    let failed = false;
    let bound: BoundPod | undefined;
    let releaseSlot: () => void;
    try {
      releaseSlot = this.peers.openStream(peerKey(call));
      try {
        bound = this.bind("report", call, () => this.o.filterBinder.bindPeer(call.getPeer()));
      } catch (err) {
        releaseSlot();
        throw err;
      }
    } catch (err) {
      failed = true;
      callback(toStatus(err) as grpc.ServiceError, null);
      call.on("error", () => undefined);
      return;
    }
    call.on("close", releaseSlot);
    call.on("cancelled", releaseSlot);
    const identity = bound ? { namespace: bound.namespace, name: bound.name, ips: this.o.registry.get(bound.namespace, bound.name)?.ips ?? [bound.peer] } : undefined;
    call.on("data", (req) => {
      if (failed) return;
      const entries = req.events.length + (req.opened_connections?.length ?? 0);
      if (entries > this.limits.maxEventsPerBatch) {
        failed = true;
        callback(toStatus(new ControlError("EGRET_REPORT_BATCH_TOO_LARGE", `${entries} > ${this.limits.maxEventsPerBatch}`)) as grpc.ServiceError, null);
        return;
      }
      if (req.opened_connections?.length) this.o.bypass?.opened(req.opened_connections, identity);
      const r = this.o.reports.recordBatch(req.events, req.dropped_events, identity);
      accepted += r.accepted;
      rejected += r.rejected;
    });
    call.on("end", () => {
      releaseSlot();
      if (!failed) callback(null, { accepted_events: accepted, rejected_events: rejected });
    });
    call.on("error", () => undefined);
  }

  // ---- Observe -------------------------------------------------------------------------------

  private observe(call: grpc.ServerDuplexStream<ObserveRequest, unknown>): void {
    const stream = call as grpc.ServerDuplexStream<unknown, unknown>;
    if (this.shuttingDown) {
      call.emit("error", toStatus(new ControlError("EGRET_SHUTTING_DOWN")));
      return;
    }
    const releaseSlot = this.streamSlot(call);
    if (!releaseSlot) return;
    // Observations are accepted before the initial sync: the store is keyed by pod IP, and
    // dropping them would lose resolutions the agent will not resend.
    this.openCalls.add(stream);
    this.o.metrics.agentStreams.inc();
    const state: ObserveState = { lastSequence: 0, agentId: "" };
    let finished = false;
    let expiry: NodeJS.Timeout | undefined;
    const finish = (err?: unknown) => {
      if (finished) return;
      finished = true;
      clearTimeout(expiry);
      releaseSlot();
      this.openCalls.delete(stream);
      this.o.metrics.agentStreams.dec();
      if (state.tracked) this.o.agents?.close(state.tracked);
      if (err) call.emit("error", toStatus(err));
      else if (!call.cancelled) call.end();
    };
    // Batches wait for the authentication in order; nothing is applied before it succeeds.
    const authorization = call.metadata.get("authorization")[0];
    let identity: Promise<AgentIdentity | undefined> = this.authenticateAgent(typeof authorization === "string" ? authorization : undefined, call.getPeer()).then(
      (id) => {
        if (!finished) state.tracked = this.o.agents?.open(id.node);
        if (!finished) expiry = this.endAtExpiry(id, () => finish(new ControlError("EGRET_AGENT_TOKEN_EXPIRED", id.subject)));
        return id;
      },
      (err: unknown) => {
        finish(err);
        return undefined;
      },
    );
    call.on("data", (batch: ObserveRequest) => {
      identity = identity.then((id) => {
        if (!id) return id;
        // A batch that arrived is applied even if the stream ended meanwhile (the agent was
        // killed right after sending it): what was received is not lost.
        try {
          const ack = this.applyBatch(batch, id, state);
          if (!finished) call.write(ack);
        } catch (err) {
          finish(err);
        }
        return id;
      });
    });
    call.on("end", () => void identity.then(() => finish()));
    call.on("cancelled", () => finish());
    call.on("error", () => finish());
  }

  // ---- Egress (bypass detection) ----------------------------------------------------------------

  /**
   * An agent's Egress stream: authenticated like Observe and bound to the token's node; it
   * receives the connections filters reported for that node's pods, and sends bypass attempts
   * (accepted only for that node's pods). One response per request, with the counts.
   */
  private egress(call: grpc.ServerDuplexStream<EgressRequest, unknown>): void {
    const stream = call as grpc.ServerDuplexStream<unknown, unknown>;
    if (this.shuttingDown || !this.o.bypass) {
      call.emit("error", toStatus(new ControlError("EGRET_SHUTTING_DOWN")));
      return;
    }
    const bypass = this.o.bypass;
    this.openCalls.add(stream);
    let detach: (() => void) | undefined;
    let finished = false;
    let expiry: NodeJS.Timeout | undefined;
    const finish = (err?: unknown) => {
      if (finished) return;
      finished = true;
      clearTimeout(expiry);
      this.openCalls.delete(stream);
      detach?.();
      if (err) call.emit("error", toStatus(err));
      else if (!call.cancelled) call.end();
    };
    const authorization = call.metadata.get("authorization")[0];
    let identity: Promise<AgentIdentity | undefined> = this.authenticateAgent(typeof authorization === "string" ? authorization : undefined, call.getPeer()).then(
      (id) => {
        if (finished) return id;
        detach = bypass.attachAgent(id.node, { send: (covered) => void call.write({ covered_connections: covered }) });
        expiry = this.endAtExpiry(id, () => finish(new ControlError("EGRET_AGENT_TOKEN_EXPIRED", id.subject)));
        return id;
      },
      (err: unknown) => {
        finish(err);
        return undefined;
      },
    );
    call.on("data", (req: EgressRequest) => {
      identity = identity.then((id) => {
        if (!id || finished) return id;
        if (req.attempts.length > this.limits.maxEventsPerBatch) {
          finish(new ControlError("EGRET_REPORT_BATCH_TOO_LARGE", `${req.attempts.length} bypass attempts > ${this.limits.maxEventsPerBatch}`));
          return id;
        }
        if (req.attempts.length === 0 && req.dropped_attempts === 0) return id;
        const r = bypass.attempts(req.attempts, id.node, req.dropped_attempts);
        call.write({ accepted_attempts: r.accepted, rejected_attempts: r.rejected });
        return id;
      });
    });
    call.on("end", () => void identity.then(() => finish()));
    call.on("cancelled", () => finish());
    call.on("error", () => finish());
  }

  /** A stream never outlives its credential: ends it when the token expires (the agent reconnects with the rotated one). */
  private endAtExpiry(id: AgentIdentity, end: () => void): NodeJS.Timeout | undefined {
    if (id.expiresAtMs === undefined) return undefined;
    const timer = setTimeout(() => {
      this.o.metrics.agentStreamsExpired.inc();
      this.o.log.info({ subject: id.subject, node: id.node }, "observe: the agent's token expired; stream ended");
      end();
    }, Math.max(0, Math.min(id.expiresAtMs - (this.o.now ?? Date.now)(), 2 ** 31 - 1)));
    timer.unref?.();
    return timer;
  }

  private async authenticateAgent(authorization: string | undefined, peer: string): Promise<AgentIdentity> {
    try {
      const id = await this.o.agentAuth.authenticate(authorization);
      this.o.metrics.agentAuth.inc({ outcome: "ok" });
      return id;
    } catch (err) {
      const cause = err instanceof AuthFailure ? err.reason : "unavailable";
      this.o.metrics.agentAuth.inc({ outcome: cause });
      this.o.log.warn({ peer, cause, err: (err as Error).message }, "observe: agent not authenticated; stream refused");
      if (cause === "unavailable") throw new ControlError("EGRET_AGENT_AUTH_UNAVAILABLE", (err as Error).message);
      throw new ControlError("EGRET_AGENT_UNAUTHENTICATED", (err as Error).message);
    }
  }

  /** Applies one authenticated batch; returns its acknowledgement. */
  private applyBatch(batch: ObserveRequest, id: AgentIdentity, state: ObserveState) {
    if (!batch.agent_id) throw new ControlError("EGRET_OBSERVE_AGENT_ID_MISSING");
    if (batch.observations.length > this.limits.maxObservationsPerBatch) {
      throw new ControlError("EGRET_OBSERVE_BATCH_TOO_LARGE", `${batch.observations.length} > ${this.limits.maxObservationsPerBatch}`);
    }
    if (state.agentId && state.agentId !== batch.agent_id) this.o.log.warn({ agentId: state.agentId, now: batch.agent_id }, "observe: agent_id changed on one stream");
    state.agentId = batch.agent_id;
    if (state.lastSequence > 0 && batch.sequence > state.lastSequence + 1) {
      this.o.metrics.observeSequenceGaps.inc();
      this.o.log.warn({ agent: state.agentId, after: state.lastSequence, got: batch.sequence }, "observe: batches missing");
    }
    state.lastSequence = Math.max(state.lastSequence, batch.sequence);
    this.o.metrics.observeBatches.inc({ kind: batch.replay ? "replay" : "live" });
    let accepted = 0;
    let rejected = 0;
    const foreign: string[] = [];
    for (const obs of batch.observations) {
      const outcome = this.applyObservation(obs, id.node);
      this.o.metrics.observations.inc({ outcome });
      if (outcome === "stored" || outcome === "stale" || outcome === "negative" || outcome === "held") accepted++;
      else rejected++;
      if (outcome === "foreign_node") foreign.push(bytesToIp(obs.pod_ip) ?? "?");
    }
    if (foreign.length > 0) {
      this.o.metrics.foreignNodeObservations.inc({ agent_node: id.node }, foreign.length);
      this.o.log.warn(
        { agent: state.agentId, agentNode: id.node, subject: id.subject, rejected: foreign.length, podIps: [...new Set(foreign)].slice(0, 8) },
        "observe: observations for pods not scheduled on the agent's node rejected",
      );
    }
    this.o.metrics.heldObservations.set(this.o.nodeBinding.heldObservations);
    if (state.tracked) this.o.agents?.batch(state.tracked, batch.agent_id, batch.capture_drops ?? 0, accepted, rejected);
    return { acked_sequence: batch.sequence, accepted_observations: accepted, rejected_observations: rejected, server_id: this.o.serverId };
  }

  /** One observation: checked against the agent's node, then stored (or held until its pod is known). */
  private applyObservation(obs: ObserveRequest["observations"][number], node: string): string {
    if (obs.pod_ip.length !== 4 && obs.pod_ip.length !== 16) return "invalid";
    const owner = this.o.nodeBinding.classify(obs.pod_ip, node);
    if (owner === "foreign") return "foreign_node";
    if (obs.rcode === 0 && (obs.ech_public_names?.length ?? 0) > 0) return this.applyEchObservation(obs, owner, node);
    if (obs.rcode !== 0 || obs.answers.length === 0) {
      // Negative answers (NXDOMAIN/NODATA) attribute nothing; counted for visibility.
      return normalizeName(obs.query_name) === undefined ? "invalid" : "negative";
    }
    const record = () =>
      this.o.store.record(obs.pod_ip, {
        queryName: obs.query_name,
        cnameChain: obs.cname_chain,
        answers: obs.answers.map((a) => ({ ip: a.ip, ttlSeconds: a.ttl_seconds })),
        observedUnixMs: obs.observed_unix_ms,
      });
    if (owner === "unknown") return this.o.nodeBinding.hold(obs.pod_ip, node, () => void record()) ? "held" : "unknown_pod";
    return record();
  }

  /** An HTTPS/SVCB answer naming ECH public names (issue #14 ECH narrowing): kept per queried name. */
  private applyEchObservation(obs: ObserveRequest["observations"][number], owner: string, node: string): string {
    const record = () =>
      this.o.store.recordEch(obs.pod_ip, {
        queryName: obs.query_name,
        publicNames: obs.ech_public_names,
        ttlSeconds: obs.ech_ttl_seconds,
        observedUnixMs: obs.observed_unix_ms,
      });
    if (owner === "unknown") return this.o.nodeBinding.hold(obs.pod_ip, node, () => void record()) ? "held" : "unknown_pod";
    return record();
  }

  // ---- Binding ---------------------------------------------------------------------------------

  /** Runs a binding check, counting and logging the outcome; rethrows a refusal. */
  private bind<T extends BoundPod | undefined>(kind: FilterCall, call: { getPeer(): string }, check: () => T): T {
    try {
      const bound = check();
      this.o.metrics.filterBinding.inc({ call: kind, outcome: bound === undefined || !bound.verified ? "unverified_snat" : "bound" });
      return bound;
    } catch (err) {
      this.o.metrics.filterBinding.inc({ call: kind, outcome: "denied" });
      this.o.log.warn({ call: kind, peer: call.getPeer(), err: (err as Error).message }, "filter call refused: not from the pod it names");
      throw err;
    }
  }

  /** Ends a bound Watch when its pod stops owning the peer address; returns the unregister function. */
  private watchBinding(bound: BoundPod, end: () => void): () => void {
    const key = `${bound.namespace}/${bound.name}`;
    const recheck = () => {
      if (!this.o.filterBinder.stillHolds(bound)) end();
    };
    let set = this.boundWatches.get(key);
    if (!set) this.boundWatches.set(key, (set = new Set()));
    set.add(recheck);
    return () => {
      set.delete(recheck);
      if (set.size === 0) this.boundWatches.delete(key);
    };
  }

  /**
   * OperatorService under the same per-peer limits as everyone else's calls (any pod can reach
   * it): an ObserveVerdicts stream holds a stream slot until it ends, and a GetStatus call holds
   * one until it is answered (its token and access reviews are what costs).
   */
  private limitedOperator(h: OperatorServiceHandlers): OperatorServiceHandlers {
    return {
      ...h,
      ObserveVerdicts: (call) => {
        const release = this.streamSlot(call);
        if (!release) return;
        for (const event of ["finish", "close", "cancelled", "error"]) call.once(event, release);
        h.ObserveVerdicts(call);
      },
      GetStatus: (call, callback) => {
        let release: () => void;
        try {
          release = this.peers.openStream(peerKey(call));
        } catch (err) {
          callback(toStatus(err) as grpc.ServiceError, null);
          return;
        }
        h.GetStatus(call, (err, value) => {
          release();
          callback(err, value);
        });
      },
    };
  }

  /** A stream slot of the call's peer, or undefined after ending the call RESOURCE_EXHAUSTED. */
  private streamSlot(call: { getPeer(): string; emit(event: "error", status: unknown): boolean }): (() => void) | undefined {
    try {
      return this.peers.openStream(peerKey(call));
    } catch (err) {
      call.emit("error", toStatus(err));
      return undefined;
    }
  }

  /** grpc-js refuses an oversized message below the handlers: count it and answer with our code. */
  private countOversizedMessages(call: grpc.ServerInterceptingCallInterface): grpc.ServerInterceptingCall {
    type Status = { code: grpc.status; details: string; metadata: grpc.Metadata | null };
    const inner = call as unknown as { sendStatus(status: Status): void };
    const send = inner.sendStatus.bind(inner);
    inner.sendStatus = (status) => {
      if (status.code === grpc.status.RESOURCE_EXHAUSTED && /^Received message (that decompresses to a size )?larger than/.test(status.details)) {
        this.peers.messageTooLarge(peerKey(call));
        const ours = toStatus(new ControlError("EGRET_MESSAGE_TOO_LARGE", status.details));
        return send({ code: ours.code!, details: ours.details!, metadata: ours.metadata ?? null });
      }
      send(status);
    };
    return new grpc.ServerInterceptingCall(call);
  }

  private limitExceeded(kind: PeerLimitKind, peer: string): void {
    this.o.metrics.peerLimitExceeded.inc({ limit: kind });
    const key = `${kind}|${peer}`;
    const now = Date.now();
    if (now - (this.limitLogged.get(key) ?? -Infinity) < LIMIT_LOG_INTERVAL_MS) return;
    this.limitLogged.set(key, now);
    if (this.limitLogged.size > 10_000) this.limitLogged.clear();
    this.o.log.warn({ peer, limit: kind, limits: this.peers.limits }, "a peer exceeded a per-peer limit; refused (logged once per 10 s per peer and limit)");
  }

  private refuse(call: grpc.ServerDuplexStream<unknown, unknown>): boolean {
    const err = this.shuttingDown ? new ControlError("EGRET_SHUTTING_DOWN") : !this.o.isReady() ? new ControlError("EGRET_NOT_READY") : undefined;
    if (!err) return false;
    call.emit("error", toStatus(err));
    return true;
  }
}
