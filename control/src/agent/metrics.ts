// Prometheus metrics and health of the agent, served over HTTP (/metrics, /healthz). Counters are
// read from the components at scrape time (collect), so the packet path only bumps plain numbers.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import { REJECT_REASONS } from "../dns/observer.js";
import type { Agent } from "./agent.js";

export function createAgentMetrics(agent: Agent): { registry: Registry; batchLatency: Histogram<"replica"> } {
  const registry = new Registry();
  const counter = (name: string, help: string, value: () => number) =>
    new Counter({
      name, help, registers: [registry],
      collect() {
        this.reset();
        this.inc(value());
      },
    });
  const gauge = (name: string, help: string, value: () => number) =>
    new Gauge({ name, help, registers: [registry], collect() { this.set(value()); } });

  counter("egret_agent_frames_captured_total", "Frames read from the capture rings (after the kernel BPF filter).", () => agent.capturedFrames);
  counter("egret_agent_frames_truncated_total", "Frames longer than the capture buffer.", () => agent.truncatedFrames);
  counter("egret_agent_dns_messages_total", "DNS messages examined (UDP datagrams and TCP-framed messages).", () => agent.observer.stats.messages);
  counter("egret_agent_dns_queries_total", "DNS queries seen.", () => agent.observer.stats.queries);
  counter("egret_agent_answers_accepted_total", "Answers accepted as evidence.", () => agent.observer.stats.accepted);
  counter("egret_agent_answers_negative_total", "Accepted answers that were NXDOMAIN or NODATA.", () => agent.observer.stats.negative);
  new Counter({
    name: "egret_agent_rejected_total", help: "DNS messages rejected, by reason.", labelNames: ["reason"], registers: [registry],
    collect() {
      this.reset();
      for (const r of REJECT_REASONS) this.labels(r).inc(agent.observer.stats.rejected[r]);
    },
  });
  counter("egret_agent_queries_evicted_total", "Pending queries dropped by the per-pod or global cap.", () => agent.observer.stats.evictedQueries);
  counter("egret_agent_queries_expired_total", "Queries never answered within the timeout.", () => agent.observer.stats.expiredQueries);
  gauge("egret_agent_pending_queries", "Queries waiting for an answer.", () => agent.observer.pendingCount);
  counter("egret_agent_incomplete_datagrams_total", "UDP DNS datagrams dropped: cut by the snap length (IP fragments are reassembled first, see egret_agent_ip_*).", () => agent.pipeline.stats.incompleteDatagrams);
  counter("egret_agent_ip_fragments_total", "IP fragments taken into reassembly.", () => agent.fragments.stats.fragments);
  counter("egret_agent_ip_reassembled_total", "IP datagrams reassembled from fragments (then decoded like any packet).", () => agent.fragments.stats.reassembled);
  new Counter({
    name: "egret_agent_ip_fragments_dropped_total", help: "IP datagrams or fragments given up by reassembly, by reason (overlap: fragments overlapped or disagreed on the end, as the receiving kernel drops them too).",
    labelNames: ["reason"], registers: [registry],
    collect() {
      this.reset();
      const s = agent.fragments.stats;
      for (const [reason, n] of [["overlap", s.overlaps], ["duplicate", s.duplicates], ["malformed", s.malformed], ["too-many-fragments", s.tooManyFragments], ["timeout", s.timedOut], ["evicted", s.evicted]] as const) this.labels(reason).inc(n);
    },
  });
  gauge("egret_agent_ip_reassembly_bytes", "Fragment bytes held for reassembly (bounded per pod and in total).", () => agent.fragments.heldBytes);
  counter("egret_agent_tcp_overflows_total", "Partial DNS-over-TCP messages dropped: buffered-bytes budget exhausted.", () => agent.pipeline.stats.tcpOverflows);
  counter("egret_agent_tcp_gaps_total", "DNS-over-TCP streams that lost bytes in capture.", () => agent.pipeline.stats.tcpGaps);
  counter("egret_agent_wrong_direction_frames_total", "Frames dropped because their direction contradicts their ports (an answer leaving a pod, a query sent to one).", () => agent.wrongDirectionFrames);
  counter("egret_agent_capture_drops_total", "Frames the kernel accepted for the agent's capture but dropped because the capture ring was full (PACKET_STATISTICS tp_drops, summed over the capture sockets).", () => agent.captureKernelStats().drops);
  counter("egret_agent_capture_kernel_packets_total", "Frames the kernel's capture filter accepted for the agent, delivered or dropped (PACKET_STATISTICS tp_packets).", () => agent.captureKernelStats().packets);
  counter("egret_agent_capture_queue_drops_total", "Frames read from a capture ring but dropped because the agent's capture queue (--capture-queue-mb) was full: the event loop fell behind for longer than the queue holds.", () => agent.captureKernelStats().queueDrops);
  counter("egret_agent_capture_ring_full_total", "Times a capture ring was full (PACKET_STATISTICS tp_freeze_q_cnt): the agent fell behind.", () => agent.captureKernelStats().freezes);
  counter("egret_agent_internal_errors_total", "Frames whose processing failed with an internal error (a bug; see the log).", () => agent.internalErrors);
  gauge("egret_agent_capture_interfaces", "Interfaces being captured.", () => agent.captureInterfaces);
  gauge("egret_agent_observations_stored", "Still-valid observations held for replay.", () => agent.store.size);
  counter("egret_agent_observations_evicted_total", "Stored observations dropped by the per-pod or global cap.", () => agent.store.stats.evicted);
  gauge("egret_agent_observation_bytes", "Estimated heap bytes of the observations held for replay (bounded per pod and in total).", () => agent.store.stats.bytes);
  counter("egret_agent_observations_oversized_total", "Observations larger than a pod's whole replay share (never stored).", () => agent.store.stats.oversized);
  new Gauge({
    name: "egret_agent_replica_connected", help: "1 when the stream to the control replica is up.", labelNames: ["replica"], registers: [registry],
    collect() {
      this.reset();
      for (const r of agent.replicas()) this.labels(r.address).set(r.stats.connected ? 1 : 0);
    },
  });
  for (const [name, help, key] of [
    ["egret_agent_observations_sent_total", "Observations sent to a control replica (replays included).", "sent"],
    ["egret_agent_observations_acked_total", "Observations acknowledged by a control replica.", "acked"],
    ["egret_agent_observations_replayed_total", "Observations replayed to a control replica after a (re)connect.", "replayed"],
    ["egret_agent_observations_dropped_total", "Observations dropped from a full send queue (still replayed on reconnect).", "dropped"],
    ["egret_agent_observations_unsendable_total", "Observations larger than the batch byte limit on their own (dropped, never sent).", "oversized"],
    ["egret_agent_batches_refused_total", "Observe messages a control replica refused as too large (RESOURCE_EXHAUSTED); each halves the batch byte limit.", "refusedBatches"],
  ] as const) {
    new Counter({
      name, help, labelNames: ["replica"], registers: [registry],
      collect() {
        this.reset();
        for (const r of agent.replicas()) this.labels(r.address).inc(r.stats[key]);
      },
    });
  }
  agent.egress?.registerMetrics(registry);
  const batchLatency = new Histogram({
    name: "egret_agent_batch_latency_seconds", help: "Time from sending a batch to its acknowledgement.",
    labelNames: ["replica"], registers: [registry],
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
  });
  return { registry, batchLatency };
}

