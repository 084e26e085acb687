// Public surface of the policy package (see README.md). Import from here only.
export * from "./types.js";
export { formatDiagnostic, didYouMean } from "./diagnostics.js";
export { loadPolicyFiles, loadPolicyText } from "./load.js";
export { validateWithContext, ruleCovers, isEgretDocument } from "./validate.js";
export { policySelectsPod, selectorMatches, orderPolicies, comparePolicies } from "./select.js";
export { compilePodSnapshot, encodeSnapshot, type CompiledSnapshot, type CompileOptions } from "./compile.js";
export { PolicyEngine, SnapshotRejected, type EvalRequest, type EvalResponse, type TraceStep, type Candidate } from "./engine.js";
export { PROTOCOL_LABELS } from "./protocols.js";
export { parseCidr, parseAddress, formatAddress, DEFAULT_CLUSTER_CIDRS, ALWAYS_INTERNAL, alwaysInternalEntry, effectiveClusterCidrs } from "./network.js";
export { crdSchema, CRD_FILES } from "./schema.js";

import type { Diagnostic, Policy } from "./types.js";
import { validateWithContext } from "./validate.js";

/** Validates one object (e.g. from the Kubernetes API) with the same validator as files. */
export function validatePolicyObject(obj: unknown, source?: { file?: string }): { policy?: Policy; diagnostics: Diagnostic[] } {
  return validateWithContext(obj, source?.file ? { file: source.file } : {});
}
