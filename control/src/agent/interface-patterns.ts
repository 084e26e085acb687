// `--interface` values: checked when the agent starts, so a pattern written for another tool
// (iptables' and Calico's `veth+`, a regular expression, a comma list) is an error that says what
// to write instead, not a capture that silently matches nothing and a failing health probe.
// Patterns are shell-style globs: `*` any run of characters, `?` one character; nothing else is
// special. "any" is libpcap's all-interfaces device.

/** Linux interface names are at most IFNAMSIZ - 1 = 15 bytes. */
const MAX_NAME = 15;

/** Why `value` is not a usable --interface pattern, or undefined when it is. */
export function interfacePatternError(value: string): string | undefined {
  const shown = JSON.stringify(value);
  if (value === "") return `--interface "": empty; give an interface name or a pattern such as "veth*"`;
  const words = value.split(/[\s,]+/).filter(Boolean);
  if (words.length > 1) {
    return `--interface ${shown}: one pattern per flag; write ${words.map((w) => `--interface ${suggestion(w)}`).join(" ")}`;
  }
  if (value.endsWith("+")) {
    return `--interface ${shown}: "+" is not a wildcard here (it is in iptables and Calico); only "*" and "?" are — write "${value.slice(0, -1)}*"`;
  }
  if (/[\\^$[\]{}()|+]/.test(value) || value.includes(".*")) {
    return `--interface ${shown}: not a regular expression; only "*" (any characters) and "?" (one character) are wildcards — e.g. "${suggestion(value)}"`;
  }
  if (value.includes("/")) return `--interface ${shown}: an interface name cannot contain "/"`;
  if (!/[*?]/.test(value) && value !== "any" && Buffer.byteLength(value) > MAX_NAME) {
    return `--interface ${shown}: longer than ${MAX_NAME} bytes, so no Linux interface has this name`;
  }
  return undefined;
}

/** What the user most likely meant, as a glob. */
function suggestion(value: string): string {
  const glob = value.replace(/\.\*/g, "*").replace(/\+$/, "*").replace(/[\\^$[\]{}()|+]/g, "");
  return glob === "" ? "veth*" : glob;
}

export function globMatches(pattern: string, name: string): boolean {
  const re = new RegExp(`^${pattern.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".")}$`);
  return re.test(name);
}

export interface InterfaceCheck {
  /** Patterns that match none of the node's interfaces right now. */
  unmatched: string[];
  /** Set when the patterns together match nothing: the agent would capture nothing. */
  error?: string;
}

/**
 * Checks the patterns against the node's interfaces at start. Together they must match at least
 * one (else the agent would capture nothing and fail its probe); a single pattern that matches
 * nothing while others do is reported (a list written for several CNIs, say `cali*` on a Cilium
 * node) but not an error, since pods and their interfaces come and go.
 */
export function checkInterfacePatterns(patterns: readonly string[], available: readonly string[]): InterfaceCheck {
  if (patterns.includes("any")) return { unmatched: [] };
  const unmatched = patterns.filter((p) => !available.some((name) => globMatches(p, name)));
  if (unmatched.length < patterns.length) return { unmatched };
  const list = [...available].sort().join(", ") || "(none)";
  return {
    unmatched,
    error: `--interface ${patterns.map((p) => JSON.stringify(p)).join(" ")} matches no interface on this node (it has: ${list}); ` +
      `give a pattern for the pods' interfaces (Calico "cali*", Cilium "lxc*", bridge/ptp CNIs "veth*") or --interface any`,
  };
}
