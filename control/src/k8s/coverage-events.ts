// Kubernetes Events for enforcement coverage (control/src/control/coverage.ts), on the pod:
// `EgressNotEnforced` (Warning) when a selected pod stayed unenforced past the grace period,
// `EgressEnforced` (Normal) when a filter enforces it again. The tracker announces each
// transition once; a global token bucket (the deny Events' limits) keeps a rollout of many
// unenforced pods from flooding the API server — what it holds back is counted, never queued.
import type { Logger } from "../common/log.js";
import type { CoverageEventSink, PodCoverage } from "../control/coverage.js";
import type { ControlMetrics } from "../control/metrics.js";
import { DEFAULT_EVENT_LIMITS, EventRateLimiter, type EventClient, type EventLimits, type KubeEvent } from "./events.js";

const WHY: Record<string, string> = {
  "no-sidecar": "the pod has no Istio sidecar (namespace not injected, or injection disabled)",
  "envoy-without-filter": "the pod's Envoy does not carry the egret filter (the EnvoyFilter's workloadSelector leaves it out)",
  "filter-not-connected": "no egret filter is connected to control for this pod",
};

export class CoverageEventRecorder implements CoverageEventSink {
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

  notEnforced(p: PodCoverage): void {
    const message = `egret does not enforce egress policy for this pod (${p.reason}): ${WHY[p.reason ?? ""] ?? p.reason}. Selected by ${p.policies.join(", ")}.`;
    this.post({ namespace: p.namespace, podName: p.name, reason: "EgressNotEnforced", type: "Warning", message });
  }

  enforcedAgain(p: PodCoverage): void {
    this.post({ namespace: p.namespace, podName: p.name, reason: "EgressEnforced", type: "Normal", message: `an egret filter enforces egress policy for this pod again (${p.filters} connected)` });
  }

  private post(e: Omit<KubeEvent, "count" | "firstTimestamp" | "lastTimestamp">): void {
    const now = this.now();
    if (!this.limiter.takeToken(now)) {
      this.metrics.kubeEvents.inc({ outcome: "rate_limited" });
      return;
    }
    this.client.createEvent({ ...e, count: 1, firstTimestamp: new Date(now), lastTimestamp: new Date(now) }).then(
      () => this.metrics.kubeEvents.inc({ outcome: "posted" }),
      (err: unknown) => {
        this.metrics.kubeEvents.inc({ outcome: "error" });
        this.log.warn({ err: err instanceof Error ? err.message : String(err), pod: `${e.namespace}/${e.podName}` }, "posting a coverage Event failed");
      },
    );
  }

}
