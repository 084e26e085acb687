// The mesh's network: Linux network namespaces wired like a one-node Kubernetes cluster.
//
//   pod netns  <prefix>-pod<N>        node netns <prefix>-node           outside netns <prefix>-out
//   eth0 198.18.1.x/32  ──veth──  <prefix>p<N> 198.18.0.1/32   ──veth──  eth0 198.19.x.y/32 …
//   default via 198.18.0.1            routes: pod /32s, 198.19/16;       default via 198.18.0.1
//   nat OUTPUT REDIRECT → :15001      ip_forward=1; control, agent
//
// Every pod link on the node carries the same gateway address (as Calico does), so a pod's
// traffic always crosses its own host-side interface — where the node agent captures DNS.
// Nothing is created in the caller's namespace: deleting the namespaces removes every link, and
// teardown kills the processes left inside them first. Names carry a prefix unique to the user
// of the mesh (tests "egG", demo "egD") so parallel runs never collide.
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { mustRun, run, runSync, hasProgram } from "./exec.js";

export const DEFAULT_GATEWAY = "198.18.0.1";
/** The uid and gid the sidecar runs as; its own traffic is exempt from the REDIRECT (as Istio's 1337). */
export const SIDECAR_UID = 1337;
export const SIDECAR_GID = 1337;
export const SIDECAR_PORT = 15001;
/** Where istio-agent's DNS proxy listens in the pod (constants.IstioAgentDNSListenerPort). */
export const DNS_PROXY_PORT = 15053;
/** The DNS capture's chains (Istio's ISTIO_OUTPUT_DNS in nat and raw, ISTIO_INBOUND in raw). */
const DNS_CHAIN = "EGRET_OUTPUT_DNS";
const DNS_INBOUND_CHAIN = "EGRET_INBOUND_DNS";

export interface PodNetwork {
  /** Logical key, e.g. "shop/checkout". */
  key: string;
  /** Network namespace name. */
  netns: string;
  ip: string;
  /** The pod link's name on the node side (where the agent captures). */
  hostInterface: string;
}

export interface RedirectOptions {
  /** Local port receiving redirected connections (the sidecar's listener). */
  port?: number;
  /** Connections opened by this uid or gid leave untouched (the sidecar's own upstream connections). */
  exemptUid?: number;
  exemptGid?: number;
  /** TCP destinations never redirected, e.g. the cluster DNS server on port 53. */
  exemptDestinations?: { ip: string; port?: number }[];
  /** TCP destination ports never redirected (Istio's traffic.sidecar.istio.io/excludeOutboundPorts). */
  exemptPorts?: number[];
}

/** Why the mesh cannot run on this machine, or undefined when it can. */
export async function meshUnavailableReason(prefix: string): Promise<string | undefined> {
  if (process.platform !== "linux") return "network namespaces need Linux";
  if (typeof process.getuid === "function" && process.getuid() !== 0) {
    return "creating network namespaces needs root (run as root, e.g. `sudo npm test`)";
  }
  for (const prog of ["ip", "iptables", "setpriv"]) {
    if (!hasProgram(prog)) return `\`${prog}\` is not installed (apt-get install -y ${prog === "ip" ? "iproute2" : prog === "setpriv" ? "util-linux" : prog})`;
  }
  const probe = `${prefix}-probe${process.pid}`;
  const r = await run("ip", ["netns", "add", probe]);
  if (r.code !== 0) return `\`ip netns add\` failed: ${r.stderr.trim() || `exit ${r.code}`} (a container needs CAP_SYS_ADMIN)`;
  try {
    const nat = await run("ip", ["netns", "exec", probe, "iptables", "-w", "-t", "nat", "-L", "OUTPUT", "-n"]);
    if (nat.code !== 0) return `iptables nat table unusable in a namespace: ${nat.stderr.trim()}`;
    const veth = await run("ip", ["-n", probe, "link", "add", "egprobe0", "type", "veth", "peer", "name", "egprobe1"]);
    if (veth.code !== 0) return `veth links unavailable: ${veth.stderr.trim()}`;
  } finally {
    await run("ip", ["netns", "del", probe]);
  }
  return undefined;
}

