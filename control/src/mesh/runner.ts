// The scenario runner: one mesh cluster (network + outside services) shared by every scenario,
// and per scenario its pods, `egret control` with the scenario's policies, `egret agent`, one
// `egret sidecar` per pod; then the steps, each checked against its expectation (the client's
// outcome, and the verdict in the audit log); then teardown — always, even on failure.
import { statSync, rmSync, existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { MeshCluster } from "./cluster.js";
import { sleep } from "./process.js";
import { EgretSession } from "./session.js";
import { webCaPath } from "./services/index.js";
import { runConnect, runResolve, runUdp, expectedDestination, worldAddress, type ClientEnv } from "./clients.js";
import { auditMismatches, readBypasses, waitForVerdict, type AuditEntry, type BypassEntry, type VerdictQuery } from "./audit.js";
import { MESH_BYPASS_WINDOW_MS, missingComponents, sidecarUid, type MeshFiles, type Repo } from "./components.js";
import { SIDECAR_GID } from "./netns.js";
import type { BypassExpectation, ConnectStep, DnsMode, Scenario, Step, UdpStep } from "./scenario.js";
import type { World } from "./world.js";

/** How long a step's client may take to start and send before its bypass report is due. */
const CLIENT_START_SLACK_MS = 10_000;

/** How long a verdict may take to reach the audit log after the client finished. */
const AUDIT_WAIT_MS = 10_000;

export interface StepResult {
  step: Step;
  ok: boolean;
  /** The step failed and its scenario says this is a known defect (reported as TODO). */
  knownIssue?: boolean;
  /** What happened, one line: "connected", "refused (reason default-deny)", … */
  summary: string;
  /** A connect step: what the client saw (the last one, for a repeated step), and its command. */
  client?: { outcome: "connected" | "refused"; command: string };
  /** Why it failed, with the client's command and output and the audit entries seen. */
  detail?: string;
  audit?: AuditEntry;
}

export interface ScenarioResult {
  scenario: Scenario;
  /** The DNS mode it ran in. */
  dnsMode: DnsMode;
  /** Set when the scenario could not run at all on this machine / in this tree. */
  skipped?: string;
  ok: boolean;
  steps: StepResult[];
  /** Logs of the egret components for this scenario (kept when a step fails). */
  logDir: string;
}

export interface RunnerOptions {
  prefix: string;
  world: World;
  repo: Repo;
  /** Called with a line per step as it completes (progress output). */
  onStep?: (scenario: Scenario, r: StepResult) => void;
  /** Keep the cluster's scratch directory (logs) after close(). */
  keepWorkDir?: boolean;
  /** How pods resolve names when run() is not told (default cluster-dns). */
  dnsMode?: DnsMode;
}

export class ScenarioRunner {
  private constructor(readonly cluster: MeshCluster, private readonly opts: RunnerOptions) {}

  static async start(opts: RunnerOptions): Promise<ScenarioRunner> {
    const cluster = await MeshCluster.start({ prefix: opts.prefix, world: opts.world });
    return new ScenarioRunner(cluster, opts);
  }

  async close(): Promise<void> {
    await this.cluster.destroy({ keepWorkDir: this.opts.keepWorkDir });
  }

  /**
   * Runs one scenario in `dnsMode` (else the runner's). A scenario that says it cannot apply in
   * that mode (skipDnsModes) is skipped with its reason, never run.
   */
  async run(scenario: Scenario, options: { dnsMode?: DnsMode } = {}): Promise<ScenarioResult> {
    const dnsMode = options.dnsMode ?? this.opts.dnsMode ?? "cluster-dns";
    const logDir = join(this.cluster.workDir, "scenarios", `${scenario.name}-${dnsMode}`);
    const notApplicable = scenario.skipDnsModes[dnsMode];
    if (notApplicable) return { scenario, dnsMode, ok: false, steps: [], logDir, skipped: `not applicable in ${dnsMode} mode: ${notApplicable}` };
    const missing = missingComponents(this.opts.repo);
    if (missing.length > 0) return { scenario, dnsMode, ok: false, steps: [], logDir, skipped: missing.join("; ") };
    const results: StepResult[] = [];
    const connects = new Map<string, ConnectRecord>();
    this.bypass = { expected: new Set(), quiet: [], lastTrafficAt: 0 };
    let session: EgretSession | undefined;
    try {
      session = await EgretSession.start(this.cluster, this.opts.repo, { ...scenario, dnsMode }, logDir);
      for (const step of scenario.steps) {
        let r: StepResult;
        try {
          r = await this.runStep(session, step, connects);
        } catch (e) {
          r = { step, ok: false, summary: "error", detail: (e as Error).message };
        }
        if (!r.ok && step.knownIssue) r = { ...r, knownIssue: true };
        results.push(r);
        this.opts.onStep?.(scenario, r);
        if (!r.ok && step.kind === "restart") break; // later steps would only repeat this failure
      }
      const unexpected = await this.unexpectedBypasses(session.files.auditLog);
      if (unexpected) {
        results.push(unexpected);
        this.opts.onStep?.(scenario, unexpected);
      }
    } catch (e) {
      results.push({ step: { kind: "sleep", title: "start egret components", ms: 0 }, ok: false, summary: "error", detail: (e as Error).message });
    } finally {
      await session?.stop();
    }
    const ok = results.length >= scenario.steps.length && results.every((r) => r.ok || r.knownIssue);
    if (ok && !this.opts.keepWorkDir) rmSync(logDir, { recursive: true, force: true });
    return { scenario, dnsMode, ok, steps: results, logDir };
  }

  private async runStep(session: EgretSession, step: Step, connects: Map<string, ConnectRecord>): Promise<StepResult> {
    switch (step.kind) {
      case "await": {
        const ms = await session.awaitSidecarsConnected(step.within);
        return { step, ok: true, summary: `after ${(ms / 1000).toFixed(1)} s` };
      }
      case "stop":
        await (step.component === "control" ? session.stopControl() : session.stopAgent());
        return { step, ok: true, summary: `${step.component} stopped` };
      case "start":
        await (step.component === "control" ? session.startControl() : session.startAgent());
        return { step, ok: true, summary: `${step.component} started` };
      case "audit": {
        const c = connects.get(step.ref);
        if (!c) return { step, ok: false, summary: "error", detail: `connect step "${step.ref}" has not run` };
        const found = await waitForVerdict(session.files.auditLog, c.auditOffset, c.query, step.expect.within, (e) => auditMismatches(e, step.expect).length === 0);
        if (!found.entry) return { step, ok: false, summary: "no verdict", detail: `no verdict for ${step.ref} (${c.query.podKey} → ${c.query.destinationIp ?? "?"}:${c.query.destinationPort}) in the audit log within ${step.expect.within} ms` };
        const problems = auditMismatches(found.entry, step.expect);
        const summary = `${found.entry.verdict ?? "?"}, ${found.entry.reason ?? "?"}`;
        return problems.length ? { step, ok: false, summary, audit: found.entry, detail: `${problems.join("; ")}\naudit: ${JSON.stringify(found.entry.raw)}` } : { step, ok: true, summary, audit: found.entry };
      }
      case "sleep":
        await sleep(step.ms);
        return { step, ok: true, summary: `slept ${step.ms} ms` };
      case "restart":
        await (step.component === "control" ? session.restartControl() : session.restartAgent());
        return { step, ok: true, summary: `${step.component} restarted` };
      case "resolve": {
        const r = await runResolve(this.clientEnv(step.pod), step);
        const problems: string[] = [];
        if (step.expect.rcode && r.rcode !== step.expect.rcode) problems.push(`rcode: want ${step.expect.rcode}, got ${r.rcode}`);
        if (step.expect.addresses && [...r.addresses].sort().join(",") !== [...step.expect.addresses].sort().join(",")) {
          problems.push(`addresses: want ${step.expect.addresses.join(", ")}, got ${r.addresses.join(", ") || "(none)"}`);
        }
        const summary = `${r.rcode} ${r.addresses.join(", ")}`.trim();
        return problems.length === 0 ? { step, ok: true, summary } : { step, ok: false, summary, detail: `${problems.join("; ")}\n$ ${r.command}\n${r.output}` };
      }
      case "connect":
        return this.runConnectStep(step, session, connects);
      case "udp":
        return this.runUdpStep(step, session.files);
    }
  }

  /**
   * `expected`: keys a step expects a report for; `quiet`: steps that say `bypass: none` — no report
   * for their key whose first packet falls within the step (from its start until its client
   * finished), even for a key another step expects.
   */
  private bypass: { expected: Set<string>; quiet: { key: string; offset: number; from: number; until: number }[]; lastTrafficAt: number } = { expected: new Set(), quiet: [], lastTrafficAt: 0 };

  /** One datagram from the pod; then its bypass report (or none) as expected. */
  private async runUdpStep(step: UdpStep, files: MeshFiles): Promise<StepResult> {
    const ip = isIPv4Text(step.to) ? step.to : worldAddress(this.cluster.world, step.to);
    if (!ip) return { step, ok: false, summary: "error", detail: `${step.to} has no address in the world` };
    const offset = statSync(files.auditLog).size;
    const started = Date.now();
    const r = await runUdp(this.clientEnv(step.pod), step, ip);
    if (r.code !== 0) return { step, ok: false, summary: "send failed", detail: `$ ${r.command}\n${(r.stdout + r.stderr).trim()}` };
    const problems = await this.checkBypass(step.pod, ip, step.port, step.expect.bypass, files, offset, started);
    const summary = step.expect.bypass && step.expect.bypass !== "none" ? `bypass reported (${step.expect.bypass.cause ?? "any cause"})` : "sent, no bypass expected";
    return problems.length === 0 ? { step, ok: true, summary } : { step, ok: false, summary: "bypass mismatch", detail: problems.join("; ") };
  }

  /**
   * Records the step's traffic and, when it expects a bypass report, waits for it: an egret.bypass
   * line for the pod and destination within `within` of the step's start, with the cause and
   * protocol asked for. Returns what is wrong (empty when fine).
   */
  private async checkBypass(podKey: string, ip: string, port: number, want: BypassExpectation | "none" | undefined, files: MeshFiles, offset: number, started: number): Promise<string[]> {
    this.bypass.lastTrafficAt = Date.now();
    if (want === "none") this.bypass.quiet.push({ key: bypassKey(podKey, ip, port), offset, from: started, until: Date.now() });
    if (!want || want === "none") return [];
    this.bypass.expected.add(bypassKey(podKey, ip, port));
    const match = (b: BypassEntry) => b.pod === podKey && b.destinationIp === ip && b.destinationPort === port;
    // `within` is measured from the packet the agent saw (the report's time), not from the step's
    // start: starting the client process is not the agent's latency, and on a loaded machine it
    // alone took most of the 2 s. The wait gives the client CLIENT_START_SLACK_MS to get going.
    let found: BypassEntry | undefined;
    let arrivedAt = 0;
    while (!found && Date.now() - started <= want.within + CLIENT_START_SLACK_MS) {
      found = readBypasses(files.auditLog, offset).find(match);
      arrivedAt = Date.now();
      if (!found) await sleep(50);
    }
    if (!found) return [`no bypass report for ${podKey} → ${ip}:${port} within ${want.within + CLIENT_START_SLACK_MS} ms of the step's start`];
    const packetAt = Date.parse(String(found.raw.time));
    const latency = packetAt - started;
    const problems: string[] = [];
    if (arrivedAt - packetAt > want.within + 250) problems.push(`the bypass report came ${arrivedAt - packetAt} ms after its packet (want ${want.within} ms)`);
    if (want.cause && found.cause !== want.cause) problems.push(`cause: want ${want.cause}, got ${found.cause}`);
    if (want.protocol && found.protocol !== want.protocol) problems.push(`protocol: want ${want.protocol}, got ${found.protocol}`);
    if (problems.length) problems.push(`report: ${JSON.stringify(found.raw)} (first packet ${latency} ms after the step started)`);
    return problems;
  }

  /**
   * Every bypass report of the scenario must be one a step expected: after the last traffic has
   * had its window, any other egret.bypass line is a false report (ordinary traffic through the
   * sidecar must produce none).
   */
  private async unexpectedBypasses(auditLog: string): Promise<StepResult | undefined> {
    const settle = this.bypass.lastTrafficAt + MESH_BYPASS_WINDOW_MS + 800 - Date.now();
    if (this.bypass.lastTrafficAt > 0 && settle > 0) await sleep(settle);
    const keyOf = (b: BypassEntry) => bypassKey(b.pod, b.destinationIp ?? "", b.destinationPort ?? 0);
    const extra = readBypasses(auditLog).filter((b) => !this.bypass.expected.has(keyOf(b)));
    // A step that expects none also fails on a report for its key another step expects.
    const seen = new Set(extra.map((b) => JSON.stringify(b.raw)));
    for (const q of this.bypass.quiet) {
      for (const b of readBypasses(auditLog, q.offset)) {
        const at = Date.parse(String(b.raw.time));
        if (keyOf(b) !== q.key || !(at >= q.from && at <= q.until) || seen.has(JSON.stringify(b.raw))) continue;
        seen.add(JSON.stringify(b.raw));
        extra.push(b);
      }
    }
    if (extra.length === 0) return undefined;
    const step: Step = { kind: "sleep", title: "no bypass report beyond the expected ones", ms: 0 };
    return { step, ok: false, summary: `${extra.length} unexpected bypass report(s)`, detail: extra.slice(0, 10).map((b) => JSON.stringify(b.raw)).join("\n") };
  }

  private async runConnectStep(step: ConnectStep, session: EgretSession, connects: Map<string, ConnectRecord>): Promise<StepResult> {
    const times = step.repeat ?? 1;
    let last: StepResult | undefined;
    for (let i = 1; i <= times; i++) {
      const sub = (v: string | undefined) => v?.replace(/\{i\}/g, String(i));
      const one: ConnectStep = { ...step, to: sub(step.to)!, host: sub(step.host), sni: sub(step.sni), path: sub(step.path), send: sub(step.send) };
      last = await this.runOneConnect(one, session, connects);
      if (!last.ok) {
        return times > 1 ? { ...last, step, summary: `${i - 1} of ${times} as expected; #${i} ${one.to}: ${last.summary}` } : { ...last, step };
      }
    }
    return times > 1 ? { ...last!, step, summary: `${times} of ${times}: ${last!.summary}` } : { ...last!, step };
  }

  private async runOneConnect(step: ConnectStep, session: EgretSession, connects: Map<string, ConnectRecord>): Promise<StepResult> {
    const files = session.files;
    const auditOffset = statSync(files.auditLog).size;
    const pod = this.cluster.net.pod(step.pod);
    const dst = expectedDestination(this.cluster.world, step, (name) => session.meshAddress(step.pod, name));
    const query = { podKey: step.pod, podIp: pod.ip, destinationIp: dst.ip, destinationPort: dst.port };
    if (step.id) connects.set(step.id, { auditOffset, query });
    const started = Date.now();
    const env = this.clientEnv(step.pod);
    const r = await runConnect(step.as === "proxy-uid" ? { ...env, runAs: { uid: sidecarUid(this.opts.repo), gid: SIDECAR_GID } } : env, step);
    const problems: string[] = [];
    if (r.outcome !== step.expect.outcome) problems.push(`outcome: want ${step.expect.outcome}, got ${r.outcome}`);
    if (dst.ip) problems.push(...(await this.checkBypass(step.pod, dst.ip, dst.port, step.expect.bypass, files, auditOffset, started)));
    let entry: AuditEntry | undefined;
    const wantsAudit = step.expect.verdict || step.expect.reason || step.expect.policy || step.expect.rule !== undefined || step.expect.evidence || step.expect.cluster;
    if (wantsAudit) {
      const found = await waitForVerdict(files.auditLog, auditOffset, query, AUDIT_WAIT_MS, (e) => auditMismatches(e, step.expect).length === 0);
      entry = found.entry;
      if (!entry) problems.push(`no verdict for ${step.pod} → ${dst.ip ?? "?"}:${dst.port} in the audit log within ${AUDIT_WAIT_MS} ms (entries seen: ${found.seen})`);
      else problems.push(...auditMismatches(entry, step.expect));
    }
    const summary = `${r.outcome}${entry ? ` (${entry.verdict ?? "?"}, ${entry.reason ?? "?"}${entry.rule ? `, rule ${entry.rule}` : ""})` : ""}`;
    const client = { outcome: r.outcome, command: r.command };
    if (problems.length === 0) return { step, ok: true, summary, audit: entry, client };
    return { step, ok: false, summary, audit: entry, client, detail: `${problems.join("; ")}\n$ ${r.command}\n${r.output}${entry ? `\naudit: ${JSON.stringify(entry.raw)}` : ""}` };
  }

  private clientEnv(podKey: string): ClientEnv {
    return { netns: this.cluster.net.pod(podKey).netns, world: this.cluster.world, caFile: webCaPath({ net: this.cluster.net, world: this.cluster.world, workDir: this.cluster.workDir }) };
  }
}

function bypassKey(pod: string, ip: string, port: number): string {
  return `${pod}|${ip}|${port}`;
}

const isIPv4Text = (s: string) => /^\d+\.\d+\.\d+\.\d+$/.test(s);

/** Where a connect step's verdict will appear (for a later `audit` step). */
interface ConnectRecord {
  auditOffset: number;
  query: VerdictQuery;
}

/** A failed scenario as text: each failed step with its detail, and where the logs are. */
export function formatFailure(r: ScenarioResult): string {
  const lines = [`scenario ${r.scenario.name} (${r.scenario.file}, ${r.dnsMode} mode) failed; component logs in ${r.logDir}`];
  for (const s of r.steps) {
    lines.push(`  ${s.ok ? "ok  " : s.knownIssue ? "TODO" : "FAIL"} ${s.step.title}: ${s.summary}`);
    if (!s.ok && s.detail) lines.push(...s.detail.split("\n").map((l) => `         ${l}`));
  }
  if (r.steps.length < r.scenario.steps.length) lines.push(`  (${r.scenario.steps.length - r.steps.length} later steps not run)`);
  for (const f of existsSync(r.logDir) ? readdirSync(r.logDir).filter((n) => n.endsWith(".log")).sort() : []) {
    const text = readFileSync(join(r.logDir, f), "utf8").trimEnd();
    if (text) lines.push(`--- ${f} (last lines) ---`, ...text.split("\n").slice(-15));
  }
  return lines.join("\n");
}
