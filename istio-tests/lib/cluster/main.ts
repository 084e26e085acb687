// istio-tests against a real cluster: kind + Istio (istioctl) + Egret (this checkout's image and
// `egret manifests`), the outside world in a container on kind's network, then every scenario
// file: its namespaces, pods and policies are applied, its steps run in the pods with real
// clients, and each connection's verdict is checked in the control service's audit log.
//   istio-tests/run [--scenario NAME]… [--keep] [--reuse] [--cluster NAME] [--require-cluster]
// Where no cluster can be created (no Docker engine, no kind, …) it says why and exits 0 with
// every scenario counted as skipped; --require-cluster makes that exit 1 (for CI machines that
// are expected to run it).
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { CommandError, mustRun, run } from "../../../control/src/mesh/exec.js";
import { loadScenarioDir, type ConnectStep, type ResolveStep, type Scenario, type Step } from "../../../control/src/mesh/scenario.js";
import { loadWorld, type World } from "../../../control/src/mesh/world.js";
import { expectedDestination } from "../../../control/src/mesh/clients.js";
import { toYaml } from "../../../control/src/deploy/render.js";
import { clusterUnavailableReasons } from "./preflight.js";
import { corefileWithWorld, webCertificateNames, worldBundle, WORLD_MOUNT } from "./world-bundle.js";
import { APP_CONTAINER, scenarioObjects } from "./objects.js";
import { auditVerdict, connectCommand, resolveCommand } from "./clients.js";

const ROOT = fileURLToPath(new URL("../../../../", import.meta.url));
const SCENARIOS = join(ROOT, "istio-tests", "scenarios");
const EGRET_IMAGE = "egret:istio-tests";
const WORLD_IMAGE = "egret-world:istio-tests";
const LONG = 15 * 60_000;

function log(msg: string): void { process.stdout.write(`istio-tests: ${msg}\n`); }

async function sh(cmd: string, args: string[], opts: { timeoutMs?: number; input?: string } = {}): Promise<string> {
  return (await mustRun(cmd, args, { timeoutMs: opts.timeoutMs ?? 120_000, input: opts.input })).stdout;
}

async function kubectl(args: string[], opts: { timeoutMs?: number; input?: string } = {}): Promise<string> {
  return sh("kubectl", args, opts);
}

/** Polls `fn` until it returns a value, or throws after the deadline (no fixed sleeps). */
async function eventually<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 60_000, intervalMs = 1000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try { const v = await fn(); if (v !== undefined) return v; } catch (err) { last = err; }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ""}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

interface Options { cluster: string; keep: boolean; reuse: boolean; scenarios: string[] }

async function createCluster(o: Options, work: string): Promise<void> {
  const existing = (await sh("kind", ["get", "clusters"])).split("\n").includes(o.cluster);
  if (existing && !o.reuse) throw new Error(`a kind cluster named ${o.cluster} already exists: delete it (kind delete cluster --name ${o.cluster}) or pass --reuse`);
  if (!existing) {
    const config = join(work, "kind.yaml");
    writeFileSync(config, "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n- role: control-plane\n- role: worker\n- role: worker\n");
    log(`creating kind cluster ${o.cluster}`);
    await sh("kind", ["create", "cluster", "--name", o.cluster, "--config", config, "--wait", "5m"], { timeoutMs: LONG });
  }
  await sh("kubectl", ["config", "use-context", `kind-${o.cluster}`]);
}

async function buildImages(o: Options): Promise<void> {
  log("building the egret image (Dockerfile) and the world/toolbox image (istio-tests/world/Dockerfile)");
  await sh("docker", ["build", "-t", EGRET_IMAGE, ROOT], { timeoutMs: LONG });
  await sh("docker", ["build", "-t", WORLD_IMAGE, "-f", join(ROOT, "istio-tests", "world", "Dockerfile"), ROOT], { timeoutMs: LONG });
  for (const image of [EGRET_IMAGE, WORLD_IMAGE]) await sh("kind", ["load", "docker-image", image, "--name", o.cluster], { timeoutMs: LONG });
}

