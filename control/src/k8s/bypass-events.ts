// Kubernetes Events for bypass reports (control/src/control/bypass.ts), on the pod: `EgressBypass`
// (Warning), at most one per (pod, cause, protocol, destination) per interval — later ones are
// counted into the next Event's message — and a global token bucket, so a pod that sprays UDP at
// many destinations cannot flood the API server (the audit log and metrics still count each).
import type { Logger } from "../common/log.js";
import type { BypassEventSink, BypassRecord } from "../control/bypass.js";
import type { ControlMetrics } from "../control/metrics.js";
import { DEFAULT_EVENT_LIMITS, EventRateLimiter, type EventClient, type EventLimits } from "./events.js";

const CAUSE_TEXT: Record<string, string> = {
  "no-sidecar": "the pod has no Istio sidecar",
  "envoy-without-filter": "the pod's Envoy does not carry the egret filter",
  "filter-not-connected": "the pod's egret filter is not connected",
  "excluded-port": "the port is excluded from the sidecar (traffic.sidecar.istio.io/excludeOutboundPorts)",
  "excluded-range": "the address is excluded from the sidecar (traffic.sidecar.istio.io/excludeOutboundIPRanges)",
  "sidecar-skipped": "no filter verdict covers it: a process running as the proxy's UID, or changed traffic redirection",
  "udp-not-captured": "Istio's sidecar does not capture UDP",
};

export class BypassEventRecorder implements BypassEventSink {
  private readonly now: () => number;
  private readonly limiter: EventRateLimiter;

  constructor(
    private readonly client: EventClient,
    private readonly log: Logger,
    private readonly metrics: ControlMetrics,
    options: { limits?: Partial<EventLimits>; now?: () => number } = {},
  ) {
    this.now = options.now ?? Date.now;
    this.limiter = new EventRateLimiter({ ...DEFAULT_EVENT_LIMITS, ...options.limits }, this.now());
  }

  bypass(rec: BypassRecord): void {
    const slash = rec.pod.indexOf("/");
    if (slash <= 0) return;
    const now = this.now();
    const key = `${rec.pod}|${rec.cause}|${rec.protocol}|${rec.dst}`;
    const admitted = this.limiter.admitKey(key, now);
    if (!admitted) {
      this.metrics.kubeEvents.inc({ outcome: "rate_limited" });
      return;
    }
    const { count, first } = admitted;
    const what = rec.protocol === "dns" ? `a DNS query${rec.detail ? ` for ${rec.detail}` : ""} to ${rec.dst}` : rec.protocol === "quic" ? `QUIC (${rec.detail}) to ${rec.dst}` : `${rec.protocol.toUpperCase()} to ${rec.dst}`;
    const would = rec.verdict && rec.verdict !== "unknown" ? `; the policy would have decided ${rec.verdict} (${rec.reason}${rec.policy ? ` by ${rec.policy}${rec.rule ? ` rule ${rec.rule}` : ""}` : ""})` : "";
    const message = `egret saw egress that bypassed the sidecar: ${what} (${rec.cause}: ${CAUSE_TEXT[rec.cause] ?? rec.cause})${would}${count > 1 ? ` (${count} times since ${new Date(first).toISOString()})` : ""}`;
    this.client
      .createEvent({ namespace: rec.pod.slice(0, slash), podName: rec.pod.slice(slash + 1), reason: "EgressBypass", type: "Warning", message, count, firstTimestamp: new Date(first), lastTimestamp: new Date(now) })
      .then(
        () => this.metrics.kubeEvents.inc({ outcome: "posted" }),
        (err: unknown) => {
          this.metrics.kubeEvents.inc({ outcome: "error" });
          this.log.warn({ err: err instanceof Error ? err.message : String(err), pod: rec.pod }, "posting a bypass Event failed");
        },
      );
  }

}
