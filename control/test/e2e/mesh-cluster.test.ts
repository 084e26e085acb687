// The mesh-in-a-box infrastructure on its own (no Egret component): namespaces and routing, the
// REDIRECT that sends a pod's TCP to its sidecar port while the sidecar's uid goes direct, every
// outside service reached by its real client, and teardown that leaves nothing behind.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { MeshCluster } from "../../src/mesh/cluster.js";
import { loadWorld } from "../../src/mesh/world.js";
import { meshUnavailableReason, listNamespaces, cleanupStale, claimPrefix, releasePrefix, CLAIM_DIR, SIDECAR_PORT, SIDECAR_UID, SIDECAR_GID } from "../../src/mesh/netns.js";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { missingServerPrograms, webCaPath } from "../../src/mesh/services/index.js";
import { runConnect, runResolve, CLIENT_PROGRAMS } from "../../src/mesh/clients.js";
import { missingPrograms } from "../../src/mesh/services/programs.js";
import { ManagedProcess } from "../../src/mesh/process.js";
import { run, mustRun } from "../../src/mesh/exec.js";
import { parseScenario, type ConnectStep, type ResolveStep } from "../../src/mesh/scenario.js";

const PREFIX = "egG";
const root = join(fileURLToPath(new URL(".", import.meta.url)), "../../../..");
const world = loadWorld(join(root, "istio-tests/scenarios/world.yaml"));

const machine = await meshUnavailableReason(PREFIX);
const missing = machine ? [] : [
  ...missingServerPrograms(["dns", ...world.services.map((s) => s.kind)]),
  ...missingPrograms(Object.values(CLIENT_PROGRAMS).flat()),
];
const skip = machine ?? (missing.length ? `missing programs: ${missing.join(", ")}` : undefined);
if (skip) console.log(`# mesh-cluster: skipped — ${skip}`);

let cluster: MeshCluster | undefined;
before(async () => { if (!skip) cluster = await MeshCluster.start({ prefix: PREFIX, world }); }, { timeout: 180_000 });
after(async () => { await cluster?.destroy(); });

// Steps are built through the scenario loader, so the test exercises the same path as scenarios.
function steps(yaml: string): (ConnectStep | ResolveStep)[] {
  const s = parseScenario(`name: t\npods: [{name: app, namespace: t}]\nsteps:\n${yaml}`, "inline.yaml");
  return s.steps as (ConnectStep | ResolveStep)[];
}

test("pods resolve through cluster DNS: A, CNAME chain, wildcard, NXDOMAIN, with dig, getent and node", { skip, timeout: 120_000 }, async () => {
  const pod = await cluster!.net.addPod("t/resolver", "198.18.1.200");
  try {
    const env = { netns: pod.netns, world, caFile: webCaPath({ net: cluster!.net, world, workDir: cluster!.workDir }) };
    const cases: [string, string, string[]][] = [
      ["dig", "db.example.test", ["198.19.1.10"]],
      ["dig", "assets.example.test", ["198.19.2.40"]],
      ["getent", "storage.googleapis.test", ["198.19.2.20"]],
      ["node", "api.example.test", ["198.19.2.10"]],
    ];
    for (const [client, name, want] of cases) {
      const [step] = steps(`  - {resolve: ${name}, pod: t/app, with: ${client}}`) as ResolveStep[];
      const r = await runResolve(env, step!);
      assert.equal(r.rcode, "NOERROR", `${client} ${name}: ${r.output}`);
      assert.deepEqual(r.addresses, want, `${client} ${name}`);
    }
    for (const client of ["dig", "getent", "node"]) {
      const [step] = steps(`  - {resolve: missing.example.test, pod: t/app, with: ${client}}`) as ResolveStep[];
      assert.equal((await runResolve(env, step!)).rcode, "NXDOMAIN", client);
    }
  } finally {
    await cluster!.net.removePod("t/resolver");
  }
});

