// Egret's own processes in the mesh — `egret control` (file mode) and `egret agent` in the node
// namespace, one `egret sidecar` per pod (as uid 1337, listening where Envoy's 15001 would) — and
// the check that tells a scenario run which of them exist yet, so it can skip with a reason
// instead of faking a pass. Every command line the mesh uses is built here, in one place.
import { randomBytes } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ManagedProcess } from "./process.js";
import { DNS_PROXY_PORT, SIDECAR_GID, SIDECAR_PORT, SIDECAR_UID, type MeshNetwork, type PodNetwork } from "./netns.js";
import { run, runSync } from "./exec.js";

export const CONTROL_GRPC_PORT = 15010;
/** Where pods get their addresses (session.ts). */
export const POD_CIDR = "198.18.1.0/24";
/** The mesh's own cluster network (pods, the node's gateway with control): SYNs there are not bypass candidates. */
export const MESH_CLUSTER_CIDR = "198.18.0.0/16";
/**
 * The agent's bypass window here: a SYN no filter verdict covered within it is a bypass. Verdicts
 * reach the agent in ~150 ms (reportIntervalMs 100 below); scenarios expect a report within 2 s.
 */
export const MESH_BYPASS_WINDOW_MS = 1200;
export const CONTROL_HTTP_PORT = 15014;
export const AGENT_HTTP_PORT = 15020;
export const SIDECAR_ADMIN_PORT = 15000;
/** The gRPC cluster name the filter's plugin configuration refers to (as in the manifests). */
export const CONTROL_CLUSTER = "outbound|15010||egret-control.egret-system.svc.cluster.local";
export const CONTROL_AUTHORITY = "egret-control.egret-system.svc.cluster.local";

export interface Repo {
  root: string;
  /** bin/egret.js */
  egret: string;
  wasm: string;
}

export function repoAt(root: string): Repo {
  return { root, egret: join(root, "bin/egret.js"), wasm: join(root, "filter/build/egret.wasm") };
}

/** Why the full chain cannot run yet (a component not built or not written), or undefined. */
export function missingComponents(repo: Repo): string[] {
  const missing: string[] = [];
  const cmd = (name: string) => existsSync(join(repo.root, `dist/control/src/cli/commands/${name}.js`));
  if (!existsSync(repo.wasm)) missing.push("filter/build/egret.wasm is not built (npm run build)");
  if (!cmd("control")) missing.push("`egret control` (file mode) does not exist yet");
  if (!cmd("agent")) missing.push("`egret agent` does not exist yet");
  if (!cmd("sidecar")) missing.push("`egret sidecar` does not exist yet");
  const index = join(repo.root, "filter/assembly/index.ts");
  if (existsSync(index) && !/egress/.test(readFileSync(index, "utf8"))) {
    missing.push("egret.wasm does not register the enforcement filter (filter/assembly/egress/) yet");
  }
  return missing;
}

export interface MeshFiles {
  policyDir: string;
  podsFile: string;
  /** control's --agent-token-file (`TOKEN NODE-NAME`) and the node agent's --token-file. */
  agentTokens: string;
  agentToken: string;
  /** control's --operator-token-file (`TOKEN NAMESPACES [WHO]`) and the operator's --token-file, for egret observe / status. */
  operatorTokens?: string;
  operatorToken?: string;
  auditLog: string;
  logDir: string;
  /** control's --service-entries file (the scenario's ServiceEntries, status as istiod writes it). */
  serviceEntries?: string;
}

function egretIn(ns: string, repo: Repo, args: string[]): [string, string[]] {
  return ["ip", ["netns", "exec", ns, process.execPath, repo.egret, ...args]];
}

/** The mesh's one node: its pods carry `node:` with this name, and its agent's token names it. */
export function nodeName(net: MeshNetwork): string {
  return `${net.prefix.toLowerCase()}-node`;
}

/** Writes the node agent's credential and control's token file (a fresh random token per session). */
export function writeAgentCredentials(net: MeshNetwork, files: MeshFiles): void {
  const token = randomBytes(24).toString("base64url");
  writeFileSync(files.agentTokens, `# egret mesh: the node agent's token\n${token} ${nodeName(net)}\n`, { mode: 0o600 });
  writeFileSync(files.agentToken, `${token}\n`, { mode: 0o600 });
}

/** The mesh's operator (all namespaces): control's operator token file and the token for `egret observe --token-file`. */
export function writeOperatorCredentials(files: MeshFiles): void {
  if (!files.operatorTokens || !files.operatorToken) return;
  const token = randomBytes(24).toString("base64url");
  writeFileSync(files.operatorTokens, `# egret mesh: the operator (egret observe / egret status)\n${token} * mesh-operator\n`, { mode: 0o600 });
  writeFileSync(files.operatorToken, `${token}\n`, { mode: 0o600 });
}

