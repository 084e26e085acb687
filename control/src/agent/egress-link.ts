// One agent → control replica AgentService.Egress stream (bypass detection): it brings back the
// connections a filter reported a verdict for on this node's pods (every replica sends those it
// received), and carries bypass reports (to one replica only, chosen by the agent: one audit line
// per bypass). Reconnects with jittered exponential backoff; a replica without the RPC
// (UNIMPLEMENTED: an older control) is retried at the longest backoff.
import * as grpc from "@grpc/grpc-js";
import type { Logger } from "../common/log.js";
import { bytesToIp, createAgentClient, ipToBytes, type AgentServiceClient, type BypassAttempt, type EgressKind as WireKind, type EgressRequest, type EgressResponse, type Outgoing } from "../proto/index.js";
import type { AgentCredentials } from "./credentials.js";
import type { EgressKind } from "./egress-classify.js";
import type { BypassReport } from "./egress-watch.js";
import { BACKOFF_JITTER, INITIAL_BACKOFF_MS, MAX_BACKOFF_MS } from "./replica-stream.js";

const WIRE_KIND: Record<EgressKind, WireKind> = {
  "tcp-syn": "EGRESS_KIND_TCP_SYN",
  "udp-quic": "EGRESS_KIND_UDP_QUIC",
  "udp-dns": "EGRESS_KIND_UDP_DNS",
  "udp-other": "EGRESS_KIND_UDP_OTHER",
};

export function bypassToProto(r: BypassReport): Outgoing<BypassAttempt> {
  return {
    pod_ip: ipToBytes(r.podIp),
    source_port: r.srcPort,
    destination_ip: ipToBytes(r.dstIp),
    destination_port: r.dstPort,
    kind: WIRE_KIND[r.kind],
    observed_unix_ms: Math.round(r.first),
    last_unix_ms: Math.round(r.last),
    packets: r.packets,
    detail: r.detail,
    interface_name: r.iface,
  };
}

export interface EgressLinkOptions {
  address: string;
  agentId: string;
  log: Logger;
  credentials?: AgentCredentials;
  connectTimeoutMs: number;
  /** A filter's verdict covers this connection (pod IP, destination, port). */
  onCovered(podIp: string, dstIp: string, dstPort: number): void;
  /** The stream came up or went down. */
  onState?(connected: boolean): void;
  createClient?(address: string): AgentServiceClient;
}

export class EgressLink {
  connected = false;
  sentAttempts = 0;
  private client?: AgentServiceClient;
  private call?: grpc.ClientDuplexStream<Outgoing<EgressRequest>, EgressResponse>;
  private backoffMs = INITIAL_BACKOFF_MS;
  private timer?: NodeJS.Timeout;
  private closed = false;

  constructor(private readonly o: EgressLinkOptions) {}

  get address(): string {
    return this.o.address;
  }

  start(): void {
    this.connect();
  }

  /** Sends bypass reports on this stream; false when it is not connected (the caller counts them dropped). */
  send(reports: BypassReport[], dropped: number): boolean {
    if (!this.call || !this.connected) return false;
    this.call.write({ agent_id: this.o.agentId, attempts: reports.map(bypassToProto), dropped_attempts: dropped });
    this.sentAttempts += reports.length;
    return true;
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.teardown();
  }

  private connect(): void {
    if (this.closed) return;
    const client = this.o.createClient ? this.o.createClient(this.o.address) : createAgentClient(this.o.address, this.o.credentials?.channel, this.o.credentials?.options);
    this.client = client;
    client.waitForReady(Date.now() + this.o.connectTimeoutMs, (err) => {
      if (this.closed || this.client !== client) return;
      if (err) return this.retry();
      this.open(client);
    });
  }

  private open(client: AgentServiceClient): void {
    let metadata: grpc.Metadata;
    try {
      metadata = this.o.credentials?.callMetadata() ?? new grpc.Metadata();
    } catch {
      return this.retry();
    }
    const call = client.Egress(metadata);
    this.call = call;
    this.connected = true;
    this.o.onState?.(true);
    // An empty first request opens the stream: the replica starts sending covered connections.
    call.write({ agent_id: this.o.agentId });
    call.on("data", (r: EgressResponse) => {
      this.backoffMs = INITIAL_BACKOFF_MS;
      for (const c of r.covered_connections) {
        const pod = bytesToIp(c.pod_ip);
        const dst = bytesToIp(c.destination_ip);
        if (pod !== undefined && dst !== undefined) this.o.onCovered(pod, dst, c.destination_port);
      }
    });
    const end = (err?: grpc.ServiceError) => {
      if (this.call !== call) return;
      if (err?.code === grpc.status.UNIMPLEMENTED) {
        this.o.log.warn({ replica: this.o.address }, "control replica has no Egress RPC (older version): no bypass detection through it");
        this.backoffMs = MAX_BACKOFF_MS;
      } else {
        this.o.log.debug({ replica: this.o.address, err: err?.message ?? "ended" }, "egress stream lost; reconnecting");
      }
      this.retry();
    };
    call.on("error", (err: grpc.ServiceError) => end(err));
    call.on("end", () => end());
  }

  private retry(): void {
    this.teardown();
    if (this.closed) return;
    const delay = this.backoffMs * (1 - BACKOFF_JITTER + Math.random() * 2 * BACKOFF_JITTER);
    this.backoffMs = Math.min(MAX_BACKOFF_MS, this.backoffMs * 2);
    this.timer = setTimeout(() => this.connect(), delay);
    this.timer.unref();
  }

  private teardown(): void {
    if (this.connected) {
      this.connected = false;
      this.o.onState?.(false);
    }
    const call = this.call;
    this.call = undefined;
    if (call) {
      call.removeAllListeners();
      call.on("error", () => undefined);
      call.cancel();
    }
    this.client?.close();
    this.client = undefined;
  }
}