/** Names of existing namespaces starting with `<prefix>-`. */
export async function listNamespaces(prefix: string): Promise<string[]> {
  const r = await run("ip", ["netns", "list"]);
  if (r.code !== 0) return [];
  return r.stdout.split("\n").map((l) => l.trim().split(/\s+/)[0]).filter((n): n is string => !!n && n.startsWith(`${prefix}-`));
}

/** Kills what runs inside `ns` (processes the mesh started there) and deletes it, synchronously. */
export function deleteNamespaceSync(ns: string): void {
  const pids = runSync("ip", ["netns", "pids", ns]).stdout.split(/\s+/).filter(Boolean).map(Number);
  for (const pid of pids) { try { process.kill(pid, "SIGKILL"); } catch { /* gone */ } }
  runSync("ip", ["netns", "del", ns]);
  rmSync(`/etc/netns/${ns}`, { recursive: true, force: true });
}

/** Removes namespaces left by an earlier run with this prefix that was killed before teardown. */
export async function cleanupStale(prefix: string): Promise<string[]> {
  const stale = await listNamespaces(prefix);
  for (const ns of stale) deleteNamespaceSync(ns);
  return stale;
}

/** Where running meshes record which prefix they hold (one pid file per prefix). */
export const CLAIM_DIR = "/run/egret-mesh";
const SLOTS = "0123456789abcdefghijklmnopqrstuvwxyz";

function alive(pid: number): boolean {
  try { process.kill(pid, 0); return true; } catch (e) { return (e as NodeJS.ErrnoException).code === "EPERM"; }
}

/**
 * Claims a free prefix `<base><slot>` for this process, so that several runs on one machine
 * (parallel test suites, a demo) never share namespaces. A slot whose owner died is reclaimed:
 * its leftover namespaces and processes are removed first. The claim is released by
 * releasePrefix() and at process exit.
 */
export async function claimPrefix(base: string): Promise<string> {
  mkdirSync(CLAIM_DIR, { recursive: true });
  for (const slot of SLOTS) {
    const prefix = `${base}${slot}`;
    const file = `${CLAIM_DIR}/${prefix}.pid`;
    if (existsSync(file)) {
      const owner = Number(readFileSync(file, "utf8").trim());
      if (owner === process.pid || (owner > 0 && alive(owner))) continue;
      // Stale: move it aside atomically so that only one process reclaims the slot.
      const aside = `${file}.${process.pid}.stale`;
      try { renameSync(file, aside); } catch { continue; }
      rmSync(aside, { force: true });
      await cleanupStale(prefix);
    }
    try {
      writeFileSync(file, `${process.pid}\n`, { flag: "wx" });
    } catch {
      continue; // another process took it between our check and our write
    }
    claimed.add(prefix);
    installClaimRelease();
    return prefix;
  }
  throw new Error(`no free mesh prefix ${base}0-${base}z: ${SLOTS.length} meshes are running (see ${CLAIM_DIR})`);
}

const claimed = new Set<string>();
let claimReleaseInstalled = false;
function installClaimRelease(): void {
  if (claimReleaseInstalled) return;
  claimReleaseInstalled = true;
  process.on("exit", () => { for (const p of claimed) releasePrefixSync(p); });
}

function releasePrefixSync(prefix: string): void {
  const file = `${CLAIM_DIR}/${prefix}.pid`;
  try {
    if (Number(readFileSync(file, "utf8").trim()) === process.pid) rmSync(file, { force: true });
  } catch { /* already gone */ }
  claimed.delete(prefix);
}

/** Gives a claimed prefix back (after its namespaces are deleted). */
export function releasePrefix(prefix: string): void {
  releasePrefixSync(prefix);
}

