// The policies in force. Each policy object (from Kubernetes or from files) is validated by the
// policy module; a valid one replaces the policy in force, an invalid one leaves the previous
// version in force (if any) and records why, for the status condition and the logs.
import type { Diagnostic, Policy, PolicyApi } from "./policy-api.js";

export interface PolicyState {
  /** "ClusterEgressPolicy/name" or "EgressPolicy/namespace/name". */
  key: string;
  kind: string;
  name: string;
  namespace?: string;
  generation?: number;
  /** The version in force (the latest valid one), if any. */
  active?: Policy;
  /** Set when the latest version is invalid: its error diagnostics, formatted. */
  invalid?: { messages: string[]; diagnostics: Diagnostic[] };
  /** Warnings of the latest version. */
  warnings: string[];
}

export type PolicyChange = { key: string; before?: Policy; after?: Policy };

export const policyKey = (kind: string, namespace: string | undefined, name: string) =>
  kind === "ClusterEgressPolicy" ? `${kind}/${name}` : `${kind}/${namespace ?? ""}/${name}`;

function specOf(p: Policy | undefined): string {
  if (!p) return "";
  const raw = p.raw as { spec?: unknown } | undefined;
  return JSON.stringify(raw?.spec ?? p);
}

interface ObjectMeta {
  kind?: string;
  metadata?: { name?: string; namespace?: string; generation?: number };
}

export class PolicyCatalog {
  private readonly states = new Map<string, PolicyState>();
  private readonly listeners = new Set<(changes: PolicyChange[]) => void>();
  private readonly stateListeners = new Set<(state: PolicyState) => void>();

  constructor(private readonly api: PolicyApi) {}

  /** Called with the policies whose version in force changed (one call per batch). */
  onChange(listener: (changes: PolicyChange[]) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Called whenever a policy's validation state changes (for status writers). */
  onState(listener: (state: PolicyState) => void): () => void {
    this.stateListeners.add(listener);
    return () => this.stateListeners.delete(listener);
  }

  /** Policies in force, in no particular order (the compiler orders them). */
  active(): Policy[] {
    const out: Policy[] = [];
    for (const s of this.states.values()) if (s.active) out.push(s.active);
    return out;
  }

  all(): PolicyState[] {
    return [...this.states.values()];
  }

  get(key: string): PolicyState | undefined {
    return this.states.get(key);
  }

  /** A policy object from Kubernetes (added or modified). */
  applyObject(obj: unknown): PolicyState {
    const meta = (obj ?? {}) as ObjectMeta;
    const kind = meta.kind ?? "EgressPolicy";
    const name = meta.metadata?.name ?? "";
    const namespace = meta.metadata?.namespace;
    const key = policyKey(kind, namespace, name);
    const { policy, diagnostics } = this.api.validatePolicyObject(obj);
    const errors = diagnostics.filter((d) => d.severity === "error");
    const previous = this.states.get(key);
    const state: PolicyState = {
      key,
      kind,
      name,
      namespace,
      generation: meta.metadata?.generation,
      active: policy && errors.length === 0 ? policy : previous?.active,
      invalid: policy && errors.length === 0 ? undefined : { messages: errors.map((d) => this.api.formatDiagnostic(d)), diagnostics: errors },
      warnings: diagnostics.filter((d) => d.severity === "warning").map((d) => this.api.formatDiagnostic(d)),
    };
    if (state.invalid && state.invalid.messages.length === 0) {
      state.invalid.messages.push("the policy module returned no policy and no error; treating it as invalid");
    }
    this.states.set(key, state);
    this.emitState(state);
    if (specOf(previous?.active) !== specOf(state.active)) this.emit([{ key, before: previous?.active, after: state.active }]);
    return state;
  }

  /** A policy object deleted from Kubernetes. */
  deleteObject(kind: string, namespace: string | undefined, name: string): void {
    const key = policyKey(kind, namespace, name);
    const previous = this.states.get(key);
    if (!previous) return;
    this.states.delete(key);
    if (previous.active) this.emit([{ key, before: previous.active }]);
  }

  /**
   * Replaces everything with what `loadPolicyFiles` returned. A file with errors keeps the
   * policies it had in force before (its valid documents are updated; the others stay as they
   * were) — the previous good version stays in force until the file is fixed.
   */
  replaceFromFiles(result: { policies: Policy[]; diagnostics: Diagnostic[] }): { errors: string[]; warnings: string[] } {
    const errorFiles = new Set<string>();
    const errors: string[] = [];
    const warnings: string[] = [];
    for (const d of result.diagnostics) {
      if (d.severity === "error") {
        errorFiles.add(d.file ?? "");
        errors.push(this.api.formatDiagnostic(d));
      } else warnings.push(this.api.formatDiagnostic(d));
    }
    const next = new Map<string, PolicyState>();
    for (const p of result.policies) {
      const key = policyKey(p.kind, p.namespace, p.name);
      next.set(key, { key, kind: p.kind, name: p.name, namespace: p.namespace, active: p, warnings: [] });
    }
    for (const [key, s] of this.states) {
      const file = s.active?.source.file ?? "";
      if (next.has(key) || !s.active || !errorFiles.has(file)) continue;
      const fileErrors = result.diagnostics.filter((d) => d.severity === "error" && (d.file ?? "") === file);
      next.set(key, { ...s, invalid: { messages: fileErrors.map((d) => this.api.formatDiagnostic(d)), diagnostics: fileErrors } });
    }
    const changes: PolicyChange[] = [];
    for (const [key, s] of next) {
      const before = this.states.get(key)?.active;
      if (specOf(before) !== specOf(s.active)) changes.push({ key, before, after: s.active });
    }
    for (const [key, s] of this.states) if (!next.has(key) && s.active) changes.push({ key, before: s.active });
    this.states.clear();
    for (const [key, s] of next) {
      this.states.set(key, s);
      this.emitState(s);
    }
    if (changes.length > 0) this.emit(changes);
    return { errors, warnings };
  }

  private emit(changes: PolicyChange[]): void {
    for (const l of this.listeners) l(changes);
  }

  private emitState(state: PolicyState): void {
    for (const l of this.stateListeners) l(state);
  }
}
