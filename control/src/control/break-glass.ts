// Break glass: a namespace label that changes enforcement at once, with no re-render and no pod
// restart (control recompiles the affected pods and pushes the new snapshots over Watch).
//   egret.dev/break-glass=monitor  every policy selecting the namespace's pods acts as Monitor
//   egret.dev/break-glass=exclude  the namespace's pods are not enforced at all
// Set on the mesh-wide namespace (control's own, egret-system by default), it applies to every
// pod in the mesh. Removing the label restores the policies as written.
import type { Policy } from "../policy/index.js";

export const BREAK_GLASS_LABEL = "egret.dev/break-glass";
export type BreakGlass = "monitor" | "exclude";

/** The label's meaning, or undefined for no label; `invalid` for any other value (logged, ignored). */
export function parseBreakGlass(labels: Record<string, string>): BreakGlass | "invalid" | undefined {
  const v = labels[BREAK_GLASS_LABEL];
  if (v === undefined) return undefined;
  return v === "monitor" || v === "exclude" ? v : "invalid";
}

/**
 * What applies to a pod in `namespace`: the stronger of its namespace's label and the mesh-wide
 * one (exclude beats monitor).
 */
export function breakGlassFor(namespace: string, meshNamespace: string | undefined, labelsOf: (ns: string) => Record<string, string>): BreakGlass | undefined {
  const own = parseBreakGlass(labelsOf(namespace));
  const mesh = meshNamespace !== undefined ? parseBreakGlass(labelsOf(meshNamespace)) : undefined;
  const modes = [own, mesh].filter((m): m is BreakGlass => m === "monitor" || m === "exclude");
  return modes.includes("exclude") ? "exclude" : modes.includes("monitor") ? "monitor" : undefined;
}

/** The policies to compile for a pod under `glass`. */
export function applyBreakGlass(policies: readonly Policy[], glass: BreakGlass | undefined): readonly Policy[] {
  if (glass === "exclude") return [];
  if (glass === "monitor") return policies.map((p) => (p.mode === "Monitor" ? p : { ...p, mode: "Monitor" as const }));
  return policies;
}