/** Starts the outside world on kind's network and routes its addresses through it. */
async function startWorld(o: Options, world: World, work: string): Promise<{ caPem: string; container: string }> {
  const dir = join(work, "world");
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  for (const [name, text] of Object.entries(worldBundle(world))) writeFileSync(join(dir, name), text, { mode: 0o755 });
  const san = [...webCertificateNames(world).map((n) => `DNS:${n}`), ...world.services.filter((s) => s.kind === "web").flatMap((s) => s.addresses.map((a) => `IP:${a}`))].join(",");
  await sh("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=egret-mesh-web",
    "-addext", `subjectAltName=${san}`, "-keyout", join(dir, "web-key.pem"), "-out", join(dir, "web-cert.pem")]);
  const container = `${o.cluster}-world`;
  await run("docker", ["rm", "-f", container]);
  await sh("docker", ["run", "-d", "--name", container, "--network", "kind", "--cap-add", "NET_ADMIN", "-v", `${dir}:${WORLD_MOUNT}:ro`, WORLD_IMAGE, "sh", `${WORLD_MOUNT}/start.sh`]);
  const ip = (await sh("docker", ["inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", container])).trim();
  await eventually("the world container to start its servers", async () => (await sh("docker", ["logs", container])).includes("egret-world ready") ? true : undefined, 120_000);
  for (const node of (await sh("kind", ["get", "nodes", "--name", o.cluster])).split("\n").filter(Boolean)) {
    for (const cidr of worldRoutes(world)) await sh("docker", ["exec", node, "ip", "route", "replace", cidr, "via", ip]);
  }
  const corefile = JSON.parse(await kubectl(["-n", "kube-system", "get", "configmap", "coredns", "-o", "json"])) as { data: { Corefile: string } };
  const patched = { ...corefile, data: { ...corefile.data, Corefile: corefileWithWorld(corefile.data.Corefile, world) } };
  await kubectl(["replace", "-f", "-"], { input: JSON.stringify(patched) });
  await kubectl(["-n", "kube-system", "rollout", "restart", "deployment/coredns"]);
  await kubectl(["-n", "kube-system", "rollout", "status", "deployment/coredns", "--timeout=180s"], { timeoutMs: 200_000 });
  return { caPem: readFileSync(join(dir, "web-cert.pem"), "utf8"), container };
}

/** /32 routes for every world address (the kind network itself stays untouched). */
function worldRoutes(world: World): string[] {
  return [...new Set([world.resolver, ...world.services.flatMap((s) => s.addresses)])].map((a) => `${a}/32`);
}

async function installIstioAndEgret(world: World): Promise<void> {
  log("installing Istio (istioctl, minimal profile, outbound ALLOW_ANY)");
  await sh("istioctl", ["install", "-y", "--set", "profile=minimal", "--set", "meshConfig.outboundTrafficPolicy.mode=ALLOW_ANY"], { timeoutMs: LONG });
  const dnsIp = (await kubectl(["-n", "kube-system", "get", "service", "kube-dns", "-o", "jsonpath={.spec.clusterIP}"])).trim();
  const proxies = world.services.filter((s) => s.kind === "forward-proxy").map((s) => `${s.addresses[0]}:${s.port}`);
  log(`installing Egret in phases (egret manifests --image ${EGRET_IMAGE} --trusted-resolver ${dnsIp} --phase …)`);
  const render = (phase: string) => sh(process.execPath, [join(ROOT, "bin", "egret.js"), "manifests", "--image", EGRET_IMAGE, "--trusted-resolver", dnsIp,
    "--cluster-cidr", "10.244.0.0/16", "--cluster-cidr", "10.96.0.0/12", "--pod-cidr", "10.244.0.0/16", "--set", `forwardProxies=${JSON.stringify(proxies)}`, "--phase", phase]);
  // docs/operations.md "Install": CRDs established, control Ready, only then the EnvoyFilter.
  await kubectl(["apply", "--server-side", "-f", "-"], { input: await render("crds"), timeoutMs: 120_000 });
  await kubectl(["wait", "--for", "condition=Established", "--timeout=60s", "crd/egresspolicies.egret.dev", "crd/clusteregresspolicies.egret.dev"], { timeoutMs: 80_000 });
  await kubectl(["apply", "--server-side", "-f", "-"], { input: await render("control"), timeoutMs: 120_000 });
  await kubectl(["-n", "egret-system", "rollout", "status", "deployment/egret-control", "--timeout=300s"], { timeoutMs: 320_000 });
  await kubectl(["-n", "egret-system", "rollout", "status", "daemonset/egret-agent", "--timeout=300s"], { timeoutMs: 320_000 });
  await kubectl(["apply", "--server-side", "-f", "-"], { input: await render("mesh"), timeoutMs: 120_000 });
}

