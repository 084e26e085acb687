// Sibling names collapsed into wildcards: `*.S` when at least `minSiblings` distinct names are
// exactly one label under S, `**.S` when they are at several depths — never for an S above the
// registrable domain (public suffix list from the `tldts` package, private suffixes included, so
// `*.github.io` or `*.co.uk` is never learnt). The apex S itself is never implied.
import { getDomain } from "tldts";

export function registrableDomain(name: string): string | null {
  return getDomain(name, { allowPrivateDomains: true });
}

/** Returns the patterns covering `names` (sorted, unique) and which names each pattern covers. */
export function collapseNames(names: Iterable<string>, minSiblings: number): Map<string, string[]> {
  const remaining = new Set(names);
  const out = new Map<string, string[]>();
  if (minSiblings < 2) minSiblings = 2;
  // Candidate suffixes: every proper suffix of a name at or below its registrable domain, deepest first.
  const candidates = new Map<string, Set<string>>();
  for (const n of remaining) {
    const reg = registrableDomain(n);
    if (!reg) continue;
    const labels = n.split(".");
    for (let i = 1; i < labels.length; i++) {
      const suffix = labels.slice(i).join(".");
      if (suffix.length < reg.length) break;
      if (!candidates.has(suffix)) candidates.set(suffix, new Set());
      candidates.get(suffix)!.add(n);
    }
  }
  const ordered = [...candidates.keys()].sort((a, b) => b.split(".").length - a.split(".").length || (a < b ? -1 : 1));
  for (const suffix of ordered) {
    const under = [...candidates.get(suffix)!].filter((n) => remaining.has(n));
    if (under.length < minSiblings) continue;
    const depth = suffix.split(".").length;
    const oneLabel = under.every((n) => n.split(".").length === depth + 1);
    out.set(`${oneLabel ? "*" : "**"}.${suffix}`, under.sort());
    for (const n of under) remaining.delete(n);
  }
  for (const n of remaining) out.set(n, [n]);
  return new Map([...out.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}
