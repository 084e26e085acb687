// Egret running on a mesh cluster for one set of pods and policies: the pods' namespaces with
// their REDIRECT, `egret control` (file mode) with those policies, `egret agent`, one
// `egret sidecar` per pod. Used by the scenario runner (one session per scenario) and the demo.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { stringify } from "yaml";
import type { MeshCluster } from "./cluster.js";
import type { ManagedProcess } from "./process.js";
import { SIDECAR_GID, SIDECAR_PORT, SIDECAR_UID, type PodNetwork } from "./netns.js";
import {
  AGENT_HTTP_PORT, SIDECAR_ADMIN_PORT, moduleUrl, nodeName, startAgent, startControl, startDnsProxy, startSidecar, writeAgentCredentials, writeOperatorCredentials,
  type MeshFiles, type Repo, type ServedModules,
} from "./components.js";
import { run } from "./exec.js";
import { sleep } from "./process.js";
import type { DnsMode, ScenarioPod } from "./scenario.js";
import { outboundExclusions } from "../control/pods.js";
import { allocateAddresses, dnsNameTable, serviceRoutes } from "./service-entries.js";

/** Pods get 198.18.1.10, .11, … in declaration order. */
export const POD_ADDRESS_BASE = 10;

export interface SessionSpec {
  pods: ScenarioPod[];
  namespaces: Record<string, { labels: Record<string, string> }>;
  policies: unknown[];
  /**
   * Module delivery as in a real mesh: control serves `modules`, and each sidecar starts with no
   * filter and downloads what pushModule names, like istio-agent of `istio[podKey]` (default 1.25).
   */
  ecds?: { modules: ServedModules; istio?: Record<string, string> };
  /**
   * dns-proxy: every pod with a sidecar gets Istio's DNS capture and istio-agent's DNS proxy
   * (ISTIO_META_DNS_CAPTURE); cluster-dns (default): pods query the cluster resolver directly.
   * Pods without a sidecar have no istio-agent, so no DNS proxy, in either mode.
   */
  dnsMode?: DnsMode;
  /** Istio ServiceEntries: control reads them, sidecars route their addresses, DNS proxies answer their hosts. */
  serviceEntries?: unknown[];
}

export class EgretSession {
  private readonly sidecars: ManagedProcess[] = [];
  private readonly dnsProxies: ManagedProcess[] = [];
  private control: ManagedProcess | undefined;
  private agent: ManagedProcess | undefined;
  private readonly pods = new Map<string, PodNetwork>();
  /** What control serves at /wasm/egret.wasm (ECDS sessions). */
  private modules: ServedModules | undefined;
  /** Pods declared `sidecar: false`: no REDIRECT, no sidecar. */
  private readonly bare = new Set<string>();
  /** ServiceEntries after istiod's allocation (status.addresses). */
  private serviceEntries: unknown[] = [];
  private dnsMode: DnsMode = "cluster-dns";

  private constructor(readonly cluster: MeshCluster, readonly repo: Repo, readonly files: MeshFiles) {}

  /** Starts everything; on failure stops what started and rethrows (logs stay in `dir`). */
  static async start(cluster: MeshCluster, repo: Repo, spec: SessionSpec, dir: string): Promise<EgretSession> {
    mkdirSync(join(dir, "policies"), { recursive: true });
    const files: MeshFiles = {
      policyDir: join(dir, "policies"), podsFile: join(dir, "pods.yaml"), auditLog: join(dir, "audit.log"), logDir: dir,
      agentTokens: join(dir, "agent-tokens"), agentToken: join(dir, "agent-token"),
      operatorTokens: join(dir, "operator-tokens"), operatorToken: join(dir, "operator-token"),
    };
    writeFileSync(join(files.policyDir, "policies.yaml"), spec.policies.map((p) => stringify(p)).join("---\n"));
    const serviceEntries = allocateAddresses(spec.serviceEntries ?? []);
    if (serviceEntries.length > 0) {
      files.serviceEntries = join(dir, "serviceentries.yaml");
      writeFileSync(files.serviceEntries, serviceEntries.map((e) => stringify(e)).join("---\n"));
    }
    writeFileSync(files.auditLog, "");
    const s = new EgretSession(cluster, repo, files);
    s.serviceEntries = serviceEntries;
    s.dnsMode = spec.dnsMode ?? "cluster-dns";
    try {
      await s.startAll(spec);
    } catch (e) {
      await s.stop();
      throw e;
    }
    return s;
  }