interface Tally { passed: number; failed: number; skipped: number; todo: number; failures: string[] }

async function controlLogsSince(since: string): Promise<string[]> {
  const out = await kubectl(["-n", "egret-system", "logs", "-l", "app.kubernetes.io/component=control", "--since-time", since, "--tail=-1", "--prefix=false"], { timeoutMs: 60_000 });
  return out.split("\n").filter((l) => l.startsWith("{"));
}

/** A step as the scenario loader produced it; kinds are matched by name so that step kinds the
 * runner does not know yet fail loudly instead of passing. */
type LooseStep = { kind: string; title: string; pod?: string; component?: string; within?: number; ref?: string; id?: string; knownIssue?: string;
  expect?: Record<string, unknown> };

/** Where a connect step went, for a later `audit` step that names it by id. */
interface ConnectRecord { pod: string; since: string; dst: { ip?: string; port: number } }

const WORKLOAD: Record<string, string> = { control: "deployment/egret-control", agent: "daemonset/egret-agent" };

async function stopOrStart(component: string, stop: boolean): Promise<void> {
  if (component === "control") {
    await kubectl(["-n", "egret-system", "scale", "deployment/egret-control", `--replicas=${stop ? 0 : 2}`]);
    if (stop) await kubectl(["-n", "egret-system", "wait", "--for=delete", "pod", "-l", "app.kubernetes.io/component=control", "--timeout=120s"], { timeoutMs: 130_000 });
    else await kubectl(["-n", "egret-system", "rollout", "status", "deployment/egret-control", "--timeout=300s"], { timeoutMs: 320_000 });
    return;
  }
  // A DaemonSet cannot scale to zero: a node selector nothing matches removes its pods.
  const patch = stop ? '{"spec":{"template":{"spec":{"nodeSelector":{"egret.dev/istio-tests-stopped":"true"}}}}}'
    : '[{"op":"remove","path":"/spec/template/spec/nodeSelector"}]';
  await kubectl(["-n", "egret-system", "patch", "daemonset/egret-agent", "--type", stop ? "strategic" : "json", "-p", patch]);
  if (stop) await kubectl(["-n", "egret-system", "wait", "--for=delete", "pod", "-l", "app.kubernetes.io/component=agent", "--timeout=120s"], { timeoutMs: 130_000 });
  else await kubectl(["-n", "egret-system", "rollout", "status", "daemonset/egret-agent", "--timeout=300s"], { timeoutMs: 320_000 });
}

