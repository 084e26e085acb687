// Writes each policy's status: Accepted condition (True, or False with the validator's
// message — the previous version staying in force is said in the message), selectedPods,
// ruleCount, observedGeneration. Debounced, and skipped when nothing changed, so status writes
// (which come back as watch events) cannot loop.
import type { Logger } from "../common/log.js";
import type { ControlMetrics } from "../control/metrics.js";
import type { PolicyApi } from "../control/policy-api.js";
import type { PolicyCatalog, PolicyState } from "../control/policies.js";
import type { PodRegistry } from "../control/pods.js";
import type { CoverageTracker, UnenforcedReason } from "../control/coverage.js";

export interface StatusCondition {
  type: "Accepted" | "Enforced";
  status: "True" | "False";
  reason: string;
  message: string;
  lastTransitionTime: string;
  observedGeneration?: number;
}

export interface PolicyStatus {
  observedGeneration?: number;
  selectedPods: number;
  /** Selected pods a connected filter enforces (coverage.ts); only with a coverage tracker. */
  enforcedPods?: number;
  /** Selected pods no filter enforces. */
  unenforcedPods?: number;
  /** The first UNENFORCED_LISTED of them, with the reason (the full list: control's /coverage). */
  unenforced?: { pod: string; reason: UnenforcedReason }[];
  ruleCount: number;
  /** conditions[0] is Accepted; Enforced follows when coverage is tracked. */
  conditions: StatusCondition[];
}

/** How many unenforced pods a policy's status names (the count is exact). */
export const UNENFORCED_LISTED = 20;

/** How the status reaches the API (client-node in production; a fake in unit tests). */
export interface StatusClient {
  patchStatus(kind: string, namespace: string | undefined, name: string, status: PolicyStatus): Promise<void>;
}

const MESSAGE_MAX = 4_000;

export class PolicyStatusWriter {
  private readonly dirty = new Set<string>();
  private readonly written = new Map<string, { key: string; transitions: Record<string, { at: string; status: string }> }>();
  private timer?: NodeJS.Timeout;
  private flushing = false;
  private readonly unsubscribe: (() => void)[] = [];

  constructor(
    private readonly o: {
      client: StatusClient;
      catalog: PolicyCatalog;
      registry: PodRegistry;
      policyApi: PolicyApi;
      log: Logger;
      metrics: ControlMetrics;
      debounceMs?: number;
      now?: () => number;
      /** Enforcement coverage: adds enforcedPods, unenforcedPods, unenforced and the Enforced condition. */
      coverage?: CoverageTracker;
      /** Whether this replica may write now (the leader); what is dirty meanwhile waits. Default: always. */
      canWrite?: () => boolean;
    },
  ) {
    if (o.coverage) this.unsubscribe.push(o.coverage.onChange((keys) => keys.forEach((k) => this.mark(k))));
    this.unsubscribe.push(
      o.catalog.onState((s) => this.mark(s.key)),
      // Selected-pod counts move with pods, labels and namespace labels. A pod change can only
      // move the count of policies that select it before or after; namespace changes (rare)
      // mark every policy.
      o.registry.onChange((c) => {
        for (const s of o.catalog.all()) {
          if (c.kind === "namespace" || !s.active) {
            if (c.kind === "namespace") this.mark(s.key);
            continue;
          }
          const ns = o.registry.namespaceLabels(c.before?.namespace ?? c.after!.namespace);
          const selects = (pod: typeof c.before) => {
            if (!pod) return false;
            try {
              return o.policyApi.policySelectsPod(s.active!, pod, ns);
            } catch {
              return true;
            }
          };
          if (selects(c.before) || selects(c.after)) this.mark(s.key);
        }
      }),
    );
  }

  close(): void {
    for (const u of this.unsubscribe) u();
    if (this.timer) clearTimeout(this.timer);
  }

