// IP addresses and CIDRs as 128-bit integers (IPv4 mapped into ::ffff:0:0/96, as the snapshot
// and the engine represent them).
import { isIPv4, isIPv6 } from "node:net";
import type { Network } from "./types.js";

const V4_MAPPED = 0xffffn << 32n;
const ALL_ONES = (1n << 128n) - 1n;

export interface ParseProblem { message: string; hint: string }

function parseV4(text: string): bigint {
  return text.split(".").reduce((acc, part) => (acc << 8n) | BigInt(Number(part)), 0n);
}

function parseV6(text: string): bigint {
  let head = text;
  let tailV4: bigint | undefined;
  const lastColon = text.lastIndexOf(":");
  if (text.slice(lastColon + 1).includes(".")) {
    tailV4 = parseV4(text.slice(lastColon + 1));
    head = text.slice(0, lastColon + 1) + "0:0";
  }
  const [left, right] = head.includes("::") ? head.split("::") as [string, string] : [head, undefined];
  const l = left ? left.split(":") : [];
  const r = right !== undefined && right !== "" ? right.split(":") : [];
  const groups = right === undefined ? l : [...l, ...Array(8 - l.length - r.length).fill("0"), ...r];
  let v = groups.reduce((acc, g) => (acc << 16n) | BigInt(parseInt(g, 16)), 0n);
  if (tailV4 !== undefined) v = (v & ~0xffffffffn) | tailV4;
  return v;
}

/** Parses an IPv4 or IPv6 address into the 128-bit space; undefined if it is not one. */
export function parseAddress(text: string): { address: bigint; family: 4 | 6 } | undefined {
  if (isIPv4(text)) return { address: V4_MAPPED | parseV4(text), family: 4 };
  if (isIPv6(text)) {
    const a = parseV6(text);
    return (a >> 32n) === 0xffffn ? { address: a, family: 4 } : { address: a, family: 6 };
  }
  return undefined;
}

export function formatAddress(address: bigint, family: 4 | 6): string {
  if (family === 4) return [24n, 16n, 8n, 0n].map((s) => String((address >> s) & 0xffn)).join(".");
  const groups: string[] = [];
  for (let s = 112n; s >= 0n; s -= 16n) groups.push(((address >> s) & 0xffffn).toString(16));
  // Compress the longest run of zero groups.
  let best = -1, bestLen = 0;
  for (let i = 0; i < 8;) {
    if (groups[i] !== "0") { i++; continue; }
    let j = i;
    while (j < 8 && groups[j] === "0") j++;
    if (j - i > bestLen && j - i > 1) { best = i; bestLen = j - i; }
    i = j;
  }
  if (best < 0) return groups.join(":");
  return `${groups.slice(0, best).join(":")}::${groups.slice(best + bestLen).join(":")}`;
}

export function maskOf(prefix: number): bigint {
  return prefix === 0 ? 0n : (ALL_ONES << BigInt(128 - prefix)) & ALL_ONES;
}

/** Parses "10.0.0.0/8", "2001:db8::/32", or a bare address (a /32 or /128). */
export function parseCidr(text: string): Network | ParseProblem {
  const trimmed = text.trim();
  const slash = trimmed.indexOf("/");
  const addrText = slash < 0 ? trimmed : trimmed.slice(0, slash);
  const parsed = parseAddress(addrText);
  if (!parsed) {
    return { message: `"${text}" is not an IPv4 or IPv6 network`, hint: "write a network such as 10.0.0.0/8, 203.0.113.7/32 or 2001:db8::/32 (DNS names go in to.domains)" };
  }
  const max = parsed.family === 4 && isIPv4(addrText) ? 32 : 128;
  let bits = max;
  if (slash >= 0) {
    const p = trimmed.slice(slash + 1);
    if (!/^\d{1,3}$/.test(p) || Number(p) > max) {
      return { message: `"${text}" has an invalid prefix length "/${p}" (0…${max} for IPv${max === 32 ? 4 : 6})`, hint: `use a prefix length from 0 to ${max}` };
    }
    bits = Number(p);
  }
  const prefix = max === 32 ? bits + 96 : bits;
  if (parsed.family === 4 && prefix < 96) {
    return { message: `"${text}" reaches outside the IPv4-mapped range ::ffff:0:0/96`, hint: "write IPv4 networks in dotted form, e.g. 10.0.0.0/8" };
  }
  const mask = maskOf(prefix);
  const network = parsed.address & mask;
  if (network !== parsed.address) {
    const shown = parsed.family === 4 ? `${formatAddress(network, 4)}/${prefix - 96}` : `${formatAddress(network, 6)}/${prefix}`;
    return { message: `"${text}" has host bits set`, hint: `did you mean ${shown}? (the network address of that range)` };
  }
  return { text: trimmed, family: parsed.family, address: network, prefix };
}

