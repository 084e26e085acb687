// Kubernetes Events for denied (and would-deny) connections, on the pod, rate-limited: at most
// one Event per (pod, policy, rule, destination) per interval — later ones are counted into the
// next Event's message — and a global token bucket so a deny storm cannot flood the API server.
import type { Logger } from "../common/log.js";
import type { ControlMetrics } from "../control/metrics.js";
import type { AuditRecord, DenyEventSink } from "../control/reports.js";

export interface KubeEvent {
  namespace: string;
  podName: string;
  reason: "EgressDenied" | "EgressWouldDeny" | "EgressNotEnforced" | "EgressEnforced" | "EgressBypass";
  /** Warning unless said otherwise. */
  type?: "Warning" | "Normal";
  message: string;
  count: number;
  firstTimestamp: Date;
  lastTimestamp: Date;
}

export interface EventClient {
  createEvent(event: KubeEvent): Promise<void>;
}

export interface EventLimits {
  /** Per (pod, policy, rule, destination): one Event per this many ms. */
  perKeyIntervalMs: number;
  /** Global: this many Events per second on average … */
  ratePerSecond: number;
  /** … with bursts up to this many. */
  burst: number;
  /** Keys remembered (oldest forgotten first). */
  maxKeys: number;
}

export const DEFAULT_EVENT_LIMITS: EventLimits = { perKeyIntervalMs: 60_000, ratePerSecond: 5, burst: 20, maxKeys: 10_000 };

export class DenyEventRecorder implements DenyEventSink {
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

  denied(rec: AuditRecord): void {
    const slash = rec.pod.indexOf("/");
    if (slash <= 0) return;
    const namespace = rec.pod.slice(0, slash);
    const podName = rec.pod.slice(slash + 1);
    const now = this.now();
    const key = `${rec.pod}|${rec.policy}|${rec.rule}|${rec.dst}|${rec.verdict}`;
    const admitted = this.limiter.admitKey(key, now);
    if (!admitted) {
      this.metrics.kubeEvents.inc({ outcome: "rate_limited" });
      return;
    }
    const { count, first } = admitted;
    const names = rec.names.length ? ` (${rec.names.join(", ")})` : "";
    const by = rec.policy ? ` by ${rec.policy}${rec.rule ? ` rule ${rec.rule}` : ""}` : "";
    const verb = rec.verdict === "would-deny" ? "would deny (Monitor mode)" : "denied";
    const message = `egret ${verb} the connection to ${rec.dst}${names}${rec.protocol ? ` [${rec.protocol}]` : ""}: ${rec.reason}${by}${
      count > 1 ? ` (${count} times since ${new Date(first).toISOString()})` : ""
    }`;
    this.client
      .createEvent({
        namespace,
        podName,
        reason: rec.verdict === "would-deny" ? "EgressWouldDeny" : "EgressDenied",
        message,
        count,
        firstTimestamp: new Date(first),
        lastTimestamp: new Date(now),
      })
      .then(
        () => this.metrics.kubeEvents.inc({ outcome: "posted" }),
        (err: unknown) => {
          this.metrics.kubeEvents.inc({ outcome: "error" });
          this.log.warn({ err: err instanceof Error ? err.message : String(err), pod: rec.pod }, "posting a Kubernetes Event failed");
        },
      );
  }

}

/** The one rate limit for every Event recorder: a token bucket for all Events, and per key at most one
 * Event per interval, the suppressed ones counted into the next (oldest keys forgotten first). */
export class EventRateLimiter {
  private readonly keys = new Map<string, { last: number; suppressed: number; first: number }>();
  private tokens: number;
  private refilledAt: number;

  constructor(private readonly limits: EventLimits, now: number) {
    this.tokens = limits.burst;
    this.refilledAt = now;
  }

  /** An Event for `key` may go now: how many it stands for, since when; undefined: suppressed (counted). */
  admitKey(key: string, now: number): { count: number; first: number } | undefined {
    const entry = this.keys.get(key);
    if ((entry && now - entry.last < this.limits.perKeyIntervalMs) || !this.takeToken(now)) {
      if (entry) entry.suppressed++;
      return undefined;
    }
    const admitted = { count: 1 + (entry?.suppressed ?? 0), first: entry?.first ?? now };
    this.keys.delete(key);
    this.keys.set(key, { last: now, suppressed: 0, first: admitted.first });
    while (this.keys.size > this.limits.maxKeys) this.keys.delete(this.keys.keys().next().value!);
    return admitted;
  }

  takeToken(now: number): boolean {
    this.tokens = Math.min(this.limits.burst, this.tokens + ((now - this.refilledAt) / 1000) * this.limits.ratePerSecond);
    this.refilledAt = now;
    if (this.tokens < 1) return false;
    this.tokens--;
    return true;
  }
}