const tracked = new Set<string>();
let exitHookInstalled = false;
let signalHookInstalled = false;
function track(ns: string, handleSignals: boolean): void {
  tracked.add(ns);
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.on("exit", () => { for (const n of tracked) deleteNamespaceSync(n); });
  }
  if (handleSignals && !signalHookInstalled) {
    signalHookInstalled = true;
    for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
      process.once(sig, () => {
        for (const n of tracked) deleteNamespaceSync(n);
        process.exit(128 + ({ SIGINT: 2, SIGTERM: 15, SIGHUP: 1 } as const)[sig]);
      });
    }
  }
}

export interface MeshNetworkOptions {
  /**
   * Base of the namespace and link names (1-4 characters): create() claims `<base><slot>`
   * (claimPrefix), so concurrent meshes on one machine never collide.
   */
  prefix: string;
  /** Addresses the outside namespace answers on (services, the DNS server). */
  outsideAddresses: string[];
  /** Routed towards the outside namespace. */
  outsideCidr?: string;
  /** Cluster DNS written into each pod's resolv.conf. */
  resolver?: string;
  gateway?: string;
  /**
   * Delete the namespaces and exit on SIGINT/SIGTERM/SIGHUP (default true). A caller with its own
   * signal handling (the demo) turns it off and calls destroy(). Namespaces are deleted at
   * process exit either way.
   */
  handleSignals?: boolean;
}

export class MeshNetwork {
  readonly prefix: string;
  readonly nodeNs: string;
  readonly outsideNs: string;
  readonly gateway: string;
  readonly resolver: string | undefined;
  private readonly pods = new Map<string, PodNetwork>();
  private nextPodIndex = 1;
  private readonly handleSignals: boolean;

  private constructor(opts: MeshNetworkOptions) {
    this.prefix = opts.prefix;
    this.nodeNs = `${opts.prefix}-node`;
    this.outsideNs = `${opts.prefix}-out`;
    this.gateway = opts.gateway ?? DEFAULT_GATEWAY;
    this.resolver = opts.resolver;
    this.handleSignals = opts.handleSignals ?? true;
  }

  /** Cleans stale namespaces with this prefix, then builds the node and outside namespaces. */
  static async create(opts: MeshNetworkOptions): Promise<MeshNetwork> {
    if (!/^[A-Za-z][A-Za-z0-9]{0,3}$/.test(opts.prefix)) {
      throw new Error(`mesh prefix "${opts.prefix}" must be 1-4 letters/digits starting with a letter (link names are limited to 15 characters)`);
    }
    const prefix = await claimPrefix(opts.prefix);
    await cleanupStale(prefix);
    const net = new MeshNetwork({ ...opts, prefix });
    try {
      await net.addNamespace(net.nodeNs);
      await net.sh(net.nodeNs, "sysctl", "-qw", "net.ipv4.ip_forward=1");
      await net.addNamespace(net.outsideNs);
      const hostIf = `${opts.prefix}out`;
      await net.linkNodeTo(net.outsideNs, hostIf);
      for (const ip of opts.outsideAddresses) await net.sh(net.outsideNs, "ip", "addr", "add", `${ip}/32`, "dev", "eth0");
      await net.sh(net.nodeNs, "ip", "route", "add", opts.outsideCidr ?? "198.19.0.0/16", "dev", hostIf);
      if (opts.resolver) net.writeResolvConf(net.outsideNs, opts.resolver);
    } catch (e) {
      await net.destroy();
      throw e;
    }
    return net;
  }

  /** Adds a pod namespace with address `ip`, routed through the node. */
  async addPod(key: string, ip: string): Promise<PodNetwork> {
    if (this.pods.has(key)) throw new Error(`pod ${key} already exists in the mesh`);
    const index = this.nextPodIndex++;
    const pod: PodNetwork = { key, netns: `${this.prefix}-pod${index}`, ip, hostInterface: `${this.prefix}p${index}` };
    await this.addNamespace(pod.netns);
    this.pods.set(key, pod);
    await this.linkNodeTo(pod.netns, pod.hostInterface);
    await this.sh(pod.netns, "ip", "addr", "add", `${ip}/32`, "dev", "eth0");
    await this.sh(this.nodeNs, "ip", "route", "add", `${ip}/32`, "dev", pod.hostInterface);
    if (this.resolver) this.writeResolvConf(pod.netns, this.resolver);
    return pod;
  }

