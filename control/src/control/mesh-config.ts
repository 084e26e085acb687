// Mesh configuration as evidence: Istio ServiceEntries (networking.istio.io) → which hosts an
// address stands for, and which namespaces may use that.
//
// With Istio's DNS proxy (ISTIO_META_DNS_CAPTURE) the pod's istio-agent answers ServiceEntry hosts
// itself, so no DNS answer for them ever crosses the node: the only evidence that 240.240.0.7 is
// api.example.com is the mesh configuration that made istio-agent say so and makes Envoy route the
// address. A pod cannot write a ServiceEntry, and only its sidecar routes such an address, so the
// hosts of a ServiceEntry declaring or allocated the address are candidate names for it — marked
// NAME_SOURCE_MESH_CONFIG, never mistaken for the pod's own DNS.
//
// Which addresses count (Istio's own rules, pilot/pkg/serviceregistry/serviceentry/conversion.go
// convertServices and pilot/pkg/networking/serviceentry/ip_autoallocation.go, istio HEAD 2026-08
// and 1.25–1.29; see docs/operations.md "Istio DNS proxying"):
//   - spec.addresses, when present: every host gets every address; a CIDR of one address is that
//     address; wider CIDRs are not names' addresses (the DNS proxy never answers them) — ignored.
//   - otherwise status.addresses [{value, host}] written by istiod's IP auto-allocation controller,
//     used only where istiod uses them: resolution is not NONE and the label
//     networking.istio.io/enable-autoallocate-ip is not "false".
//   - wildcard hosts ("*.example.com") are never candidates: they name no single host.
// Visibility follows exportTo like Istio's: "*" all namespaces, "." the ServiceEntry's own,
// "~" none, else the listed namespaces; empty means the mesh default (`defaultExportTo`, "*"
// unless meshConfig.defaultServiceExportTo says otherwise).
import { bytesToIp, ipToBytes } from "../proto/ip.js";
import type { Resolution, ResolvedName } from "../proto/messages.js";
import { normalizeName } from "./store.js";

/** Expiry sent for mesh-configuration names: they last as long as their ServiceEntry (year 9999). */
export const MESH_CONFIG_EXPIRY_MS = 253_402_300_799_000;
/** Hosts one address stands for, at most (more are dropped and counted). */
export const MAX_MESH_NAMES_PER_IP = 16;

export const AUTOALLOCATE_LABEL = "networking.istio.io/enable-autoallocate-ip";

/** One ServiceEntry reduced to what evidence needs. */
export interface MeshEntry {
  /** "namespace/name". */
  ref: string;
  namespace: string;
  /** exportTo as written (empty: the mesh default applies). */
  exportTo: string[];
  /** Address text (canonical) → the hosts it stands for. */
  addresses: Map<string, { bytes: Uint8Array; hosts: string[] }>;
  /** What was left out, for operators (wildcard hosts, CIDR ranges, unparsable values). */
  ignored: string[];
}

export type MeshConfigListener = (changedIps: Map<string, Uint8Array>) => void;

export interface MeshConfigCounters {
  /** ServiceEntries whose shape could not be read at all (not an object, no name/namespace). */
  rejected: number;
  /** Names left out because an address already had MAX_MESH_NAMES_PER_IP. */
  truncatedNames: number;
}

