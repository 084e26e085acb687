// GET /debug/names?pod=NAMESPACE/NAME[&ip=DESTINATION]: the names this replica holds for a pod —
// for one destination IP or for all — and why each is there (the denial runbook's "did the pod
// resolve that name to that IP?", docs/operations.md). Exactly what a Lookup from the pod's
// sidecar would be answered with: the pod's own DNS evidence (union over its IPs) plus the mesh
// configuration names visible to its namespace.
// Access: operator-auth.ts (loopback = `kubectl port-forward`, or a bearer token scoped to
// namespaces); refusals use the error catalogue's codes, mapped to HTTP status here.
import type { IncomingMessage, ServerResponse } from "node:http";
import { isIP } from "node:net";
import { ipToBytes, bytesToIp } from "../proto/ip.js";
import type { Resolution } from "../proto/messages.js";
import { ControlError, type ErrorKind } from "./errors.js";
import { withMeshNames, type MeshConfigTable } from "./mesh-config.js";
import type { PodRegistry } from "./pods.js";
import type { ResolutionStore } from "./store.js";
import type { CompiledPod } from "./policy-api.js";
import type { OperatorAuth } from "../auth/operator-auth.js";

export const POD_NAMES_PATH = "/debug/names";

export interface PodNamesDeps {
  registry: PodRegistry;
  store: ResolutionStore;
  meshConfig?: MeshConfigTable;
  compiledFor: (namespace: string, name: string) => CompiledPod | undefined;
  now: () => number;
}

export interface NameEvidence {
  name: string;
  /** "pod-dns": an answer to this pod's own query, seen by the node's agent; "mesh-config": a ServiceEntry address. */
  evidence: "pod-dns" | "mesh-config";
  /** The ServiceEntry ("namespace/name") for mesh-config names. */
  serviceEntry?: string;
  /** CNAMEs followed from `name` to the address. */
  cnameChain: string[];
  /** When the (clamped) TTL runs out; absent for mesh-config names (while the ServiceEntry exists). */
  expires?: string;
  /** Seconds until then (negative: expired, kept only for the policies' grace). */
  expiresInSeconds?: number;
  why: string;
}

export interface PodNamesAnswer {
  pod: string;
  podIps: string[];
  node?: string;
  /** The compiled policy this replica serves the pod's sidecar, when it watches the pod. */
  policy: { watched: boolean; selected?: boolean; policies?: string[]; maxGraceSeconds?: number; hash?: string };
  destinations: Array<{ ip: string; names: NameEvidence[] }>;
  /** Set when `ip` was asked and nothing is held for it: what that means. */
  none?: string;
}

function describe(n: Resolution["names"][number], now: number): NameEvidence {
  const chain = [...n.cname_chain];
  if (n.source === "NAME_SOURCE_MESH_CONFIG") {
    return {
      name: n.name, evidence: "mesh-config", serviceEntry: n.config_ref, cnameChain: chain,
      why: `ServiceEntry ${n.config_ref} declares or was allocated this address for ${n.name}, and is visible to the pod's namespace`,
    };
  }
  const left = Math.round((n.expires_unix_ms - now) / 1000);
  return {
    name: n.name, evidence: "pod-dns", cnameChain: chain, expires: new Date(n.expires_unix_ms).toISOString(), expiresInSeconds: left,
    why: `the pod asked for ${n.name}${chain.length ? ` (via CNAME ${chain.join(" → ")})` : ""} and a trusted resolver answered with this address; ` +
      (left >= 0 ? `valid for ${left} s more (TTL, clamped)` : `TTL ran out ${-left} s ago: usable only within a policy's resolutionGraceSeconds`),
  };
}

