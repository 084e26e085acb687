// `egret control` as a real process in file mode: flags, readiness and HTTP endpoints, reload on
// file change (real fs.watch), a bad pods file at startup and on reload, SIGKILL + restart with
// agent replay and filter resume, SIGTERM exit.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import { TEST_AGENT_TOKEN, TEST_NODE, WatchClient, egressPolicy, eventually, fromPod, loopbackOf, observation, observe, podsYaml } from "../support/control-harness.js";

const bin = fileURLToPath(new URL("../../../../bin/egret.js", import.meta.url));
const WEB = { name: "web-1", namespace: "shop", ips: ["198.18.1.10"], labels: { app: "web" } };

interface Running {
  child: ChildProcess;
  logs: Record<string, unknown>[];
  grpc: string;
  http: string;
}

async function startControl(dir: string, grpcPort = 0): Promise<Running> {
  writeFileSync(join(dir, "agent-tokens"), `# the test agent\n${TEST_AGENT_TOKEN} ${TEST_NODE}\n`);
  return spawnControl([
    "--policies", join(dir, "policies"), "--pods", join(dir, "pods.yaml"), "--agent-token-file", join(dir, "agent-tokens"), "--grpc-listen", `127.0.0.1:${grpcPort}`,
    "--http-listen", "127.0.0.1:0", "--audit-log", join(dir, "audit.log"), "--min-ttl", "1", "--grace", "0",
  ]);
}

/** Starts `egret control ARGS` and waits for its "ready" log line (the output is in the error otherwise). */
async function spawnControl(args: string[]): Promise<Running> {
  const child = spawn(process.execPath, [bin, "control", ...args], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, EGRET_LOG_LEVEL: "debug" } });
  let stderr = "";
  child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
  const logs: Record<string, unknown>[] = [];
  let buf = "";
  child.stdout!.on("data", (d: Buffer) => {
    buf += d.toString();
    let nl;
    while ((nl = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      try {
        logs.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        logs.push({ raw: line });
      }
    }
  });
  let ready: Record<string, unknown>;
  try {
    ready = await eventually(() => logs.find((l) => l.msg === "egret control ready") ?? (child.exitCode !== null && { exited: child.exitCode }), "control to be ready", 60_000, 20);
  } catch (err) {
    child.kill("SIGKILL");
    throw new Error(`${(err as Error).message}; stdout: ${JSON.stringify(logs.slice(-20))}; stderr: ${stderr.slice(-2000)}`);
  }
  if ("exited" in ready) throw new Error(`egret control exited ${ready.exited}; stdout: ${JSON.stringify(logs.slice(-20))}; stderr: ${stderr.slice(-2000)}`);
  return { child, logs, grpc: `127.0.0.1:${ready.grpcPort}`, http: `http://127.0.0.1:${ready.httpPort}` };
}

function exited(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => (child.exitCode !== null || child.signalCode !== null ? resolve(child.exitCode) : child.once("exit", (code) => resolve(code))));
}