/** `egret observe` / `egret status` run from the host against this mesh's control, as the mesh's operator. */
export function operatorCommand(net: MeshNetwork, repo: Repo, files: MeshFiles, command: "observe" | "status", extra: string[] = []): [string, string[]] {
  if (!files.operatorToken) throw new Error("this mesh has no operator credentials (MeshFiles.operatorToken)");
  return egretIn(net.nodeNs, repo, [command, "--control", `${net.gateway}:${CONTROL_GRPC_PORT}`, "--token-file", files.operatorToken, ...extra]);
}

/** `egret control` in file mode, serving gRPC and HTTP on the node's gateway address. */
/** Filter modules control serves at /wasm/egret.wasm (its own and, during an upgrade, the previous release's). */
export interface ServedModules { current: string; previous?: string }

/** The URL istio-agent downloads a module from (the EnvoyFilter's ECDS remote code). */
export function moduleUrl(net: MeshNetwork, sha256: string): string {
  return `http://${net.gateway}:${CONTROL_HTTP_PORT}/wasm/egret.wasm?sha256=${sha256}`;
}

export async function startControl(net: MeshNetwork, repo: Repo, files: MeshFiles, clusterCidrs: string[], modules?: ServedModules): Promise<ManagedProcess> {
  const [cmd, args] = egretIn(net.nodeNs, repo, [
    "control",
    "--policies", files.policyDir,
    "--pods", files.podsFile,
    "--agent-token-file", files.agentTokens,
    ...(files.operatorTokens ? ["--operator-token-file", files.operatorTokens] : []),
    "--grpc-listen", `${net.gateway}:${CONTROL_GRPC_PORT}`,
    "--http-listen", `${net.gateway}:${CONTROL_HTTP_PORT}`,
    "--audit-log", files.auditLog,
    ...(files.serviceEntries ? ["--service-entries", files.serviceEntries] : []),
    ...clusterCidrs.flatMap((c) => ["--cluster-cidr", c]),
    ...(modules ? ["--wasm", modules.current, ...(modules.previous ? ["--wasm-previous", modules.previous] : [])] : []),
    // Scenarios state TTL grace in their policies (resolutionGraceSeconds); no global extra.
    "--min-ttl", "1",
    "--grace", "0",
  ]);
  const p = ManagedProcess.start({ name: "egret control", cmd, args, logFile: join(files.logDir, "control.log"), env: { ...process.env, EGRET_LOG_LEVEL: "debug" } });
  await p.waitReady(() => httpOk(net.nodeNs, `http://${net.gateway}:${CONTROL_HTTP_PORT}/readyz`), 30_000, "ready (/readyz)");
  return p;
}

/** `egret agent` capturing DNS on every pod link of the node. */
/** Starts `egret agent` in the node namespace; `metricsPort` differs for a surge agent next to a draining one. */
export async function startAgent(net: MeshNetwork, repo: Repo, files: MeshFiles, resolver: string, metricsPort = AGENT_HTTP_PORT): Promise<ManagedProcess> {
  const [cmd, args] = egretIn(net.nodeNs, repo, [
    "agent",
    "--interface", `${net.prefix}p*`,
    "--rescan-ms", "200",
    "--trusted-resolver", resolver,
    "--pod-cidr", POD_CIDR,
    "--control", `${net.gateway}:${CONTROL_GRPC_PORT}`,
    "--metrics-address", `${net.gateway}:${metricsPort}`,
    "--node-name", nodeName(net),
    "--token-file", files.agentToken,
    "--min-ttl", "0",
    "--cluster-cidr", MESH_CLUSTER_CIDR,
    "--bypass-window-ms", String(MESH_BYPASS_WINDOW_MS),
  ]);
  const p = ManagedProcess.start({ name: "egret agent", cmd, args, logFile: join(files.logDir, "agent.log"), env: { ...process.env, EGRET_LOG_LEVEL: "debug" } });
  await p.waitReady(() => httpOk(net.nodeNs, `http://${net.gateway}:${metricsPort}/healthz`), 30_000, "healthy (/healthz)");
  return p;
}

export interface SidecarIdentity {
  name: string;
  namespace: string;
  labels: Record<string, string>;
}

/**
 * Plugin configuration of the enforcement filter (filter/assembly/egress/config.ts). Production
 * values except: a longer Lookup hold (many processes share two CPUs here, and a false deny from a
 * slow machine would be a wrong test result), faster report batches so verdicts reach the
 * audit log promptly, and a log line per decision in the sidecar's log for failure reports.
 */
export function pluginConfig(forwardProxies: string[]): string {
  return JSON.stringify({
    controlCluster: CONTROL_CLUSTER,
    controlAuthority: `${CONTROL_AUTHORITY}:${CONTROL_GRPC_PORT}`,
    failureMode: "closed",
    lookupTimeoutMs: 2000,
    reportIntervalMs: 100,
    forwardProxies,
    logDecisions: true,
  });
}

let sidecarUidCache: number | undefined;