  private async startAll(spec: SessionSpec): Promise<void> {
    const { net, world } = this.cluster;
    for (const [i, p] of spec.pods.entries()) {
      const podNet = await net.addPod(p.key, `198.18.1.${POD_ADDRESS_BASE + i}`);
      this.pods.set(p.key, podNet);
      if (p.sidecar === false) {
        this.bare.add(p.key);
        continue;
      }
      const exemptPorts = outboundExclusions(p.annotations).excludedOutboundPorts ?? [];
      await net.redirectOutbound(podNet, { port: SIDECAR_PORT, exemptUid: SIDECAR_UID, exemptGid: SIDECAR_GID, exemptDestinations: [{ ip: world.resolver, port: 53 }], exemptPorts });
      if (spec.dnsMode === "dns-proxy") {
        await net.redirectDns(podNet, [world.resolver], { exemptPorts });
        this.dnsProxies.push(await startDnsProxy(podNet, this.repo, this.files, world.resolver, dnsNameTable(this.serviceEntries, p.namespace)));
      }
    }
    writeFileSync(this.files.podsFile, stringify({
      namespaces: Object.entries(spec.namespaces).map(([name, v]) => ({ name, labels: v.labels })),
      pods: spec.pods.map((p) => ({
        name: p.name, namespace: p.namespace, labels: p.labels, ips: [this.pods.get(p.key)!.ip], node: nodeName(net),
        sidecar: p.sidecar !== false,
        ...(p.annotations ? { annotations: p.annotations } : {}),
      })),
    }));
    writeAgentCredentials(net, this.files);
    writeOperatorCredentials(this.files);
    this.modules = spec.ecds?.modules;
    this.control = await startControl(net, this.repo, this.files, world.clusterCidrs, this.modules);
    this.agent = await startAgent(net, this.repo, this.files, world.resolver);
    const forwardProxies = world.services.filter((s) => s.kind === "forward-proxy").flatMap((s) => s.addresses.map((a) => `${a}:${s.port}`));
    for (const p of spec.pods) {
      if (this.bare.has(p.key)) continue;
      const ecds = spec.ecds ? { istioVersion: spec.ecds.istio?.[p.key] ?? "1.25" } : undefined;
      this.sidecars.push(await startSidecar(net, this.pods.get(p.key)!, p, this.repo, this.files, forwardProxies, ecds, serviceRoutes(this.serviceEntries, p.namespace)));
    }
  }

  pod(key: string): PodNetwork {
    const p = this.pods.get(key);
    if (!p) throw new Error(`no pod ${key} in this session`);
    return p;
  }

  /**
   * The address the pod's DNS proxy answers for `name` (a visible ServiceEntry host), in dns-proxy
   * mode; undefined otherwise (the cluster resolver answers it).
   */
  meshAddress(podKey: string, name: string): string | undefined {
    if (this.dnsMode !== "dns-proxy" || this.bare.has(podKey)) return undefined;
    return dnsNameTable(this.serviceEntries, podKey.split("/")[0]!).get(name)?.[0];
  }

  /** Kills control (SIGKILL, as a crash) and starts it again with the same files. */
  async restartControl(): Promise<void> {
    this.control?.killNow();
    await this.control?.waitExit();
    this.control = await startControl(this.cluster.net, this.repo, this.files, this.cluster.world.clusterCidrs, this.modules);
  }

  /**
   * The control phase of an upgrade: control restarts serving `modules` (the new release's module
   * and the previous one beside it). Killed and started again, as a one-replica rollout would.
   */
  async upgradeControl(modules: ServedModules): Promise<void> {
    this.modules = modules;
    await this.restartControl();
  }

  /**
   * istiod pushes the EnvoyFilter's ECDS resource naming the module `sha256` to the pod's sidecar;
   * resolves with what its istio-agent did ("applied", "nack" or "deny-all") and the slot's state.
   */
  async pushModule(podKey: string, sha256: string): Promise<{ result: string; state: string; sha256?: string; lastError?: string }> {
    const pod = this.pod(podKey);
    const body = JSON.stringify({ url: moduleUrl(this.cluster.net, sha256), sha256 });
    const r = await run("ip", ["netns", "exec", pod.netns, "curl", "-sS", "--max-time", "60", "-X", "POST", "-H", "content-type: application/json", "--data", body, `http://127.0.0.1:${SIDECAR_ADMIN_PORT}/ecds`], { timeoutMs: 65_000 });
    if (r.code !== 0) throw new Error(`push to ${podKey}'s sidecar failed: ${r.stderr}`);
    return JSON.parse(r.stdout) as { result: string; state: string; sha256?: string };
  }