/** Reads one ServiceEntry object (Kubernetes shape); a string says why it is unusable. */
export function parseServiceEntry(obj: unknown): MeshEntry | string {
  if (typeof obj !== "object" || obj === null) return "not an object";
  const o = obj as { metadata?: { name?: unknown; namespace?: unknown; labels?: unknown }; spec?: unknown; status?: unknown };
  const name = o.metadata?.name;
  const namespace = o.metadata?.namespace;
  if (typeof name !== "string" || name === "" || typeof namespace !== "string" || namespace === "") return "metadata.name and metadata.namespace are required";
  const spec = (typeof o.spec === "object" && o.spec !== null ? o.spec : {}) as Record<string, unknown>;
  const labels = (typeof o.metadata?.labels === "object" && o.metadata.labels !== null ? o.metadata.labels : {}) as Record<string, unknown>;
  const ref = `${namespace}/${name}`;
  const entry: MeshEntry = { ref, namespace, exportTo: strings(spec.exportTo), addresses: new Map(), ignored: [] };
  const hosts: string[] = [];
  for (const h of strings(spec.hosts)) {
    const n = normalizeName(h);
    if (n === undefined) entry.ignored.push(`host ${JSON.stringify(h)}: not a DNS name`);
    else if (n.includes("*")) entry.ignored.push(`host ${n}: wildcard hosts name no single host`);
    else hosts.push(n);
  }
  const add = (text: string, host: string) => {
    const ip = addressOf(text);
    if (ip === undefined) {
      const why = `address ${JSON.stringify(text)}: not a single IP address (CIDR ranges are never DNS answers)`;
      if (!entry.ignored.includes(why)) entry.ignored.push(why);
      return;
    }
    const key = bytesToIp(ip)!;
    let slot = entry.addresses.get(key);
    if (!slot) entry.addresses.set(key, (slot = { bytes: ip, hosts: [] }));
    if (!slot.hosts.includes(host)) slot.hosts.push(host);
  };
  const declared = strings(spec.addresses);
  if (declared.length > 0) {
    for (const host of hosts) for (const a of declared) add(a, host);
    return entry;
  }
  if (!usesAllocatedAddresses(spec, labels)) return entry;
  const status = (typeof o.status === "object" && o.status !== null ? o.status : {}) as { addresses?: unknown };
  if (!Array.isArray(status.addresses)) return entry;
  for (const a of status.addresses) {
    if (typeof a !== "object" || a === null) continue;
    const { value, host } = a as { value?: unknown; host?: unknown };
    if (typeof value !== "string" || typeof host !== "string") continue;
    const h = normalizeName(host);
    // istiod allocates for the ServiceEntry's own hosts; anything else in status is not ours to trust.
    if (h === undefined || !hosts.includes(h)) {
      entry.ignored.push(`status address for ${JSON.stringify(host)}: not a host of this ServiceEntry`);
      continue;
    }
    add(value, h);
  }
  return entry;
}

/** istiod uses status.addresses only for these ServiceEntries (ShouldV2AutoAllocateIP). */
function usesAllocatedAddresses(spec: Record<string, unknown>, labels: Record<string, unknown>): boolean {
  if (spec.resolution === "NONE") return false;
  const optOut = labels[AUTOALLOCATE_LABEL];
  return !(typeof optOut === "string" && optOut.toLowerCase() === "false");
}

/** "203.0.113.7", "2001:db8::1", or a CIDR of exactly one address → bytes; else undefined. */
function addressOf(text: string): Uint8Array | undefined {
  const slash = text.indexOf("/");
  const ipText = slash < 0 ? text : text.slice(0, slash);
  let ip: Uint8Array;
  try {
    ip = ipToBytes(ipText);
  } catch {
    return undefined;
  }
  if (slash >= 0 && Number(text.slice(slash + 1)) !== ip.length * 8) return undefined;
  return ip;
}

function strings(v: unknown): string[] {
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === "string") : [];
}

/** Whether a ServiceEntry in `entry.namespace` with this exportTo is visible from `namespace`. */
export function visibleFrom(exportTo: readonly string[], seNamespace: string, namespace: string): boolean {
  for (const e of exportTo) {
    if (e === "*") return true;
    if (e === "." && seNamespace === namespace) return true;
    if (e === namespace) return true;
  }
  return false;
}

export class MeshConfigTable {
  private readonly entries = new Map<string, MeshEntry>();
  /** Address text → refs of the entries that declare it. */
  private readonly byIp = new Map<string, Set<string>>();
  private readonly listeners = new Set<MeshConfigListener>();
  private readonly defaultExportTo: string[];
  readonly counters: MeshConfigCounters = { rejected: 0, truncatedNames: 0 };

  constructor(options: { defaultExportTo?: string[] } = {}) {
    this.defaultExportTo = options.defaultExportTo && options.defaultExportTo.length > 0 ? options.defaultExportTo : ["*"];
  }

  get size(): number {
    return this.entries.size;
  }

