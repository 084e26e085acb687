// The slice of the policy module (control/src/policy/index.ts) the control service uses, as an
// injected interface: the service never validates or compiles policies itself.
import type { Diagnostic, Policy, PodIdentity } from "../policy/types.js";

export type { Diagnostic, Policy, PodIdentity };

export interface CompiledPod {
  bytes: Uint8Array;
  hash: string;
  selected: boolean;
  policies: string[];
  maxGraceSeconds?: number;
}

export interface PolicyApi {
  loadPolicyFiles(paths: string[]): { policies: Policy[]; diagnostics: Diagnostic[] };
  validatePolicyObject(obj: unknown, source?: { file?: string }): { policy?: Policy; diagnostics: Diagnostic[] };
  policySelectsPod(policy: Policy, pod: PodIdentity, namespaceLabels: Record<string, string>): boolean;
  compilePodSnapshot(policies: Policy[], pod: PodIdentity, namespaceLabels: Record<string, string>, options?: { clusterCidrs?: string[]; replaceDefaultClusterCidrs?: boolean }): CompiledPod;
  formatDiagnostic(d: Diagnostic): string;
}

import * as policy from "../policy/index.js";

/** The real policy module (control/src/policy/). */
export const defaultPolicyApi: PolicyApi = {
  loadPolicyFiles: (paths) => policy.loadPolicyFiles(paths),
  validatePolicyObject: (obj, source) => policy.validatePolicyObject(obj, source),
  policySelectsPod: (p, pod, ns) => policy.policySelectsPod(p, pod, ns),
  compilePodSnapshot: (ps, pod, ns, options) => policy.compilePodSnapshot(ps, pod, ns, options),
  formatDiagnostic: (d) => policy.formatDiagnostic(d),
};