test("egret control refuses bad flags and a bad pods file with clear messages", () => {
  const none = spawnSync(process.execPath, [bin, "control"], { encoding: "utf8" });
  assert.equal(none.status, 2);
  assert.match(none.stderr, /choose one source/);
  const half = spawnSync(process.execPath, [bin, "control", "--policies", "x"], { encoding: "utf8" });
  assert.equal(half.status, 2);
  assert.match(half.stderr, /needs both --policies PATH .* and --pods FILE/);
  const badTtl = spawnSync(process.execPath, [bin, "control", "--kubernetes", "--min-ttl", "soon"], { encoding: "utf8" });
  assert.equal(badTtl.status, 2);
  assert.match(badTtl.stderr, /--min-ttl must be an integer/);

  const dir = mkdtempSync(join(tmpdir(), "egE-cli-"));
  try {
    mkdirSync(join(dir, "policies"));
    writeFileSync(join(dir, "pods.yaml"), "pods:\n  - name: web-1\n    namespace: shop\n    ips: [not-an-ip]\n");
    const r = spawnSync(process.execPath, [bin, "control", "--policies", join(dir, "policies"), "--pods", join(dir, "pods.yaml"), "--grpc-listen", "127.0.0.1:0", "--http-listen", "off"], {
      encoding: "utf8",
      timeout: 30_000,
    });
    assert.equal(r.status, 1);
    assert.match(r.stdout + r.stderr, /pods\.yaml:4:\d+: pods\[0\]\.ips\[0\]: \\?"not-an-ip\\?" is not an IP address/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("egret control serves, reloads on file change, survives SIGKILL + restart, and exits 0 on SIGTERM", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "egE-cli-"));
  const children: ChildProcess[] = [];
  t.after(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  });
  mkdirSync(join(dir, "policies"));
  writeFileSync(join(dir, "policies", "web.yaml"), egressPolicy("web-egress", "shop", { app: "web" }, ["api.example.com"]));
  writeFileSync(join(dir, "pods.yaml"), podsYaml([WEB], { shop: { team: "shop" } }));

  let control = await startControl(dir);
  children.push(control.child);
  assert.equal((await fetch(`${control.http}/readyz`)).status, 200);
  assert.equal(await (await fetch(`${control.http}/healthz`)).text(), "ok\n");
  assert.match(await (await fetch(`${control.http}/metrics`)).text(), /egret_control_watch_streams 0/);

  const fromWeb = await fromPod(control.grpc, WEB);
  const w = new WatchClient(fromWeb.address, WEB);
  await eventually(() => w.responses.length >= 1, "the snapshot");
  const hash = w.policyHash;
  await observe(control.grpc, [observation("198.18.1.10", "api.example.com", ["203.0.113.7"], 600)]);
  await eventually(() => w.names("203.0.113.7"), "the resolution");

  // Editing the policy file is picked up by the watcher (no manual reload).
  writeFileSync(join(dir, "policies", "web.yaml"), egressPolicy("web-egress", "shop", { app: "web" }, ["api.example.com", "db.example.com"]));
  await eventually(() => w.policyHash !== hash, "the reloaded policy", 20_000);

  // A broken pods file on reload: logged with its location; the previous pods stay.
  writeFileSync(join(dir, "pods.yaml"), "pods:\n  - name: web-1\n    namespace: Shop!\n    ip: 198.18.1.10\n");
  await eventually(() => control.logs.find((l) => typeof l.err === "string" && /pods\.yaml:3:\d+: pods\[0\]\.namespace/.test(l.err as string)), "the reload error", 20_000);
  const status = (await (await fetch(`${control.http}/status`)).json()) as { pods: number };
  assert.equal(status.pods, 1);
  writeFileSync(join(dir, "pods.yaml"), podsYaml([WEB], { shop: { team: "shop" } }));

  // SIGKILL: nothing is flushed. A new process on the same port gets the resolution back from the
  // agent (replayed here by a test client) and the filter resumes.
  const resumeFrom = { epoch: w.epoch, version: w.version };
  const port = Number(control.grpc.split(":")[1]);
  control.child.kill("SIGKILL");
  await exited(control.child);
  w.close();
  control = await startControl(dir, port);
  children.push(control.child);
  fromWeb.close();
  await observe(control.grpc, [observation("198.18.1.10", "api.example.com", ["203.0.113.7"], 600)], 1, true);
  const fromWebAgain = await fromPod(control.grpc, WEB);
  t.after(() => fromWebAgain.close());
  const resumed = new WatchClient(fromWebAgain.address, WEB, resumeFrom);
  t.after(() => resumed.close());
  await eventually(() => resumed.names("203.0.113.7"), "the resumed view");
  assert.equal(resumed.responses[0].type, "WATCH_RESPONSE_TYPE_SNAPSHOT");

  // SIGTERM: a clean exit; the audit file holds only verdict lines (none were reported here).
  resumed.close();
  control.child.kill("SIGTERM");
  assert.equal(await exited(control.child), 0);
  assert.equal(readFileSync(join(dir, "audit.log"), "utf8"), "", "no verdicts were reported in this test");
});