/** The answer for `pod` ("namespace/name"), optionally only for destination `ip`. */
export function podNames(deps: PodNamesDeps, pod: string, ip?: string): PodNamesAnswer {
  const slash = pod.indexOf("/");
  const namespace = pod.slice(0, slash);
  const name = pod.slice(slash + 1);
  const record = deps.registry.get(namespace, name);
  if (!record) throw new ControlError("EGRET_DEBUG_POD_UNKNOWN", `${pod} (this replica knows ${deps.registry.all().length} pods; check the name and namespace)`);
  const now = deps.now();
  const byIp = new Map<string, Resolution>();
  const merge = (r: Resolution | undefined) => {
    if (!r) return;
    const key = bytesToIp(r.ip)!;
    const prev = byIp.get(key);
    byIp.set(key, prev ? { ...prev, names: [...prev.names, ...r.names.filter((n) => !prev.names.some((p) => p.name === n.name && p.source === n.source))] } : r);
  };
  if (ip !== undefined) {
    const dest = ipToBytes(ip);
    for (const podIp of record.ips) merge(deps.store.get(podIp, dest));
    const mesh = deps.meshConfig?.resolutionFor(namespace, dest);
    const own = byIp.get(bytesToIp(dest)!);
    byIp.delete(bytesToIp(dest)!);
    merge(withMeshNames(own, mesh));
  } else {
    for (const podIp of record.ips) for (const r of deps.store.entriesOf(podIp)) merge(r);
  }
  const compiled = deps.compiledFor(namespace, name);
  const answer: PodNamesAnswer = {
    pod, podIps: record.ips, ...(record.node ? { node: record.node } : {}),
    policy: compiled
      ? { watched: true, selected: compiled.selected, policies: compiled.policies, maxGraceSeconds: compiled.maxGraceSeconds ?? 0, hash: compiled.hash }
      : { watched: false },
    destinations: [...byIp.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([dest, r]) => ({
      ip: dest, names: [...r.names].sort((a, b) => a.name.localeCompare(b.name)).map((n) => describe(n, now)),
    })),
  };
  if (ip !== undefined && answer.destinations.length === 0) {
    answer.none = `no name: this pod's sidecar gets no name for ${ip} from this replica, so a rule naming domains cannot match it (reason unattributed, or default-deny). ` +
      "Either the pod never resolved a name to this address (a hard-coded IP, DNS over HTTPS, a resolver the agent does not trust), the answer was not captured " +
      "(egret_agent_capture_drops_total, agent logs), or it expired beyond every policy's grace";
  }
  return answer;
}

const HTTP_STATUS: Record<ErrorKind, number> = {
  "invalid-argument": 400, "not-found": 404, "failed-precondition": 412, "resource-exhausted": 429,
  unavailable: 503, unauthenticated: 401, "permission-denied": 403, internal: 500,
};

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { "content-type": "application/json", "cache-control": "no-store", ...headers }).end(JSON.stringify(body, null, 2) + "\n");
}

/** The HTTP route (mounted on control's HTTP port); `notReady` refuses before the initial sync. */
export function createPodNamesRoute(deps: PodNamesDeps, auth: OperatorAuth, notReady: () => string | undefined) {
  return (req: IncomingMessage, res: ServerResponse): boolean => {
    const url = new URL(req.url ?? "/", "http://control");
    if (url.pathname !== POD_NAMES_PATH) return false;
    try {
      const pod = url.searchParams.get("pod") ?? "";
      const ip = url.searchParams.get("ip") ?? undefined;
      if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?\/[a-z0-9]([-.a-z0-9]*[a-z0-9])?$/.test(pod)) {
        throw new ControlError("EGRET_DEBUG_BAD_QUERY", `pod=${JSON.stringify(pod)}: give pod=NAMESPACE/NAME`);
      }
      if (ip !== undefined && isIP(ip) === 0) throw new ControlError("EGRET_DEBUG_BAD_QUERY", `ip=${JSON.stringify(ip)}: not an IPv4 or IPv6 address`);
      auth.authorize(req, pod.slice(0, pod.indexOf("/")));
      const why = notReady();
      if (why) throw new ControlError("EGRET_NOT_READY", why);
      send(res, 200, podNames(deps, pod, ip));
    } catch (err) {
      const e = err instanceof ControlError ? err : new ControlError("EGRET_INTERNAL", (err as Error).message);
      send(res, HTTP_STATUS[e.kind], { code: e.code, error: e.message }, e.kind === "unauthenticated" ? { "www-authenticate": 'Bearer realm="egret-control"' } : {});
    }
    return true;
  };
}