  /** Istio's init container, reduced to what matters here: outbound TCP goes to the sidecar. */
  async redirectOutbound(pod: PodNetwork, opts: RedirectOptions = {}): Promise<void> {
    const ipt = (...args: string[]) => this.sh(pod.netns, "iptables", "-w", "-t", "nat", ...args);
    await ipt("-N", "EGRET_OUTPUT");
    await ipt("-A", "OUTPUT", "-p", "tcp", "-j", "EGRET_OUTPUT");
    // Both owner matches, as istio-iptables installs them.
    await ipt("-A", "EGRET_OUTPUT", "-m", "owner", "--uid-owner", String(opts.exemptUid ?? SIDECAR_UID), "-j", "RETURN");
    await ipt("-A", "EGRET_OUTPUT", "-m", "owner", "--gid-owner", String(opts.exemptGid ?? SIDECAR_GID), "-j", "RETURN");
    await ipt("-A", "EGRET_OUTPUT", "-d", "127.0.0.0/8", "-j", "RETURN");
    for (const d of opts.exemptDestinations ?? []) {
      await ipt("-A", "EGRET_OUTPUT", "-d", `${d.ip}/32`, "-p", "tcp", ...(d.port ? ["--dport", String(d.port)] : []), "-j", "RETURN");
    }
    for (const port of opts.exemptPorts ?? []) await ipt("-A", "EGRET_OUTPUT", "-p", "tcp", "--dport", String(port), "-j", "RETURN");
    await ipt("-A", "EGRET_OUTPUT", "-p", "tcp", "-j", "REDIRECT", "--to-ports", String(opts.port ?? SIDECAR_PORT));
  }

  /**
   * Istio's DNS capture, as istio-iptables installs it with `--redirect-dns` (ISTIO_META_DNS_CAPTURE;
   * istio/istio tools/istio-iptables/pkg/capture/run.go `SetupDNSRedir` and
   * `addDNSConntrackZones`, the layout of tags 1.25.0–HEAD; 1.20–1.24 put the same rules straight
   * into OUTPUT): the pod's DNS to each of its resolv.conf servers, UDP **and TCP** port 53, is
   * REDIRECTed to the DNS proxy on 127.0.0.1:`port` (istio-agent's 15053) — except the proxy's own,
   * by uid or gid 1337, which must reach the resolver from the pod's address. The raw table keeps
   * agent↔resolver UDP (zone 1) and app↔agent UDP (zone 2) in separate conntrack zones. Ports in
   * `exemptPorts` (excludeOutboundPorts) are left alone for both protocols, as Istio ≥ 1.25 does.
   */
  async redirectDns(pod: PodNetwork, resolvers: string[], opts: { port?: number; exemptPorts?: number[] } = {}): Promise<void> {
    const port = String(opts.port ?? DNS_PROXY_PORT);
    const nat = (...args: string[]) => this.sh(pod.netns, "iptables", "-w", "-t", "nat", ...args);
    const raw = (...args: string[]) => this.sh(pod.netns, "iptables", "-w", "-t", "raw", ...args);
    const proxyOwners = [["--uid-owner", String(SIDECAR_UID)], ["--gid-owner", String(SIDECAR_GID)]];
    await nat("-N", DNS_CHAIN);
    await nat("-A", "OUTPUT", "-j", DNS_CHAIN);
    for (const p of opts.exemptPorts ?? []) {
      for (const proto of ["tcp", "udp"]) await nat("-A", DNS_CHAIN, "-p", proto, "--dport", String(p), "-j", "RETURN");
    }
    for (const owner of proxyOwners) await nat("-A", DNS_CHAIN, "-m", "owner", ...owner, "-j", "RETURN");
    for (const r of resolvers) {
      for (const proto of ["tcp", "udp"]) await nat("-A", DNS_CHAIN, "-p", proto, "--dport", "53", "-d", `${r}/32`, "-j", "REDIRECT", "--to-ports", port);
    }
    await raw("-N", DNS_CHAIN);
    await raw("-N", DNS_INBOUND_CHAIN);
    await raw("-A", "OUTPUT", "-j", DNS_CHAIN);
    await raw("-A", "PREROUTING", "-j", DNS_INBOUND_CHAIN);
    for (const owner of proxyOwners) {
      await raw("-A", DNS_CHAIN, "-p", "udp", "--dport", "53", "-m", "owner", ...owner, "-j", "CT", "--zone", "1");
      await raw("-A", DNS_CHAIN, "-p", "udp", "--sport", port, "-m", "owner", ...owner, "-j", "CT", "--zone", "2");
    }
    for (const r of resolvers) {
      await raw("-A", DNS_CHAIN, "-p", "udp", "--dport", "53", "-d", `${r}/32`, "-j", "CT", "--zone", "2");
      await raw("-A", DNS_INBOUND_CHAIN, "-p", "udp", "--sport", "53", "-s", `${r}/32`, "-j", "CT", "--zone", "1");
    }
  }

