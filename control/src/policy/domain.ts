// Domain patterns: exact names, "*." (exactly one label) and "**." (one or more labels).
import { domainToASCII } from "node:url";
import type { DomainPattern } from "./types.js";
import type { ParseProblem } from "./network.js";

const LABEL = /^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$/;

function labelProblem(label: string, text: string): ParseProblem | undefined {
  if (label.length === 0) return { message: `"${text}" has an empty label (two dots in a row, or a leading dot)`, hint: "remove the extra dot" };
  if (label.length > 63) return { message: `"${text}" has a label longer than 63 characters`, hint: "DNS labels are at most 63 characters" };
  if (label.includes("*")) {
    return {
      message: `"${text}" has a wildcard that is not a whole leftmost label`,
      hint: "wildcards are only '*.' (exactly one label) or '**.' (one or more labels) at the start, e.g. *.example.com — partial labels (api-*.example.com) and inner wildcards (a.*.com) are not supported",
    };
  }
  if (label.startsWith("xn--") && domainToASCII(label) !== label) {
    return { message: `"${text}" has an invalid A-label "${label}" (not valid punycode)`, hint: "convert the internationalized name with an IDNA tool (e.g. node -p 'url.domainToASCII(\"bücher.example\")')" };
  }
  if (!LABEL.test(label)) {
    return { message: `"${text}" has an invalid label "${label}"`, hint: "labels use letters, digits and '-' (not at either end); write IDNs as A-labels (xn--…)" };
  }
  return undefined;
}

/** Parses and normalizes a domain pattern (lowercase, trailing dot removed). */
export function parseDomainPattern(input: string): DomainPattern | ParseProblem {
  const text = input.trim();
  if (/[^\x00-\x7f]/.test(text)) {
    const bare = text.replace(/^\*\*?\./, "");
    const ascii = domainToASCII(bare.replace(/\.$/, ""));
    const prefix = text.slice(0, text.length - bare.length);
    return {
      message: `"${input}" contains non-ASCII characters (a U-label)`,
      hint: ascii ? `write the IDN as its A-label: ${prefix}${ascii}` : "write internationalized names in their A-label (punycode, xn--…) form",
    };
  }
  let name = text.toLowerCase();
  if (name.endsWith(".")) name = name.slice(0, -1);
  if (name === "") return { message: "empty domain", hint: "write a name such as api.example.com" };
  if (name === "*" || name === "**") {
    return { message: `"${input}" would match every name`, hint: "to match any destination, leave out to.domains (or use to.cidrs 0.0.0.0/0 and ::/0); wildcards need a suffix, e.g. *.example.com" };
  }
  let kind: DomainPattern["kind"] = "exact";
  let suffix = name;
  if (name.startsWith("**.")) { kind = "multi-label"; suffix = name.slice(3); }
  else if (name.startsWith("*.")) { kind = "one-label"; suffix = name.slice(2); }
  if (name.includes("://") || name.includes("/") || name.includes(":")) {
    return { message: `"${input}" is not a DNS name (it looks like a URL or has a port)`, hint: "write only the host name, e.g. api.example.com; put ports in the rule's ports field" };
  }
  if (suffix.length > 253) return { message: `"${input}" is longer than 253 characters`, hint: "DNS names are at most 253 characters" };
  for (const label of suffix.split(".")) {
    const p = labelProblem(label, input);
    if (p) return p;
  }
  return { text: kind === "exact" ? suffix : `${kind === "one-label" ? "*" : "**"}.${suffix}`, kind, suffix };
}

/** Whether a normalized name (lowercase, no trailing dot) matches a pattern. Used by checks only; evaluation happens in the engine. */
export function patternMatchesName(p: DomainPattern, name: string): boolean {
  if (p.kind === "exact") return name === p.suffix;
  if (!name.endsWith(`.${p.suffix}`)) return false;
  const prefix = name.slice(0, name.length - p.suffix.length - 1);
  return prefix.length > 0 && (p.kind === "multi-label" || !prefix.includes("."));
}

/** Whether every name matched by `inner` is matched by `outer`. */
export function patternCovers(outer: DomainPattern, inner: DomainPattern): boolean {
  if (inner.kind === "exact") return patternMatchesName(outer, inner.suffix);
  if (outer.kind === "exact") return false;
  if (outer.kind === "one-label") return inner.kind === "one-label" && inner.suffix === outer.suffix;
  // outer "**.s" covers "*.t"/"**.t" when t == s or t ends with ".s".
  return inner.suffix === outer.suffix || inner.suffix.endsWith(`.${outer.suffix}`);
}