// A timeout of its own: a control that never exits after SIGTERM must fail this test, not hang the tier.
test("egret control --kubernetes --kubeconfig runs against an API server and writes policy status", { timeout: 120_000 }, async (t) => {
  const { FakeKube, kube } = await import("../support/fake-kube.js");
  const api = await new FakeKube().start();
  const dir = mkdtempSync(join(tmpdir(), "egE-cli-"));
  let child: ChildProcess | undefined;
  t.after(async () => {
    if (child && child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    await api.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  api.upsert("namespaces", kube.namespace("shop"));
  api.upsert("pods", kube.pod("shop", "web-1", [...WEB.ips, loopbackOf(WEB)], { app: "web" }));
  api.upsert("egresspolicies", {
    apiVersion: "egret.dev/v1alpha1",
    kind: "EgressPolicy",
    metadata: { name: "web-egress", namespace: "shop" },
    spec: { podSelector: { matchLabels: { app: "web" } }, rules: [{ action: "Allow", to: { domains: ["api.example.com"] } }] },
  });
  const kubeconfig = join(dir, "kubeconfig");
  writeFileSync(
    kubeconfig,
    [
      "apiVersion: v1",
      "kind: Config",
      `clusters: [{name: fake, cluster: {server: "http://127.0.0.1:${api.port}", insecure-skip-tls-verify: true}}]`,
      "users: [{name: egret, user: {token: test-token}}]",
      "contexts: [{name: fake, context: {cluster: fake, user: egret}}]",
      "current-context: fake",
    ].join("\n"),
  );
  const running = await spawnControl(["--kubernetes", "--kubeconfig", kubeconfig, "--grpc-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"]);
  child = running.child;
  assert.equal((await fetch(`${running.http}/readyz`)).status, 200);
  const fromWeb = await fromPod(running.grpc, WEB);
  const w = new WatchClient(fromWeb.address, { namespace: "shop", name: "web-1" });
  t.after(() => (w.close(), fromWeb.close()));
  await eventually(() => w.responses.length >= 1, "the snapshot");
  assert.equal(w.selected, true);
  await eventually(() => (api.get("egresspolicies", "shop", "web-egress")?.status as { selectedPods?: number } | undefined)?.selectedPods === 1, "the policy status");
  child.kill("SIGTERM");
  assert.equal(await exited(child), 0);
});

test("egret control without --agent-token-file refuses every Observe; --insecure-agents says loudly what it opens", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "egE-cli-"));
  const children: ChildProcess[] = [];
  t.after(() => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  });
  mkdirSync(join(dir, "policies"));
  writeFileSync(join(dir, "pods.yaml"), podsYaml([WEB]));
  const base = ["--policies", join(dir, "policies"), "--pods", join(dir, "pods.yaml"), "--grpc-listen", "127.0.0.1:0", "--http-listen", "off"];

  const closed = await spawnControl(base);
  children.push(closed.child);
  await assert.rejects(observe(closed.grpc, [observation("198.18.1.10", "api.example.com", ["203.0.113.7"])]), (err: grpc.ServiceError) => {
    assert.equal(err.code, grpc.status.UNAUTHENTICATED);
    return true;
  });
  closed.child.kill("SIGTERM");

  const open = await spawnControl([...base, "--insecure-agents"]);
  children.push(open.child);
  assert.ok(open.logs.some((l) => l.level === 50 && /--insecure-agents: ANY client/.test(String(l.msg))), "an error-level log line names the risk");
  const ack = await observe(open.grpc, [observation("198.18.1.10", "api.example.com", ["203.0.113.7"])], 1, false, "");
  assert.equal(ack.accepted_observations, 1);
  open.child.kill("SIGTERM");

  // A broken token file is a usage error naming file:line.
  writeFileSync(join(dir, "agent-tokens"), "# ok\ntok-1 node-1\ntok-2\n");
  const bad = spawnSync(process.execPath, [bin, "control", ...base, "--agent-token-file", join(dir, "agent-tokens")], { encoding: "utf8", timeout: 30_000 });
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /agent-tokens:3: expected "TOKEN NODE-NAME"/);
});