export function isProblem<T extends object>(x: T | ParseProblem): x is ParseProblem {
  return (x as ParseProblem).message !== undefined;
}

/** Whether network `inner` lies entirely inside `outer`. */
export function networkContains(outer: Network, inner: Network): boolean {
  if (outer.family !== inner.family || inner.prefix < outer.prefix) return false;
  return (inner.address & maskOf(outer.prefix)) === outer.address;
}

export function networksOverlap(a: Network, b: Network): boolean {
  return networkContains(a, b) || networkContains(b, a);
}

export function addressInNetwork(address: bigint, family: 4 | 6, n: Network): boolean {
  return n.family === family && (address & maskOf(n.prefix)) === n.address;
}

/** Splits a 128-bit address into the two u64 halves the engine takes. */
export function halves(address: bigint): [bigint, bigint] {
  return [(address >> 64n) & 0xffffffffffffffffn, address & 0xffffffffffffffffn];
}

/**
 * Never "external", whatever `--cluster-cidr` says: reaching these from a pod is reaching the
 * node or the cloud provider, not the internet. Every snapshot carries them (compile.ts), so an
 * `external: true` Allow can never open the cloud metadata service.
 */
export const ALWAYS_INTERNAL: readonly { cidr: string; what: string }[] = [
  { cidr: "0.0.0.0/8", what: "\"this network\" (0.0.0.0 reaches the pod itself on Linux)" },
  { cidr: "127.0.0.0/8", what: "IPv4 loopback" },
  { cidr: "169.254.0.0/16", what: "IPv4 link-local, including the cloud metadata service 169.254.169.254 (AWS, GCP, Azure, OCI, OpenStack) and 169.254.170.2 (ECS task credentials)" },
  { cidr: "100.100.100.200/32", what: "Alibaba Cloud metadata service" },
  { cidr: "::/128", what: "IPv6 unspecified address" },
  { cidr: "::1/128", what: "IPv6 loopback" },
  { cidr: "fe80::/10", what: "IPv6 link-local (OpenStack metadata fe80::a9fe:a9fe)" },
  { cidr: "fd00:ec2::254/128", what: "AWS IPv6 metadata service (IMDS)" },
  { cidr: "fd00:ec2::23/128", what: "AWS IPv6 DNS resolver and time service" },
];

/** Cloud metadata service addresses: the targets of credential theft from a pod. */
export const METADATA_ADDRESSES: readonly string[] = ["169.254.169.254", "169.254.170.2", "100.100.100.200", "fd00:ec2::254"];

/** The first metadata address a CIDR (minus its except blocks) lets through; undefined if none. */
export function metadataAddressIn(net: Network, except: readonly Network[]): string | undefined {
  return METADATA_ADDRESSES.find((ip) => {
    const a = parseAddress(ip)!;
    return addressInNetwork(a.address, a.family, net) && !except.some((e) => addressInNetwork(a.address, a.family, e));
  });
}

/** The entry of ALWAYS_INTERNAL that holds `ip`, for explanations; undefined when none does. */
export function alwaysInternalEntry(ip: string): { cidr: string; what: string } | undefined {
  const a = parseAddress(ip);
  if (!a) return undefined;
  return ALWAYS_INTERNAL.find((e) => {
    const n = parseCidr(e.cidr) as Network;
    return addressInNetwork(a.address, a.family, n);
  });
}

/**
 * What `external` excludes: the always-internal ranges, plus the defaults unless the operator
 * explicitly replaces them, plus the configured cluster CIDRs.
 */
export function effectiveClusterCidrs(configured: readonly string[] | undefined, replaceDefaults = false): string[] {
  const base = replaceDefaults ? [] : DEFAULT_CLUSTER_CIDRS;
  return [...new Set([...ALWAYS_INTERNAL.map((e) => e.cidr), ...base, ...(configured ?? [])])];
}

/** Cluster CIDRs assumed besides the configured ones (what `external` excludes). */
export const DEFAULT_CLUSTER_CIDRS: readonly string[] = [
  "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
  "fc00::/7", "fe80::/10", "::1/128",
];