  async removePod(key: string): Promise<void> {
    const pod = this.pods.get(key);
    if (!pod) return;
    this.pods.delete(key);
    deleteNamespaceSync(pod.netns);
    tracked.delete(pod.netns);
  }

  pod(key: string): PodNetwork {
    const p = this.pods.get(key);
    if (!p) throw new Error(`no pod ${key} in the mesh`);
    return p;
  }

  podList(): PodNetwork[] {
    return [...this.pods.values()];
  }

  /** Deletes every namespace of this mesh (pods first), killing what still runs inside. */
  async destroy(): Promise<void> {
    for (const key of [...this.pods.keys()]) await this.removePod(key);
    for (const ns of [this.outsideNs, this.nodeNs]) { deleteNamespaceSync(ns); tracked.delete(ns); }
    releasePrefix(this.prefix);
  }

  /** Runs a command inside a namespace, throwing with its stderr on failure. */
  async sh(ns: string, cmd: string, ...args: string[]): Promise<string> {
    return (await mustRun("ip", ["netns", "exec", ns, cmd, ...args], { timeoutMs: 15_000 })).stdout;
  }

  private async addNamespace(ns: string): Promise<void> {
    await mustRun("ip", ["netns", "add", ns]);
    track(ns, this.handleSignals);
    await this.sh(ns, "ip", "link", "set", "lo", "up");
  }

  /** veth between the node and `ns`: `hostIf` on the node, eth0 in `ns`, both up, routed. */
  private async linkNodeTo(ns: string, hostIf: string): Promise<void> {
    await mustRun("ip", ["-n", this.nodeNs, "link", "add", hostIf, "type", "veth", "peer", "name", "eth0", "netns", ns]);
    await this.sh(this.nodeNs, "ip", "addr", "add", `${this.gateway}/32`, "dev", hostIf);
    await this.sh(this.nodeNs, "ip", "link", "set", hostIf, "up");
    await this.sh(ns, "ip", "link", "set", "eth0", "up");
    await this.sh(ns, "ip", "route", "add", `${this.gateway}/32`, "dev", "eth0");
    await this.sh(ns, "ip", "route", "add", "default", "via", this.gateway, "dev", "eth0");
  }

  /** `ip netns exec` bind-mounts /etc/netns/<ns>/resolv.conf over /etc/resolv.conf. */
  private writeResolvConf(ns: string, resolver: string): void {
    const dir = `/etc/netns/${ns}`;
    if (!existsSync(dir)) mkdirSync(dir, { recursive: true });
    writeFileSync(`${dir}/resolv.conf`, `# written by the egret mesh for ${ns}\nnameserver ${resolver}\noptions timeout:2 attempts:2\n`);
  }
}