test("the built-in DNS server (used where unbound is missing) answers like unbound: chains, wildcards, NXDOMAIN, TCP", { skip, timeout: 60_000 }, async () => {
  const records = join(cluster!.workDir, "builtin-records.json");
  writeFileSync(records, JSON.stringify(world.records));
  const server = ManagedProcess.start({
    name: "built-in dns", cmd: "ip",
    args: ["netns", "exec", cluster!.net.outsideNs, process.execPath, join(root, "dist/control/src/mesh/servers/dns-server.js"), "--listen", `${world.resolver}:5353`, "--records", records],
    logFile: join(cluster!.workDir, "builtin-dns.log"),
  });
  const pod = await cluster!.net.addPod("t/builtin", "198.18.1.204");
  try {
    const dig = async (...args: string[]) => (await run("ip", ["netns", "exec", pod.netns, "dig", "-p", "5353", `@${world.resolver}`, "+time=1", "+tries=3", ...args])).stdout;
    await server.waitReady(async () => /status: NOERROR/.test(await dig("db.example.test")), 20_000);
    assert.match(await dig("+short", "db.example.test"), /^198\.19\.1\.10$/m);
    const chain = await dig("+noall", "+answer", "assets.example.test");
    assert.match(chain, /assets\.example\.test\.\s+300\s+IN\s+CNAME\s+a\.cdn\.example\.test\./);
    assert.match(chain, /a\.cdn\.example\.test\.\s+300\s+IN\s+A\s+198\.19\.2\.40/);
    assert.match(await dig("+short", "anything.googleapis.test"), /^198\.19\.2\.20$/m);
    assert.equal((await dig("+short", "a.b.googleapis.test")).trim(), "", "a wildcard covers one label");
    assert.match(await dig("missing.example.test"), /status: NXDOMAIN/);
    assert.match(await dig("db.example.test", "AAAA"), /status: NOERROR[\s\S]*ANSWER: 0/);
    assert.match(await dig("+tcp", "+short", "ephemeral.example.test"), /^198\.19\.2\.50$/m);
    assert.match(await dig("+noall", "+answer", "ephemeral.example.test"), /\s2\s+IN\s+A\s/, "the record's own TTL");
  } finally {
    await server.stop();
    await cluster!.net.removePod("t/builtin");
  }
});

test("every outside service answers its real client from a pod (no sidecar)", { skip, timeout: 120_000 }, async () => {
  const pod = await cluster!.net.addPod("t/client", "198.18.1.201");
  try {
    const env = { netns: pod.netns, world, caFile: webCaPath({ net: cluster!.net, world, workDir: cluster!.workDir }) };
    const connects = steps([
      "  - {connect: {client: psql, to: db.example.test}, pod: t/app, expect: {outcome: connected}}",
      "  - {connect: {client: mariadb, to: mysql.example.test}, pod: t/app, expect: {outcome: connected}}",
      "  - {connect: {client: redis-cli, to: cache.example.test}, pod: t/app, expect: {outcome: connected}}",
      "  - {connect: {client: curl, to: storage.googleapis.test}, pod: t/app, expect: {outcome: connected}}",
      "  - {connect: {client: curl, to: www.example.test, scheme: http}, pod: t/app, expect: {outcome: connected}}",
      "  - {connect: {client: curl, to: api.example.test, proxy: 'proxy.example.test:3128'}, pod: t/app, expect: {outcome: connected}}",
      "  - {connect: {client: openssl, to: b.cdn.example.test}, pod: t/app, expect: {outcome: connected}}",
      "  - {connect: {client: tcp, to: 198.19.2.10, port: 80, send: \"GET / HTTP/1.0\\r\\n\\r\\n\"}, pod: t/app, expect: {outcome: connected}}",
    ].join("\n")) as ConnectStep[];
    for (const step of connects) {
      const r = await runConnect(env, step);
      assert.equal(r.outcome, "connected", `${step.title}\n$ ${r.command}\n${r.output}`);
    }
    // The clients really detect failure: nothing listens on this port.
    const [closed] = steps("  - {connect: {client: redis-cli, to: cache.example.test, port: 6380}, pod: t/app, expect: {outcome: refused}}") as ConnectStep[];
    assert.equal((await runConnect(env, closed!)).outcome, "refused");
  } finally {
    await cluster!.net.removePod("t/client");
  }
});