/** Sum of a metric in a pod's sidecar (Envoy stats through pilot-agent). */
async function sidecarMetric(pod: string, name: string): Promise<number> {
  const [ns, podName] = pod.split("/") as [string, string];
  const text = await kubectl(["-n", ns, "exec", podName, "-c", "istio-proxy", "--", "pilot-agent", "request", "GET", "stats/prometheus"], { timeoutMs: 30_000 });
  return text.split("\n").filter((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`)).reduce((n, l) => n + Number(l.split(/\s+/).pop()), 0);
}

async function checkAudit(rec: ConnectRecord, expect: Record<string, unknown>, withinMs: number): Promise<string | undefined> {
  const [namespace, name] = rec.pod.split("/") as [string, string];
  const { verdict, reason, policy, rule } = expect as { verdict?: string; reason?: string; policy?: string; rule?: string | number };
  const audit = Object.fromEntries(Object.entries({ verdict, reason, policy, rule }).filter(([, v]) => v !== undefined));
  if (Object.keys(audit).length === 0) return undefined;
  const found = await eventually("the connection's audit line", async () => auditVerdict(await controlLogsSince(rec.since), { namespace, name }, rec.dst, audit), withinMs)
    .catch((err: Error) => ({ ok: false, line: "", mismatches: [err.message] }));
  return found.ok ? undefined : `audit: ${found.mismatches.join("; ")}${found.line ? ` in ${found.line}` : ""}`;
}

export async function runStep(s: Scenario, raw: Step, world: World, connects: Map<string, ConnectRecord>): Promise<string | undefined> {
  const step = raw as unknown as LooseStep;
  const exec = (pod: string, argv: string[], input?: string) => {
    const [ns, name] = pod.split("/");
    return run("kubectl", ["-n", ns!, "exec", "-i", name!, "-c", APP_CONTAINER, "--", ...argv], { timeoutMs: 60_000, input });
  };
  switch (step.kind) {
    case "sleep": await new Promise((r) => setTimeout(r, (raw as unknown as SleepStepLike).ms)); return undefined;
    case "restart": {
      const target = WORKLOAD[step.component ?? ""];
      if (!target) return `cannot restart "${step.component}"`;
      await kubectl(["-n", "egret-system", "rollout", "restart", target]);
      await kubectl(["-n", "egret-system", "rollout", "status", target, "--timeout=300s"], { timeoutMs: 320_000 });
      return undefined;
    }
    case "stop":
    case "start":
      if (!WORKLOAD[step.component ?? ""]) return `cannot ${step.kind} "${step.component}"`;
      await stopOrStart(step.component!, step.kind === "stop");
      return undefined;
    case "await": {
      // sidecars-connected: every scenario pod's filter has its Watch stream to control up.
      const pods = s.pods.map((p) => p.key);
      await eventually("every sidecar's Watch stream to control", async () => {
        for (const p of pods) if ((await sidecarMetric(p, "egret_watch_connected")) <= 0) return undefined;
        return true;
      }, step.within ?? 60_000, 2000).catch((err: Error) => { throw new Error(err.message); });
      return undefined;
    }
    case "audit": {
      const rec = connects.get(step.ref ?? "");
      if (!rec) return `no earlier connect step with id "${step.ref}"`;
      const expect = step.expect ?? {};
      return checkAudit(rec, expect, typeof expect.within === "number" ? expect.within : 30_000);
    }
    case "resolve": {
      const r0 = raw as ResolveStep;
      const c = resolveCommand(r0);
      const r = await exec(r0.pod, c.argv);
      const got = c.parse(r.code ?? 1, r.stdout);
      if (r0.expect.rcode && got.rcode !== r0.expect.rcode) return `rcode ${got.rcode}, expected ${r0.expect.rcode}`;
      if (r0.expect.addresses && [...got.addresses].sort().join(",") !== [...r0.expect.addresses].sort().join(",")) {
        return `addresses ${got.addresses.join(",") || "(none)"}, expected ${r0.expect.addresses.join(",")}`;
      }
      return undefined;
    }
    case "connect": {
      const c0 = raw as ConnectStep;
      const since = new Date(Date.now() - 1000).toISOString();
      const c = connectCommand(c0);
      const r = await exec(c0.pod, c.argv, c.input);
      const rec: ConnectRecord = { pod: c0.pod, since, dst: expectedDestination(world, c0) };
      if (step.id) connects.set(step.id, rec);
      const outcome = c.succeeded(r.code ?? 1, r.stdout, r.stderr) ? "connected" : "refused";
      if (outcome !== c0.expect.outcome) return `${outcome}, expected ${c0.expect.outcome} (${r.command}: ${(r.stdout + r.stderr).trim().slice(-300)})`;
      const { outcome: _o, ...audit } = c0.expect;
      return checkAudit(rec, audit as Record<string, unknown>, 30_000);
    }
    default:
      return `step kind "${step.kind}" is not supported by the real-cluster runner yet`;
  }
}

type SleepStepLike = { ms: number };

/** What a failed step leaves behind for debugging: the pod's sidecar log and the control logs. */
async function saveDiagnostics(dir: string, name: string, pod: string): Promise<void> {
  const [ns, podName] = pod.split("/") as [string, string];
  const files: [string, string[]][] = [
    [`${name}.istio-proxy.log`, ["-n", ns, "logs", podName, "-c", "istio-proxy", "--tail=500"]],
    [`${name}.control.log`, ["-n", "egret-system", "logs", "-l", "app.kubernetes.io/component=control", "--tail=500", "--prefix"]],
    [`${name}.agent.log`, ["-n", "egret-system", "logs", "-l", "app.kubernetes.io/component=agent", "--tail=200", "--prefix"]],
    [`${name}.proxy-stats.txt`, ["-n", ns, "exec", podName, "-c", "istio-proxy", "--", "pilot-agent", "request", "GET", "stats/prometheus"]],
  ];
  for (const [file, args] of files) {
    const r = await run("kubectl", args, { timeoutMs: 60_000 });
    writeFileSync(join(dir, file), r.stdout + r.stderr);
  }
  log(`diagnostics for ${name} in ${dir}`);
}

async function runScenario(s: Scenario, world: World, caPem: string, t: Tally, artifacts: string): Promise<void> {
  log(`scenario ${s.name} (${s.file})`);
  // This suite installs Istio without DNS capture: the cluster-dns mode of the mesh in a box.
  const notApplicable = s.skipDnsModes["cluster-dns"];
  if (notApplicable) {
    log(`  SKIPPED (not applicable without Istio's DNS capture): ${notApplicable}`);
    t.skipped += s.steps.length;
    return;
  }
  const objects = scenarioObjects(s, WORLD_IMAGE, caPem);
  const namespaces = objects.filter((o) => o.kind === "Namespace").map((o) => o.metadata.name);
  try {
    const nonPolicy = objects.filter((o) => o.apiVersion !== "egret.dev/v1alpha1");
    await kubectl(["apply", "-f", "-"], { input: toYaml(nonPolicy) });
    for (const ns of namespaces) await kubectl(["-n", ns, "wait", "--for=condition=Ready", "pod", "--all", "--timeout=300s"], { timeoutMs: 320_000 });
    const policies = objects.filter((o) => o.apiVersion === "egret.dev/v1alpha1");
    if (policies.length > 0) {
      await kubectl(["apply", "-f", "-"], { input: toYaml(policies) });
      for (const p of policies) {
        const ref = p.kind === "EgressPolicy" ? ["-n", p.metadata.namespace!, "egresspolicy", p.metadata.name] : ["clusteregresspolicy", p.metadata.name];
        await kubectl(["wait", ...ref, "--for=condition=Accepted", "--timeout=60s"], { timeoutMs: 70_000 });
      }
    }
    const connects = new Map<string, ConnectRecord>();
    for (const [i, step] of s.steps.entries()) {
      const label = `${s.name} step ${i + 1}: ${step.title}`;
      const failure = await runStep(s, step, world, connects).catch((err: Error) => err instanceof CommandError ? err.message : String(err));
      const knownIssue = (step as unknown as LooseStep).knownIssue;
      if (failure && knownIssue) { t.todo++; log(`TODO ${label}: ${failure} (known issue: ${knownIssue})`); }
      else if (failure) {
        t.failed++; t.failures.push(`${label}: ${failure}`); log(`FAIL ${label}: ${failure}`);
        const pod = (step as { pod?: string }).pod;
        if (pod) await saveDiagnostics(artifacts, `${s.name}-step${i + 1}`, pod);
      }
      else { t.passed++; log(`ok   ${label}`); }
    }
  } catch (err) {
    const remaining = s.steps.length;
    t.failed += remaining;
    t.failures.push(`${s.name}: setup failed: ${(err as Error).message}`);
    log(`FAIL ${s.name}: setup failed: ${(err as Error).message}`);
  } finally {
    for (const p of objects.filter((o) => o.kind === "ClusterEgressPolicy")) await run("kubectl", ["delete", "clusteregresspolicy", p.metadata.name, "--ignore-not-found"]);
    for (const ns of namespaces) await run("kubectl", ["delete", "namespace", ns, "--ignore-not-found", "--wait=true"], { timeoutMs: 300_000 });
  }
}

export async function main(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: {
    cluster: { type: "string", default: "egret-istio-tests" }, keep: { type: "boolean", default: false },
    artifacts: { type: "string" },
    reuse: { type: "boolean", default: false }, scenario: { type: "string", multiple: true }, "require-cluster": { type: "boolean", default: false },
    help: { type: "boolean", short: "h" },
  } });
  if (values.help) {
    process.stdout.write("usage: istio-tests/run [--scenario NAME]… [--keep] [--reuse] [--cluster NAME] [--artifacts DIR] [--require-cluster]\n");
    return 0;
  }
  const world = loadWorld(join(SCENARIOS, "world.yaml"));
  let scenarios = loadScenarioDir(SCENARIOS);
  if (values.scenario) {
    const unknown = values.scenario.filter((n) => !scenarios.some((s) => s.name === n));
    if (unknown.length > 0) { process.stderr.write(`istio-tests: no scenario named ${unknown.join(", ")} (have: ${scenarios.map((s) => s.name).join(", ")})\n`); return 2; }
    scenarios = scenarios.filter((s) => values.scenario!.includes(s.name));
  }
  const steps = scenarios.reduce((n, s) => n + s.steps.length, 0);
  const reasons = clusterUnavailableReasons();
  if (reasons.length > 0) {
    log(`SKIPPED: no Kubernetes cluster can be created on this machine:\n${reasons.map((r) => `  - ${r}`).join("\n")}`);
    log(`${scenarios.length} scenarios (${steps} steps) were not run. The offline checks (istio-tests/unit, in npm test) do not need a cluster.`);
    process.stdout.write(`0 passed, 0 failed, ${steps} skipped\n`);
    return values["require-cluster"] ? 1 : 0;
  }
  const o: Options = { cluster: values.cluster!, keep: values.keep!, reuse: values.reuse!, scenarios: values.scenario ?? [] };
  const work = mkdtempSync(join(tmpdir(), "egret-istio-tests-"));
  // Outlives the run (unlike `work`): logs of failed steps.
  const artifacts = values.artifacts ?? mkdtempSync(join(tmpdir(), "egret-istio-tests-artifacts-"));
  mkdirSync(artifacts, { recursive: true });
  const t: Tally = { passed: 0, failed: 0, skipped: 0, todo: 0, failures: [] };
  let world_: { container: string } | undefined;
  try {
    await createCluster(o, work);
    await buildImages(o);
    const w = await startWorld(o, world, work);
    world_ = w;
    await installIstioAndEgret(world);
    for (const s of scenarios) await runScenario(s, world, w.caPem, t, artifacts);
  } catch (err) {
    log(`setup failed: ${(err as Error).message}`);
    t.failed += Math.max(0, steps - t.passed - t.failed);
  } finally {
    if (!o.keep) {
      if (world_) await run("docker", ["rm", "-f", world_.container]);
      if (!o.reuse) await run("kind", ["delete", "cluster", "--name", o.cluster], { timeoutMs: 300_000 });
    } else log(`kept cluster ${o.cluster} (kubectl --context kind-${o.cluster}); delete it with: kind delete cluster --name ${o.cluster}`);
    rmSync(work, { recursive: true, force: true });
  }
  for (const f of t.failures) log(`failed: ${f}`);
  if (t.todo > 0) log(`${t.todo} steps demonstrate known issues (TODO), not counted as failures`);
  process.stdout.write(`${t.passed} passed, ${t.failed} failed, ${t.skipped} skipped\n`);
  return t.failed > 0 ? 1 : 0;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main(process.argv.slice(2)).then((code) => process.exit(code), (err: Error) => { process.stderr.write(`istio-tests: ${err.stack ?? err.message}\n`); process.exit(1); });
}
