// Properties served by proxy_get_property (reference/proxy-wasm.md §4): a tree of typed values
// addressed by NUL-separated segments, serialized as Envoy's serializeValue does (§4.2).
import { encodePairs } from "./pairs.js";

export type PropValue =
  | { t: "string"; v: string }
  | { t: "bytes"; v: Uint8Array }
  | { t: "int"; v: bigint }
  | { t: "uint"; v: bigint }
  | { t: "bool"; v: boolean }
  | { t: "map"; v: Map<string, PropValue> }
  | { t: "list"; v: PropValue[] }
  /** A protobuf message: serialized as a whole, fields reachable by name. */
  | { t: "message"; bytes: Uint8Array; fields: Map<string, PropValue> };

export const str = (v: string): PropValue => ({ t: "string", v });
export const int = (v: number | bigint): PropValue => ({ t: "int", v: BigInt(v) });
export const uint = (v: number | bigint): PropValue => ({ t: "uint", v: BigInt(v) });
export const map = (entries: Record<string, PropValue | undefined>): PropValue => {
  const m = new Map<string, PropValue>();
  for (const [k, val] of Object.entries(entries)) if (val !== undefined) m.set(k, val);
  return { t: "map", v: m };
};

/** Serializes a value: strings raw, ints 8-byte LE, maps/lists as pairs, messages as protobuf. */
export function serialize(value: PropValue): Buffer {
  switch (value.t) {
    case "string": return Buffer.from(value.v, "utf8");
    case "bytes": return Buffer.from(value.v);
    case "int": { const b = Buffer.alloc(8); b.writeBigInt64LE(value.v); return b; }
    case "uint": { const b = Buffer.alloc(8); b.writeBigUInt64LE(value.v); return b; }
    case "bool": return Buffer.of(value.v ? 1 : 0);
    case "map": return encodePairs([...value.v].map(([k, v]) => [k, serialize(v)]));
    case "list": return encodePairs(value.v.map((v) => [serialize(v), ""]));
    case "message": return Buffer.from(value.bytes);
  }
}

/** Walks `segments` from `root`; undefined when any segment is missing. */
export function lookup(root: Map<string, PropValue>, segments: string[]): PropValue | undefined {
  if (segments.length === 0) return undefined;
  let cur: PropValue | undefined = root.get(segments[0]);
  for (const seg of segments.slice(1)) {
    if (cur === undefined) return undefined;
    if (cur.t === "map") cur = cur.v.get(seg);
    else if (cur.t === "message") cur = cur.fields.get(seg);
    else if (cur.t === "list") cur = /^\d+$/.test(seg) ? cur.v[Number(seg)] : undefined;
    else return undefined;
  }
  return cur;
}

/** Splits a raw path on NUL; a trailing NUL is harmless (§4.1). */
export function splitPath(raw: Uint8Array): string[] {
  const s = Buffer.from(raw).toString("utf8");
  const parts = s.split("\0");
  if (parts.length > 1 && parts[parts.length - 1] === "") parts.pop();
  return parts;
}

// --- Istio node identity (§4.3) -----------------------------------------------------------------

/** The pod an emulated sidecar belongs to. */
export interface NodeIdentity {
  name?: string;
  namespace?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  instanceIps?: string[];
  serviceAccount?: string;
  workloadName?: string;
  clusterId?: string;
  meshId?: string;
  istioVersion?: string;
  /** Overrides the sidecar~ip~pod.ns~ns.svc.cluster.local id. */
  id?: string;
  /** Extra string metadata keys. */
  extra?: Record<string, string>;
}

export function nodeMetadata(n: NodeIdentity): Map<string, PropValue> {
  const md = new Map<string, PropValue>();
  const set = (k: string, v: string | undefined): void => { if (v !== undefined) md.set(k, str(v)); };
  set("NAME", n.name);
  set("NAMESPACE", n.namespace);
  set("WORKLOAD_NAME", n.workloadName ?? n.name?.replace(/-[a-z0-9]{5}$/, ""));
  set("SERVICE_ACCOUNT", n.serviceAccount ?? "default");
  set("CLUSTER_ID", n.clusterId ?? "Kubernetes");
  set("MESH_ID", n.meshId ?? "cluster.local");
  set("ISTIO_VERSION", n.istioVersion ?? "1.28.0");
  // Istio's StringList marshals as one comma-separated string (§4.3).
  if (n.instanceIps) set("INSTANCE_IPS", n.instanceIps.join(","));
  if (n.labels) md.set("LABELS", map(Object.fromEntries(Object.entries(n.labels).map(([k, v]) => [k, str(v)]))));
  if (n.annotations) md.set("ANNOTATIONS", map(Object.fromEntries(Object.entries(n.annotations).map(([k, v]) => [k, str(v)]))));
  for (const [k, v] of Object.entries(n.extra ?? {})) set(k, v);
  return md;
}

export function nodeId(n: NodeIdentity): string {
  if (n.id) return n.id;
  const ns = n.namespace ?? "default";
  return `sidecar~${n.instanceIps?.[0] ?? "127.0.0.1"}~${n.name ?? "pod"}.${ns}~${ns}.svc.cluster.local`;
}

/** xds.node as a message: envoy.config.core.v3.Node{id=1, cluster=2, metadata=3 (Struct)}. */
export function nodeMessage(n: NodeIdentity): PropValue {
  const md = nodeMetadata(n);
  const id = nodeId(n);
  const cluster = `${n.workloadName ?? n.name ?? "pod"}.${n.namespace ?? "default"}`;
  const bytes = Buffer.concat([field(1, Buffer.from(id)), field(2, Buffer.from(cluster)), field(3, structOf(md))]);
  return { t: "message", bytes, fields: new Map<string, PropValue>([["id", str(id)], ["cluster", str(cluster)], ["metadata", { t: "map", v: md }]]) };
}

function varint(n: number): Buffer {
  const out: number[] = [];
  while (n >= 0x80) { out.push((n & 0x7f) | 0x80); n >>>= 7; }
  out.push(n);
  return Buffer.from(out);
}
function field(no: number, payload: Buffer): Buffer { return Buffer.concat([varint((no << 3) | 2), varint(payload.length), payload]); }

/** google.protobuf.Struct{fields=1 map<string, Value>}; Value{string_value=3, struct_value=5}. */
function structOf(m: Map<string, PropValue>): Buffer {
  const entries: Buffer[] = [];
  for (const [k, v] of m) {
    let value: Buffer;
    if (v.t === "map") value = field(5, structOf(v.v));
    else value = field(3, serialize(v));
    entries.push(field(1, Buffer.concat([field(1, Buffer.from(k)), field(2, value)])));
  }
  return Buffer.concat(entries);
}