  /** Calls `listener(changed addresses)` after every change. */
  onChange(listener: MeshConfigListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Adds or replaces one ServiceEntry. Returns what was ignored (or why the object was rejected). */
  upsert(obj: unknown): { ok: boolean; ignored: string[] } {
    const parsed = parseServiceEntry(obj);
    if (typeof parsed === "string") {
      this.counters.rejected++;
      return { ok: false, ignored: [parsed] };
    }
    const changed = new Map<string, Uint8Array>();
    this.remove(parsed.ref, changed);
    this.entries.set(parsed.ref, parsed);
    for (const [key, a] of parsed.addresses) {
      let refs = this.byIp.get(key);
      if (!refs) this.byIp.set(key, (refs = new Set()));
      refs.add(parsed.ref);
      changed.set(key, a.bytes);
    }
    this.emit(changed);
    return { ok: true, ignored: parsed.ignored };
  }

  delete(namespace: string, name: string): void {
    const changed = new Map<string, Uint8Array>();
    this.remove(`${namespace}/${name}`, changed);
    this.emit(changed);
  }

  /** Replaces every ServiceEntry (file mode reload); returns the problems per object. */
  replaceAll(objs: readonly unknown[]): string[] {
    const problems: string[] = [];
    const changed = new Map<string, Uint8Array>();
    for (const ref of [...this.entries.keys()]) this.remove(ref, changed);
    const silenced = new Set(this.listeners);
    this.listeners.clear();
    try {
      for (const o of objs) {
        const r = this.upsert(o);
        for (const i of r.ignored) problems.push(`${refOf(o)}: ${i}`);
        const parsed = this.entries.get(refOf(o));
        if (parsed) for (const [key, a] of parsed.addresses) changed.set(key, a.bytes);
      }
    } finally {
      for (const l of silenced) this.listeners.add(l);
    }
    this.emit(changed);
    return problems;
  }

  /** The mesh-configuration names of `ip` visible from `namespace`, as a Resolution; undefined when none. */
  resolutionFor(namespace: string, ip: Uint8Array | string): Resolution | undefined {
    const key = typeof ip === "string" ? ip : bytesToIp(ip);
    if (key === undefined) return undefined;
    const refs = this.byIp.get(key);
    if (!refs) return undefined;
    const names: ResolvedName[] = [];
    let bytes: Uint8Array | undefined;
    for (const ref of [...refs].sort()) {
      const e = this.entries.get(ref)!;
      if (!visibleFrom(e.exportTo.length > 0 ? e.exportTo : this.defaultExportTo, e.namespace, namespace)) continue;
      const a = e.addresses.get(key)!;
      bytes = a.bytes;
      for (const host of a.hosts) {
        if (names.some((n) => n.name === host)) continue;
        if (names.length >= MAX_MESH_NAMES_PER_IP) {
          this.counters.truncatedNames++;
          continue;
        }
        names.push({ name: host, cname_chain: [], expires_unix_ms: MESH_CONFIG_EXPIRY_MS, source: "NAME_SOURCE_MESH_CONFIG", config_ref: ref, ech_public_names: [] });
      }
    }
    if (!bytes || names.length === 0) return undefined;
    names.sort((x, y) => (x.name < y.name ? -1 : x.name > y.name ? 1 : 0));
    return { ip: bytes, names, expires_unix_ms: MESH_CONFIG_EXPIRY_MS };
  }

  /** Every address with mesh-configuration names visible from `namespace`. */
  resolutionsFor(namespace: string): Resolution[] {
    const out: Resolution[] = [];
    for (const key of this.byIp.keys()) {
      const r = this.resolutionFor(namespace, key);
      if (r) out.push(r);
    }
    return out;
  }

  /** For /status: each ServiceEntry with its addresses and what was ignored. */
  describe(): { ref: string; addresses: Record<string, string[]>; exportTo: string[]; ignored: string[] }[] {
    return [...this.entries.values()].map((e) => ({
      ref: e.ref,
      addresses: Object.fromEntries([...e.addresses].map(([k, v]) => [k, v.hosts])),
      exportTo: e.exportTo,
      ignored: e.ignored,
    }));
  }

  private remove(ref: string, changed: Map<string, Uint8Array>): void {
    const old = this.entries.get(ref);
    if (!old) return;
    this.entries.delete(ref);
    for (const [key, a] of old.addresses) {
      const refs = this.byIp.get(key);
      refs?.delete(ref);
      if (refs?.size === 0) this.byIp.delete(key);
      changed.set(key, a.bytes);
    }
  }

  private emit(changed: Map<string, Uint8Array>): void {
    if (changed.size === 0) return;
    for (const l of this.listeners) l(changed);
  }
}

function refOf(o: unknown): string {
  const m = (o as { metadata?: { namespace?: unknown; name?: unknown } } | null)?.metadata;
  return `${String(m?.namespace ?? "?")}/${String(m?.name ?? "?")}`;
}

/**
 * The pod's view of one address: its own DNS names, plus the mesh-configuration names it does not
 * already have from DNS (a pod-DNS name keeps its source and expiry).
 */
export function withMeshNames(pod: Resolution | undefined, mesh: Resolution | undefined): Resolution | undefined {
  if (!mesh) return pod;
  if (!pod) return mesh;
  const have = new Set(pod.names.map((n) => n.name));
  const extra = mesh.names.filter((n) => !have.has(n.name));
  if (extra.length === 0) return pod;
  const names = [...pod.names, ...extra].sort((x, y) => (x.name < y.name ? -1 : x.name > y.name ? 1 : 0));
  return { ip: pod.ip, names, expires_unix_ms: Math.max(pod.expires_unix_ms, mesh.expires_unix_ms) };
}
