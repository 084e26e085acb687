// Which pods exist, their labels and IPs, and each namespace's labels — fed by the Kubernetes
// informers or by the pods file — and the IP → pod map used to attribute DNS observations and
// Lookups. Listeners hear about every change so the hub can recompile only what it affects.
import { isIP } from "node:net";
import { bytesToIp, ipToBytes } from "../proto/ip.js";

export interface PodRecord {
  namespace: string;
  name: string;
  labels: Record<string, string>;
  /** Canonical text form ("198.18.1.10", "2001:db8::a"). */
  ips: string[];
  uid?: string;
  /** The node the pod is scheduled on (spec.nodeName; `node:` in the pods file). Only that
   *  node's agent may deliver DNS evidence for the pod. */
  node?: string;
  /** Whether the pod runs an Istio sidecar (an `istio-proxy` container, or Istio's injection
   *  status annotation); undefined when the source cannot tell (coverage.ts). */
  sidecar?: boolean;
  /** Istio's `traffic.sidecar.istio.io/excludeOutboundPorts`: ports the sidecar never sees (bypass causes). */
  excludedOutboundPorts?: number[];
  /** `traffic.sidecar.istio.io/excludeOutboundIPRanges`: CIDRs the sidecar never sees. */
  excludedOutboundRanges?: string[];
}

export type RegistryChange =
  | { kind: "pod"; key: string; before?: PodRecord; after?: PodRecord }
  | { kind: "namespace"; name: string; before?: Record<string, string>; after?: Record<string, string> };

export const podKeyOf = (namespace: string, name: string) => `${namespace}/${name}`;

/** Canonical text of an IP given as text, or undefined if it is not one. */
export function canonicalIp(ip: string): string | undefined {
  if (isIP(ip) === 0) return undefined;
  return bytesToIp(ipToBytes(ip));
}

function sameLabels(a: Record<string, string> | undefined, b: Record<string, string> | undefined): boolean {
  const ka = Object.keys(a ?? {});
  if (ka.length !== Object.keys(b ?? {}).length) return false;
  return ka.every((k) => a![k] === b?.[k]);
}

function samePod(a: PodRecord | undefined, b: PodRecord | undefined): boolean {
  if (!a || !b) return a === b;
  return a.uid === b.uid && a.node === b.node && a.sidecar === b.sidecar && String(a.excludedOutboundPorts) === String(b.excludedOutboundPorts) && String(a.excludedOutboundRanges) === String(b.excludedOutboundRanges) && sameLabels(a.labels, b.labels) && a.ips.length === b.ips.length && a.ips.every((ip, i) => ip === b.ips[i]);
}

export class PodRegistry {
  private readonly pods = new Map<string, PodRecord>();
  private readonly byIpMap = new Map<string, string>();
  private readonly namespaces = new Map<string, Record<string, string>>();
  private readonly listeners = new Set<(change: RegistryChange) => void>();

  onChange(listener: (change: RegistryChange) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  get(namespace: string, name: string): PodRecord | undefined {
    return this.pods.get(podKeyOf(namespace, name));
  }

  /** The pod that owns `ip` (text or 4/16 bytes), if any. */
  byIp(ip: string | Uint8Array): PodRecord | undefined {
    const text = typeof ip === "string" ? canonicalIp(ip) : bytesToIp(ip);
    if (text === undefined) return undefined;
    const key = this.byIpMap.get(text);
    return key === undefined ? undefined : this.pods.get(key);
  }

  namespaceLabels(namespace: string): Record<string, string> {
    return this.namespaces.get(namespace) ?? {};
  }

  all(): PodRecord[] {
    return [...this.pods.values()];
  }

  inNamespace(namespace: string): PodRecord[] {
    return this.all().filter((p) => p.namespace === namespace);
  }

  namespaceNames(): string[] {
    return [...this.namespaces.keys()];
  }

  /** Adds or replaces a pod (IPs are canonicalized; unparsable ones dropped). No-op if unchanged. */
  upsertPod(pod: PodRecord): void {
    const ips = [...new Set(pod.ips.map(canonicalIp).filter((x): x is string => x !== undefined))];
    const after: PodRecord = { ...pod, labels: { ...pod.labels }, ips };
    const key = podKeyOf(pod.namespace, pod.name);
    const before = this.pods.get(key);
    if (samePod(before, after)) return;
    if (before) for (const ip of before.ips) if (this.byIpMap.get(ip) === key) this.byIpMap.delete(ip);
    this.pods.set(key, after);
    for (const ip of ips) this.byIpMap.set(ip, key);
    this.emit({ kind: "pod", key, before, after });
  }

  deletePod(namespace: string, name: string): void {
    const key = podKeyOf(namespace, name);
    const before = this.pods.get(key);
    if (!before) return;
    this.pods.delete(key);
    for (const ip of before.ips) if (this.byIpMap.get(ip) === key) this.byIpMap.delete(ip);
    this.emit({ kind: "pod", key, before });
  }

  setNamespace(name: string, labels: Record<string, string>): void {
    const before = this.namespaces.get(name);
    if (before && sameLabels(before, labels)) return;
    this.namespaces.set(name, { ...labels });
    this.emit({ kind: "namespace", name, before, after: { ...labels } });
  }

  deleteNamespace(name: string): void {
    const before = this.namespaces.get(name);
    if (!before) return;
    this.namespaces.delete(name);
    this.emit({ kind: "namespace", name, before });
  }

  /** Makes the registry equal to the given state (file reload, relist), emitting only real changes. */
  replaceAll(pods: PodRecord[], namespaces: Record<string, Record<string, string>>): void {
    for (const [name, labels] of Object.entries(namespaces)) this.setNamespace(name, labels);
    const keep = new Set(pods.map((p) => podKeyOf(p.namespace, p.name)));
    for (const p of this.all()) if (!keep.has(podKeyOf(p.namespace, p.name))) this.deletePod(p.namespace, p.name);
    for (const p of pods) this.upsertPod(p);
    for (const name of this.namespaceNames()) if (!(name in namespaces)) this.deleteNamespace(name);
  }

  private emit(change: RegistryChange): void {
    for (const l of this.listeners) l(change);
  }
}

/** Istio's annotations that take outbound traffic away from the sidecar. */
export const EXCLUDE_OUTBOUND_PORTS = "traffic.sidecar.istio.io/excludeOutboundPorts";
export const EXCLUDE_OUTBOUND_RANGES = "traffic.sidecar.istio.io/excludeOutboundIPRanges";

/** The exclusions a pod's annotations declare (malformed entries are ignored, as istio-iptables rejects them). */
export function outboundExclusions(annotations: Record<string, string> | undefined): Pick<PodRecord, "excludedOutboundPorts" | "excludedOutboundRanges"> {
  const out: Pick<PodRecord, "excludedOutboundPorts" | "excludedOutboundRanges"> = {};
  const split = (v: string | undefined) => (v ?? "").split(",").map((x) => x.trim()).filter(Boolean);
  const ports = split(annotations?.[EXCLUDE_OUTBOUND_PORTS]).map(Number).filter((n) => Number.isInteger(n) && n > 0 && n < 65536);
  const ranges = split(annotations?.[EXCLUDE_OUTBOUND_RANGES]).filter((r) => {
    const [net, len] = r.split("/");
    return isIP(net ?? "") !== 0 && (len === undefined || /^\d+$/.test(len));
  });
  if (ports.length) out.excludedOutboundPorts = ports;
  if (ranges.length) out.excludedOutboundRanges = ranges;
  return out;
}