/**
 * Serves /metrics and /healthz on `port` (0 = any free port); resolves when listening. When the
 * port is taken and `onPortBusy` is given, resolves at once and keeps retrying every
 * `retryMs`: during a surge rollout the previous agent (same node, host network) holds the port
 * until it has drained, and capture must not wait for that.
 */
export async function serveMetrics(agent: Agent, registry: Registry, host: string, port: number, onPortBusy?: (err: Error) => void, retryMs = 500): Promise<{ server: Server; port: number }> {
  const server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    if (path === "/metrics") {
      registry.metrics().then((text) => {
        res.writeHead(200, { "content-type": registry.contentType });
        res.end(text);
      }, (err: Error) => {
        res.writeHead(500);
        res.end(err.message);
      });
      return;
    }
    if (path === "/healthz" || path === "/readyz") {
      const h = agent.health();
      res.writeHead(h.ok ? 200 : 503, { "content-type": "application/json" });
      res.end(JSON.stringify(h) + "\n");
      return;
    }
    res.writeHead(404);
    res.end("not found: try /metrics or /healthz\n");
  });
  const listen = () => new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => { server.off("error", reject); resolve(); });
  });
  try {
    await listen();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EADDRINUSE" || !onPortBusy || port === 0) throw err;
    onPortBusy(err as Error);
    const retry = (): void => {
      const t = setTimeout(() => listen().catch(retry), retryMs);
      t.unref();
    };
    retry();
    return { server, port };
  }
  return { server, port: (server.address() as AddressInfo).port };
}