/**
 * The uid the sidecar runs as: 1337 like Istio's, when that user can read the tree (bin/egret.js,
 * dist/, node_modules/, egret.wasm); otherwise root — a clone under /root is not readable by
 * others. Its gid is 1337 either way, and the REDIRECT exempts both (as istio-iptables does).
 */
export function sidecarUid(repo: Repo): number {
  if (sidecarUidCache !== undefined) return sidecarUidCache;
  const readable = runSync("setpriv", [`--reuid=${SIDECAR_UID}`, `--regid=${SIDECAR_GID}`, "--clear-groups", "sh", "-c",
    'test -r "$1" && test -r "$2" && test -r "$3"', "sh", repo.egret, repo.wasm, join(repo.root, "node_modules/@grpc/grpc-js/package.json")]).code === 0;
  sidecarUidCache = readable ? SIDECAR_UID : 0;
  return sidecarUidCache;
}

/** `egret sidecar` inside the pod as uid/gid 1337 (see sidecarUid), behind the pod's REDIRECT. */
/**
 * With `ecds`, the sidecar starts with no filter, as a pod that predates the EnvoyFilter, and gets
 * its module through pushes (EgretSession.pushModule), downloaded like istio-agent of that Istio
 * version does (control/src/sidecar/ecds.ts).
 */
export async function startSidecar(net: MeshNetwork, pod: PodNetwork, id: SidecarIdentity, repo: Repo, files: MeshFiles, forwardProxies: string[], ecds?: { istioVersion: string }, serviceRoutes: string[] = []): Promise<ManagedProcess> {
  const args = [
    "netns", "exec", pod.netns, "setpriv", `--reuid=${sidecarUid(repo)}`, `--regid=${SIDECAR_GID}`, "--clear-groups",
    process.execPath, repo.egret, "sidecar",
    "--listen", `127.0.0.1:${SIDECAR_PORT}`,
    "--admin", `127.0.0.1:${SIDECAR_ADMIN_PORT}`,
    ...(ecds ? ["--ecds", "--istio-version", ecds.istioVersion] : ["--wasm", repo.wasm]),
    "--plugin-config", pluginConfig(forwardProxies),
    "--pod-name", id.name,
    "--pod-namespace", id.namespace,
    "--pod-ip", pod.ip,
    ...Object.entries(id.labels).flatMap(([k, v]) => ["--pod-label", `${k}=${v}`]),
    "--grpc-cluster", `${CONTROL_CLUSTER}=${net.gateway}:${CONTROL_GRPC_PORT}`,
    ...serviceRoutes.flatMap((r) => ["--service-route", r]),
  ];
  const p = ManagedProcess.start({ name: `egret sidecar ${id.namespace}/${id.name}`, cmd: "ip", args, logFile: join(files.logDir, `sidecar-${id.namespace}-${id.name}.log`) });
  // The admin port is loopback, which the REDIRECT leaves alone; /ready means the listener is up.
  await p.waitReady(() => httpOk(pod.netns, `http://127.0.0.1:${SIDECAR_ADMIN_PORT}/ready`), 30_000, "ready (/ready)");
  return p;
}

/**
 * istio-agent's DNS proxy in the pod (probes/dns-proxy.ts) on 127.0.0.1:15053, UDP and TCP, as the
 * sidecar's uid/gid (which the pod's DNS capture exempts, MeshNetwork.redirectDns): `localNames`
 * (name → addresses, the pod's ServiceEntry name table) answered in the pod, everything else
 * forwarded to `resolver` from the pod's address.
 */
export async function startDnsProxy(pod: PodNetwork, repo: Repo, files: MeshFiles, resolver: string, localNames: ReadonlyMap<string, string[]> = new Map()): Promise<ManagedProcess> {
  const name = pod.key.replace("/", "-");
  const p = ManagedProcess.start({
    name: `dns proxy ${pod.key}`,
    cmd: "ip",
    args: ["netns", "exec", pod.netns, "setpriv", `--reuid=${sidecarUid(repo)}`, `--regid=${SIDECAR_GID}`, "--clear-groups",
      process.execPath, join(repo.root, "dist/control/src/mesh/probes/dns-proxy.js"), String(DNS_PROXY_PORT), resolver,
      ...[...localNames].map(([host, ips]) => `${host}=${ips.join(",")}`)],
    logFile: join(files.logDir, `dns-proxy-${name}.log`),
  });
  // Readiness from its own line: a probe query would leave DNS evidence some scenarios assert is absent.
  await p.waitReady(() => p.logTail(5).includes("dns-proxy listening"), 30_000, "listening on udp and tcp");
  return p;
}

/** HTTP GET from inside a namespace; true on a 2xx status. */
async function httpOk(ns: string, url: string): Promise<boolean> {
  const r = await run("ip", ["netns", "exec", ns, "curl", "-fsS", "--max-time", "2", "-o", "/dev/null", url], { timeoutMs: 4000 });
  return r.code === 0;
}
