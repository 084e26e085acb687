// `egret demo`: a small mesh on this machine — two pods behind their egret sidecars, cluster DNS
// and a web service outside, egret control and the agent on the node — with apps making real
// connections in a loop and a live table of what each app saw and what Egret decided.
import { statSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { MeshCluster } from "../mesh/cluster.js";
import { EgretSession } from "../mesh/session.js";
import { meshUnavailableReason } from "../mesh/netns.js";
import { missingComponents, operatorCommand, repoAt } from "../mesh/components.js";
import { waitForVerdict } from "../mesh/audit.js";
import { webCaPath } from "../mesh/services/index.js";
import { dnsImplementation } from "../mesh/services/dns.js";
import { commandLine, run } from "../mesh/exec.js";
import { sleep } from "../mesh/process.js";
import { DEMO_ACTIONS, DEMO_NAMESPACES, DEMO_POLICIES, DEMO_PODS, DEMO_WORLD, type DemoAction } from "./story.js";
import { LiveTable, type DemoRow } from "./table.js";

export const DEMO_PREFIX = "egD";
const VERDICT_WAIT_MS = 5_000;

export interface DemoOptions {
  durationMs: number;
  intervalMs: number;
  out: NodeJS.WriteStream;
}

const WHAT_IT_NEEDS = `egret demo builds a small mesh on this machine:
  - two pods as Linux network namespaces, each with an iptables REDIRECT to its own
    \`egret sidecar\` (running the real egret.wasm), as Istio's init container does;
  - cluster DNS and a web service in an "outside" namespace;
  - \`egret control\` (file mode) and \`egret agent\` (packet capture of the pods' DNS) on the node.
That needs root (network namespaces, iptables, packet capture) and the Debian packages of
scripts/apt-packages.txt (iproute2, iptables, tcpdump, …):
  sudo scripts/setup && sudo npm start               # or: sudo node bin/egret.js demo`;

function repoRoot(): string {
  return join(fileURLToPath(new URL(".", import.meta.url)), "../../../..");
}

/**
 * Why the mesh demo cannot run here — with what it needs and how to get it — or undefined.
 * The caller then offers the loopback variant (no root, no namespaces).
 */
export async function demoUnavailable(): Promise<string | undefined> {
  if (typeof process.getuid === "function" && process.getuid() !== 0) return `${WHAT_IT_NEEDS}\n\nYou are not root.`;
  const unavailable = await meshUnavailableReason(DEMO_PREFIX);
  if (unavailable) return `${WHAT_IT_NEEDS}\n\nThis machine cannot run it: ${unavailable}.`;
  const missing = missingComponents(repoAt(repoRoot()));
  if (missing.length > 0) return `egret demo needs the whole chain, and this build lacks: ${missing.join("; ")} (run \`npm run build\`).`;
  return undefined;
}

/** Runs the mesh demo (check demoUnavailable() first); resolves to the exit code. */
export async function runDemo(opts: DemoOptions): Promise<number> {
  const say = (s: string) => opts.out.write(`${s}\n`);
  const unavailable = await demoUnavailable();
  if (unavailable) { say(unavailable); return 1; }
  const repo = repoAt(repoRoot());

  let stopRequested = false;
  const onSignal = () => {
    if (stopRequested) process.exit(130); // a second Ctrl-C: the exit hooks still delete the namespaces
    stopRequested = true;
    say("\nstopping…");
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);

  const dir = mkdtempSync(join(tmpdir(), "egret-demo-"));
  let cluster: MeshCluster | undefined;
  let session: EgretSession | undefined;
  const started = Date.now();
  try {
    say(`building the mesh (network namespaces ${DEMO_PREFIX}*; DNS: ${dnsImplementation()}) …`);
    cluster = await MeshCluster.start({ prefix: DEMO_PREFIX, world: DEMO_WORLD, handleSignals: false });
    say("starting egret control, egret agent and one egret sidecar per pod …");
    session = await EgretSession.start(cluster, repo, { pods: DEMO_PODS, namespaces: DEMO_NAMESPACES, policies: DEMO_POLICIES }, dir);
    say(`ready in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    say(tryObserving(session));

    const intro = [
      "Egret demo — every connection below is real: an app in a pod namespace, redirected to its",
      "egret sidecar (egret.wasm), judged against the DNS answers this pod itself received.",
      "  shop/checkout: may reach api.example.test and *.googleapis.test over TLS on 443; evil.example.net is denied",
      "  lab/notebook:  policy in Monitor mode — would-deny is reported, nothing is blocked",
    ].join("\n");
    const table = new LiveTable(opts.out, intro);
    const deadline = Date.now() + opts.durationMs;
    const ca = webCaPath({ net: cluster.net, world: DEMO_WORLD, workDir: cluster.workDir });
    for (let i = 0; !stopRequested && Date.now() < deadline; i++) {
      session.assertRunning();
      const row = await perform(session, DEMO_ACTIONS[i % DEMO_ACTIONS.length]!, ca);
      const left = Math.max(0, Math.round((deadline - Date.now()) / 1000));
      table.add(row, `Ctrl-C to stop · ${left} s left (--duration) · ${i + 1} connections`);
      if (!stopRequested) await sleep(opts.intervalMs);
    }
    const counts = Object.entries(table.counts()).map(([v, n]) => `${n} ${v}`).join(", ");
    say(`\n${counts}. Each verdict above is a line of egret control's audit log; the filter that decided is the egret.wasm Envoy loads.`);
    return 0;
  } catch (e) {
    say(`egret demo failed: ${(e as Error).message}`);
    return 1;
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    await session?.stop();
    await cluster?.destroy();
    rmSync(dir, { recursive: true, force: true });
    say("mesh removed.");
  }
}

/** The `egret observe` command to try from another terminal while the demo runs (and `egret status`). */
export function tryObserving(session: EgretSession): string {
  const line = (command: "observe" | "status", extra: string[]) => {
    const [cmd, args] = operatorCommand(session.cluster.net, session.repo, session.files, command, extra);
    return `  sudo ${commandLine(cmd, args.map((a) => (a === process.execPath ? "node" : a)))}`;
  };
  return [
    "While it runs, watch the same verdicts live from egret control (its authenticated API) in another terminal:",
    line("observe", ["--follow"]),
    "and the one-screen health view:",
    line("status", []),
  ].join("\n");
}

/** One demo action: the app's connection from its pod, and the verdict control recorded for it. */
export async function perform(session: EgretSession, a: DemoAction, ca: string): Promise<DemoRow> {
  const pod = session.pod(a.pod);
  const offset = statSync(session.files.auditLog).size;
  const probe = fileURLToPath(new URL("../mesh/probes/app-probe.js", import.meta.url));
  const args = [probe, "--to", a.to, "--port", String(a.port), "--ca", ca];
  if (a.tls) args.push("--tls");
  if (a.sni) args.push("--sni", a.sni);
  if (a.host) args.push("--host", a.host);
  const time = new Date();
  const r = await run("ip", ["netns", "exec", pod.netns, process.execPath, ...args], { timeoutMs: 20_000 });
  let appSaw = "no output";
  let address: string | undefined = /^\d/.test(a.to) ? a.to : undefined;
  try {
    const j = JSON.parse(r.stdout.trim().split("\n").at(-1) ?? "") as { ok: boolean; status?: string; error?: string; address?: string };
    appSaw = j.ok ? (j.status ?? "").replace(/^HTTP\/1\.[01] /, "") : (j.error ?? "failed");
    address = j.address ?? address;
  } catch { appSaw = (r.stderr.trim().split("\n").at(-1) ?? "failed").slice(0, 40); }
  const { entry } = await waitForVerdict(session.files.auditLog, offset, { podKey: a.pod, podIp: pod.ip, destinationIp: address, destinationPort: a.port }, VERDICT_WAIT_MS);
  return { time, pod: a.pod, what: a.what, appSaw, entry };
}