  /** The sidecar's ECDS slot: state ("passthrough", "module", "deny-all", "warming") and counters. */
  async moduleState(podKey: string): Promise<{ state: string; sha256?: string; nacks: number; fallbacks: number; rbacDenied: number }> {
    const pod = this.pod(podKey);
    const r = await run("ip", ["netns", "exec", pod.netns, "curl", "-fsS", "--max-time", "5", `http://127.0.0.1:${SIDECAR_ADMIN_PORT}/ecds`], { timeoutMs: 8_000 });
    if (r.code !== 0) throw new Error(`${podKey}'s sidecar has no ECDS state: ${r.stderr}`);
    return JSON.parse(r.stdout) as { state: string; sha256?: string; nacks: number; fallbacks: number; rbacDenied: number };
  }

  /** Stops control (SIGKILL, as a crash) and leaves it down until startControl(). */
  async stopControl(): Promise<void> {
    this.control?.killNow();
    await this.control?.waitExit();
    this.control = undefined;
  }

  async startControl(): Promise<void> {
    if (this.control?.running) throw new Error("egret control is already running");
    this.control = await startControl(this.cluster.net, this.repo, this.files, this.cluster.world.clusterCidrs, this.modules);
  }

  async stopAgent(): Promise<void> {
    this.agent?.killNow();
    await this.agent?.waitExit();
    this.agent = undefined;
  }

  async startAgent(): Promise<void> {
    if (this.agent?.running) throw new Error("egret agent is already running");
    this.agent = await startAgent(this.cluster.net, this.repo, this.files, this.cluster.world.resolver, this.agentPort);
  }

  /**
   * A rolling restart as the DaemonSet does it (maxSurge 1, maxUnavailable 0): the new agent starts
   * and captures first, then the old one gets SIGTERM and drains (everything it captured is
   * acknowledged by control before it exits). While both run, control receives answers twice and
   * keeps one.
   */
  async restartAgent(): Promise<void> {
    const old = this.agent;
    this.agentPort = this.agentPort === AGENT_HTTP_PORT ? AGENT_HTTP_PORT + 1 : AGENT_HTTP_PORT;
    this.agent = await startAgent(this.cluster.net, this.repo, this.files, this.cluster.world.resolver, this.agentPort);
    await old?.stop(15_000);
  }

  /** The agent dies without draining (SIGKILL, OOM, node crash): what it had not delivered is lost. */
  async killAgent(): Promise<void> {
    this.agent?.killNow();
    await this.agent?.waitExit();
    this.agent = await startAgent(this.cluster.net, this.repo, this.files, this.cluster.world.resolver, this.agentPort);
  }

  private agentPort = AGENT_HTTP_PORT;

  /**
   * Waits until every sidecar reports its filter's Watch stream up (wasmcustom metric
   * egret_watch_connected on the admin port); resolves to the milliseconds it took.
   */
  async awaitSidecarsConnected(withinMs: number): Promise<number> {
    const started = Date.now();
    for (const [key, pod] of this.pods) {
      if (this.bare.has(key)) continue;
      for (;;) {
        const r = await run("ip", ["netns", "exec", pod.netns, "curl", "-fsS", "--max-time", "2", `http://127.0.0.1:${SIDECAR_ADMIN_PORT}/stats/prometheus`], { timeoutMs: 4000 });
        const m = /^egret_watch_connected\s+(\d+)/m.exec(r.stdout);
        if (m && Number(m[1]) >= 1) break;
        if (Date.now() - started > withinMs) throw new Error(`sidecar of ${key} not connected to control after ${withinMs} ms (egret_watch_connected ${m?.[1] ?? "absent"})`);
        await sleep(200);
      }
    }
    return Date.now() - started;
  }

  /** Throws if a component died (with its log tail). */
  assertRunning(): void {
    for (const p of [this.control, this.agent, ...this.sidecars, ...this.dnsProxies]) p?.assertRunning();
  }

  /** Stops every component and removes the pods. Safe to call twice. */
  async stop(): Promise<void> {
    const procs = [...this.sidecars, ...this.dnsProxies, this.agent, this.control].filter((p): p is ManagedProcess => !!p);
    await Promise.all(procs.map((p) => p.stop()));
    for (const key of [...this.pods.keys()]) await this.cluster.net.removePod(key);
    this.pods.clear();
  }
}