test("REDIRECT sends a pod's outbound TCP to port 15001; the sidecar's uid or gid and DNS go direct", { skip, timeout: 60_000 }, async () => {
  const pod = await cluster!.net.addPod("t/redirected", "198.18.1.202");
  const stand_in = ManagedProcess.start({
    name: "sidecar stand-in",
    cmd: "ip",
    args: ["netns", "exec", pod.netns, "setpriv", `--reuid=${SIDECAR_UID}`, `--regid=${SIDECAR_UID}`, "--clear-groups", process.execPath, "-e",
      // The readiness probe hangs up at once; ignore the write error that may cause.
      `require("net").createServer((s) => { s.on("error", () => {}); s.end("redirected-to-15001\\n"); }).listen(${SIDECAR_PORT}, "127.0.0.1")`],
    logFile: join(cluster!.workDir, "stand-in.log"),
  });
  try {
    await cluster!.net.redirectOutbound(pod, { exemptDestinations: [{ ip: world.resolver, port: 53 }] });
    await stand_in.waitReady(async () => (await run("ip", ["netns", "exec", pod.netns, "bash", "-c", `exec 3<>/dev/tcp/127.0.0.1/${SIDECAR_PORT}`])).code === 0, 20_000);
    const probe = join(root, "dist/control/src/mesh/probes/tcp-probe.js");
    const payload = Buffer.from("GET / HTTP/1.0\r\n\r\n").toString("base64");
    const asApp = await mustRun("ip", ["netns", "exec", pod.netns, process.execPath, probe, "198.19.2.10", "80", payload]);
    assert.match(asApp.stdout, /redirected-to-15001/, "the app's connection reached the sidecar port");
    const asSidecar = await mustRun("ip", ["netns", "exec", pod.netns, "setpriv", `--reuid=${SIDECAR_UID}`, `--regid=${SIDECAR_UID}`, "--clear-groups", process.execPath, probe, "198.19.2.10", "80", payload]);
    assert.match(asSidecar.stdout, /egret-mesh-web local=198\.19\.2\.10:80/, "uid 1337 reached the real server");
    const asRootInGroup = await mustRun("ip", ["netns", "exec", pod.netns, "setpriv", "--reuid=0", `--regid=${SIDECAR_GID}`, "--clear-groups", process.execPath, probe, "198.19.2.10", "80", payload]);
    assert.match(asRootInGroup.stdout, /egret-mesh-web local=198\.19\.2\.10:80/, "gid 1337 (a root sidecar, when uid 1337 cannot read the tree) reached the real server");
    const dig = await mustRun("ip", ["netns", "exec", pod.netns, "dig", "+tcp", "+short", "db.example.test"]);
    assert.equal(dig.stdout.trim(), "198.19.1.10", "DNS over TCP to the cluster resolver is not redirected");
  } finally {
    await stand_in.stop();
    await cluster!.net.removePod("t/redirected");
  }
});

/** Alive and not a zombie waiting for a parent that no longer reaps it. */
function running(pid: number): boolean {
  try { return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, "utf8")); } catch { return false; }
}

test("a prefix held by a dead run is reclaimed with its leftovers; teardown leaves nothing", { skip, timeout: 60_000 }, async () => {
  // A run that was SIGKILLed: its claim names a dead pid, its namespace still has a process in it.
  const dead = spawnSync(process.execPath, ["-e", "process.pid"]).pid!;
  // A base of this process's own (claimPrefix takes any base): two runs of this file at once must
  // not overwrite each other's claim file or reclaim each other's namespace.
  const base = `egT${process.pid}`;
  mkdirSync(CLAIM_DIR, { recursive: true });
  writeFileSync(join(CLAIM_DIR, `${base}0.pid`), `${dead}\n`);
  await mustRun("ip", ["netns", "add", `${base}0-pod9`]);
  await mustRun("bash", ["-c", `ip netns exec ${base}0-pod9 sleep 300 >/dev/null 2>&1 & disown`]);
  const leftover = Number((await mustRun("ip", ["netns", "pids", `${base}0-pod9`])).stdout.trim());
  try {
    assert.equal(await claimPrefix(base), `${base}0`, "the dead run's slot is reclaimed");
    assert.deepEqual(await listNamespaces(`${base}0`), [], "its namespace is gone");
    assert.ok(!running(leftover), "the process it left is gone");
    assert.equal(await claimPrefix(base), `${base}1`, "a live claim (ours) is never taken");
  } finally {
    releasePrefix(`${base}0`);
    releasePrefix(`${base}1`);
    await cleanupStale(`${base}0`);
  }
  assert.ok(!existsSync(join(CLAIM_DIR, `${base}0.pid`)));

  const prefix = cluster!.net.prefix;
  const before = await listNamespaces(prefix);
  await cluster!.net.addPod("t/ephemeral", "198.18.1.203");
  assert.equal((await listNamespaces(prefix)).length, before.length + 1);
  await cluster!.net.removePod("t/ephemeral");
  assert.deepEqual(await listNamespaces(prefix), before);
});
