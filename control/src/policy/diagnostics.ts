// Diagnostic helpers: construction, "did you mean", and the one-line format printed by the CLI.
import type { Diagnostic, Severity } from "./types.js";

export function diag(severity: Severity, code: string, path: string, message: string, hint: string): Diagnostic {
  return { severity, code, path, message, hint };
}

/** Levenshtein distance (small strings only). */
export function editDistance(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let diagonal = prev[0]!;
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const up = prev[j]!;
      prev[j] = Math.min(up + 1, prev[j - 1]! + 1, diagonal + (a[i - 1] === b[j - 1] ? 0 : 1));
      diagonal = up;
    }
  }
  return prev[b.length]!;
}

/** The closest candidate to `word` (case-insensitive), if it is close enough to be a likely typo. */
export function didYouMean(word: string, candidates: readonly string[]): string | undefined {
  const w = word.toLowerCase();
  let best: string | undefined;
  let bestScore = Infinity;
  for (const c of candidates) {
    const cl = c.toLowerCase();
    const score = cl === w ? 0 : cl.startsWith(w) || w.startsWith(cl) ? 1 : editDistance(w, cl);
    if (score < bestScore) { bestScore = score; best = c; }
  }
  const limit = Math.max(2, Math.floor(w.length / 3));
  return best !== undefined && bestScore <= limit ? best : undefined;
}

/** "file:line:col: error: path: message (hint: …)" — the format `egret validate` prints. */
export function formatDiagnostic(d: Diagnostic): string {
  const where = d.file ? `${d.file}${d.line ? `:${d.line}${d.column ? `:${d.column}` : ""}` : ""}: ` : d.line ? `line ${d.line}: ` : "";
  const path = d.path ? `${d.path}: ` : "";
  return `${where}${d.severity}: ${path}${d.message}${d.hint ? `\n    hint: ${d.hint}` : ""}`;
}

/** Path segments ["spec","rules",2,"to"] → "spec.rules[2].to". */
export function formatPath(segments: readonly (string | number)[]): string {
  let out = "";
  for (const s of segments) {
    if (typeof s === "number") out += `[${s}]`;
    else out += out ? `.${s}` : s;
  }
  return out;
}

/** "spec.rules[2].to" → ["spec","rules",2,"to"]. */
export function parsePath(path: string): (string | number)[] {
  const out: (string | number)[] = [];
  for (const m of path.matchAll(/([^.[\]]+)|\[(\d+)\]/g)) {
    if (m[2] !== undefined) out.push(Number(m[2]));
    else if (m[1] !== undefined) out.push(m[1]);
  }
  return out;
}
