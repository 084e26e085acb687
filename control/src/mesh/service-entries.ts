// A scenario's Istio ServiceEntries in the mesh, playing the three parts of Istio that act on them
// (facts and sources: docs/operations.md "Istio DNS proxying and ServiceEntry addresses"):
//   - istiod's IP auto-allocation controller (pilot/pkg/controllers/ipallocate): a ServiceEntry
//     without spec.addresses, resolution not NONE and not labelled
//     networking.istio.io/enable-autoallocate-ip=false gets one address per host in
//     status.addresses [{value, host}]. Istio allocates from 240.240.0.0/16; the mesh uses
//     MESH_AUTOALLOCATE_PREFIX, inside the test range 198.18.0.0/15 and outside the cluster CIDRs.
//   - the name table istiod pushes to each pod's DNS proxy (pkg/dns/server/name_table.go): every
//     visible host with its addresses (exportTo, as control reads it: the same parser).
//   - Envoy's per-VIP listeners (the sidecar's --service-route): VIP:PORT → cluster
//     outbound|PORT||HOST → the first endpoint (STATIC) or the host itself, which the sidecar
//     resolves as Envoy does for resolution: DNS (its own queries, uid 1337, from the pod's IP).
import { parseServiceEntry, visibleFrom, AUTOALLOCATE_LABEL } from "../control/mesh-config.js";

/** The mesh's stand-in for istiod's 240.240.0.0/16: addresses .1–.254 of this /24. */
export const MESH_AUTOALLOCATE_PREFIX = "198.19.240.";

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => !!v && typeof v === "object" && !Array.isArray(v);
const list = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);

/** Copies of the ServiceEntries with status.addresses written where istiod's allocator would. */
export function allocateAddresses(entries: readonly unknown[]): unknown[] {
  let next = 1;
  return entries.map((e) => {
    if (!isObj(e)) return e;
    const spec = isObj(e.spec) ? e.spec : {};
    const labels = isObj(e.metadata) && isObj(e.metadata.labels) ? e.metadata.labels : {};
    const status = isObj(e.status) ? e.status : {};
    const optedOut = String(labels[AUTOALLOCATE_LABEL] ?? "").toLowerCase() === "false";
    if (list(spec.addresses).length > 0 || spec.resolution === "NONE" || optedOut || list(status.addresses).length > 0) return e;
    const hosts = list(spec.hosts).filter((h): h is string => typeof h === "string" && !h.includes("*"));
    if (next + hosts.length > 255) throw new Error(`more than 254 auto-allocated ServiceEntry addresses in one scenario (${MESH_AUTOALLOCATE_PREFIX}0/24)`);
    return { ...e, status: { ...status, addresses: hosts.map((host) => ({ value: `${MESH_AUTOALLOCATE_PREFIX}${next++}`, host })) } };
  });
}

/** Exported to this namespace: exportTo as written, empty = every namespace (the mesh default "*"). */
function visible(entry: { namespace: string; exportTo: string[] }, namespace: string): boolean {
  return visibleFrom(entry.exportTo.length > 0 ? entry.exportTo : ["*"], entry.namespace, namespace);
}

/** host → IPv4 addresses the pod's DNS proxy answers for pods in `namespace`. */
export function dnsNameTable(entries: readonly unknown[], namespace: string): Map<string, string[]> {
  const table = new Map<string, string[]>();
  for (const obj of entries) {
    const entry = parseServiceEntry(obj);
    if (typeof entry === "string" || !visible(entry, namespace)) continue;
    for (const [ip, { bytes, hosts }] of entry.addresses) {
      if (bytes.length !== 4) continue;
      for (const host of hosts) {
        const ips = table.get(host) ?? [];
        if (!ips.includes(ip)) ips.push(ip);
        table.set(host, ips);
      }
    }
  }
  return table;
}

/** The sidecar's --service-route values for a pod in `namespace` (one per VIP and port). */
export function serviceRoutes(entries: readonly unknown[], namespace: string): string[] {
  const routes: string[] = [];
  for (const obj of entries) {
    const entry = parseServiceEntry(obj);
    if (typeof entry === "string" || !visible(entry, namespace) || !isObj(obj) || !isObj(obj.spec)) continue;
    const spec = obj.spec;
    const endpoint = list(spec.endpoints).find(isObj);
    for (const [ip, { bytes, hosts }] of entry.addresses) {
      if (bytes.length !== 4 || hosts.length === 0) continue;
      const host = hosts[0]!; // Envoy's VIP listener routes to one service's cluster
      for (const port of list(spec.ports).filter(isObj)) {
        const number = Number(port.number);
        if (!Number.isInteger(number) || number < 1 || number > 65535) continue;
        const endpointPorts = endpoint && isObj(endpoint.ports) ? endpoint.ports : {};
        const target = Number(endpointPorts[String(port.name)] ?? port.targetPort ?? number);
        const upstream = spec.resolution === "STATIC" && endpoint && typeof endpoint.address === "string" ? endpoint.address : host;
        routes.push(`${ip}:${number}=outbound|${number}||${host}=${upstream}:${target}`);
      }
    }
  }
  return routes;
}
