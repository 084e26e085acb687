// A ControlSource from objects in memory (benchmarks, embedding, tests): pods, namespace
// labels and validated policies given up front; `update` replaces them later.
import type { Policy } from "./policy-api.js";
import type { PodRecord } from "./pods.js";
import type { ControlSource, SourceContext } from "./service.js";

export function memoryControlSource(initial: {
  pods: PodRecord[];
  namespaces?: Record<string, Record<string, string>>;
  policies?: Policy[];
}): ControlSource & { update(next: { pods?: PodRecord[]; namespaces?: Record<string, Record<string, string>>; policies?: Policy[] }): void } {
  let ctx: SourceContext | undefined;
  let state = { pods: initial.pods, namespaces: initial.namespaces ?? {}, policies: initial.policies ?? [] };
  const apply = () => {
    if (!ctx) return;
    ctx.catalog.replaceFromFiles({ policies: state.policies, diagnostics: [] });
    const namespaces = { ...state.namespaces };
    for (const p of state.pods) namespaces[p.namespace] ??= {};
    ctx.registry.replaceAll(state.pods, namespaces);
  };
  return {
    async start(c) {
      ctx = c;
      apply();
    },
    notReadyReason: () => undefined,
    close: () => undefined,
    update(next) {
      state = { pods: next.pods ?? state.pods, namespaces: next.namespaces ?? state.namespaces, policies: next.policies ?? state.policies };
      apply();
    },
  };
}