  /** Computes the status a policy should have now. */
  statusOf(state: PolicyState, previous?: Record<string, { at: string; status: string }>): PolicyStatus {
    const active = state.active;
    let selected = 0;
    if (active) {
      for (const pod of this.o.registry.all()) {
        try {
          if (this.o.policyApi.policySelectsPod(active, pod, this.o.registry.namespaceLabels(pod.namespace))) selected++;
        } catch {
          /* counted as not selected; the compiler logs the same problem */
        }
      }
    }
    const accepted = state.invalid ? "False" : "True";
    let message: string;
    let reason: string;
    if (state.invalid) {
      reason = active ? "InvalidPreviousInForce" : "Invalid";
      message =
        state.invalid.messages.join("\n") +
        (active ? "\nThe previous valid version of this policy stays in force." : "\nThis policy is not in force.");
    } else {
      reason = "Accepted";
      message = state.warnings.length ? `accepted with warnings:\n${state.warnings.join("\n")}` : "the policy is valid and in force";
    }
    if (message.length > MESSAGE_MAX) message = message.slice(0, MESSAGE_MAX - 1) + "…";
    const transition = (type: string, status: string) =>
      previous?.[type]?.status === status ? previous[type].at : new Date((this.o.now ?? Date.now)()).toISOString();
    const conditions: StatusCondition[] = [
      { type: "Accepted", status: accepted, reason, message, lastTransitionTime: transition("Accepted", accepted), observedGeneration: state.generation },
    ];
    this.o.coverage?.refreshIfDirty();
    const coverage = this.o.coverage && active ? this.o.coverage.forPolicy(state.key) : undefined;
    if (this.o.coverage) {
      const c = coverage ?? { selected: 0, enforced: 0, unenforced: [] };
      const enforced = enforcedCondition(c);
      conditions.push({ ...enforced, lastTransitionTime: transition("Enforced", enforced.status), observedGeneration: state.generation });
      return {
        observedGeneration: state.generation,
        selectedPods: coverage ? c.selected : selected,
        enforcedPods: c.enforced,
        unenforcedPods: c.unenforced.length,
        unenforced: c.unenforced.slice(0, UNENFORCED_LISTED),
        ruleCount: active?.rules.length ?? 0,
        conditions,
      };
    }
    return { observedGeneration: state.generation, selectedPods: selected, ruleCount: active?.rules.length ?? 0, conditions };
  }

  private mark(key: string): void {
    this.dirty.add(key);
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.flush();
    }, this.o.debounceMs ?? 250);
    this.timer.unref?.();
  }

  /** Writes every dirty status that differs from what was last written. */
  /** Forgets what was written and marks every policy (a new leader reconciles every status). */
  rewriteAll(): void {
    this.written.clear();
    for (const s of this.o.catalog.all()) this.mark(s.key);
  }

  async flush(): Promise<void> {
    if (this.o.canWrite && !this.o.canWrite()) return; // not the leader: the dirty set waits
    if (this.flushing) {
      // A flush is running; run again after it.
      if (!this.timer) this.timer = setTimeout(() => ((this.timer = undefined), void this.flush()), this.o.debounceMs ?? 250);
      return;
    }
    this.flushing = true;
    try {
      const keys = [...this.dirty];
      this.dirty.clear();
      for (const key of keys) {
        const state = this.o.catalog.get(key);
        if (!state) {
          this.written.delete(key);
          continue;
        }
        const prev = this.written.get(key);
        const status = this.statusOf(state, prev?.transitions);
        const comparable = JSON.stringify({ ...status, conditions: status.conditions.map(({ lastTransitionTime: _t, ...c }) => c) });
        if (prev?.key === comparable) continue;
        try {
          await this.o.client.patchStatus(state.kind, state.namespace, state.name, status);
          const transitions = Object.fromEntries(status.conditions.map((c) => [c.type, { at: c.lastTransitionTime, status: c.status }]));
          this.written.set(key, { key: comparable, transitions });
          this.o.metrics.statusWrites.inc({ outcome: "ok" });
        } catch (err) {
          this.o.metrics.statusWrites.inc({ outcome: "error" });
          this.o.log.warn({ policy: key, err: err instanceof Error ? err.message : String(err) }, "writing policy status failed; will retry");
          this.mark(key);
        }
      }
    } finally {
      this.flushing = false;
    }
  }
}

/** The Enforced condition: True when every selected pod has a connected filter. */
function enforcedCondition(c: { selected: number; enforced: number; unenforced: { pod: string; reason: UnenforcedReason }[] }): Omit<StatusCondition, "lastTransitionTime"> {
  if (c.selected === 0) return { type: "Enforced", status: "True", reason: "NoPodsSelected", message: "the policy selects no pods" };
  if (c.unenforced.length === 0) return { type: "Enforced", status: "True", reason: "AllPodsEnforced", message: `all ${c.selected} selected pods have a connected egret filter` };
  const counts = new Map<UnenforcedReason, number>();
  for (const u of c.unenforced) counts.set(u.reason, (counts.get(u.reason) ?? 0) + 1);
  const parts = [...counts].map(([r, n]) => `${n} ${r}`).join(", ");
  const named = c.unenforced.slice(0, 5).map((u) => `${u.pod} (${u.reason})`).join(", ");
  const more = c.unenforced.length > 5 ? ` and ${c.unenforced.length - 5} more` : "";
  return {
    type: "Enforced",
    status: "False",
    reason: "PodsNotEnforced",
    message: `${c.unenforced.length} of ${c.selected} selected pods are not enforced (${parts}): ${named}${more}. Their egress is not checked by egret; see docs/operations.md "Coverage".`,
  };
}
