// The real-cluster runner's pure parts (what it would apply and run), and its behaviour on a
// machine where no cluster can be created: it must say so plainly and exit 0 as "skipped".
import { strict as assert } from "node:assert";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { loadScenarioDir } from "../../control/src/mesh/scenario.js";
import { loadWorld } from "../../control/src/mesh/world.js";
import { clusterUnavailableReasons, type Probe } from "../lib/cluster/preflight.js";
import { corefileWithWorld, webCertificateNames, worldBundle, worldZones } from "../lib/cluster/world-bundle.js";
import { scenarioObjects } from "../lib/cluster/objects.js";
import { auditVerdict, connectCommand, resolveCommand } from "../lib/cluster/clients.js";
import { validateObject } from "../lib/k8s-schemas.js";

const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
const SCENARIOS = join(ROOT, "istio-tests", "scenarios");
const world = loadWorld(join(SCENARIOS, "world.yaml"));

test("preflight names every missing tool and a Docker engine that does not answer", () => {
  const probe: Probe = (cmd) => cmd === "docker" ? { code: 1, output: "Cannot connect to the Docker daemon at unix:///var/run/docker.sock" }
    : cmd === "kind" || cmd === "istioctl" ? { code: undefined, output: "" } : { code: 0, output: "ok" };
  const reasons = clusterUnavailableReasons(probe);
  assert.equal(reasons.length, 3);
  assert.match(reasons[0], /Docker engine does not answer: Cannot connect to the Docker daemon/);
  assert.match(reasons[1], /^kind is not installed/);
  assert.match(reasons[2], /^istioctl is not installed/);
  assert.deepEqual(clusterUnavailableReasons(() => ({ code: 0, output: "" })), []);
});

test("istio-tests/run on a machine without a cluster says why and exits 0 as skipped", (t) => {
  const reasons = clusterUnavailableReasons();
  if (reasons.length === 0) { t.skip("this machine can create a cluster: run istio-tests/run itself"); return; }
  const r = spawnSync("bash", [join(ROOT, "istio-tests", "run")], { encoding: "utf8", timeout: 120_000 });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /SKIPPED: no Kubernetes cluster can be created on this machine/);
  for (const reason of reasons) assert.ok(r.stdout.includes(reason), `names: ${reason}`);
  const steps = loadScenarioDir(SCENARIOS).reduce((n, s) => n + s.steps.length, 0);
  assert.match(r.stdout, new RegExp(`^0 passed, 0 failed, ${steps} skipped$`, "m"));
  const strict = spawnSync("bash", [join(ROOT, "istio-tests", "run"), "--require-cluster"], { encoding: "utf8", timeout: 120_000 });
  assert.equal(strict.status, 1, "--require-cluster turns 'cannot run' into a failure");
});

test("the world bundle serves every record and starts every service at its addresses", () => {
  const files = worldBundle(world);
  for (const r of world.records) assert.ok(files["root.zone"].includes(`${r.name}. ${r.ttl} IN ${r.type}`), r.name);
  const start = files["start.sh"];
  for (const s of world.services) for (const a of s.addresses) assert.ok(start.includes(`ip addr add ${a}/32 dev eth0`), a);
  assert.ok(start.includes(`ip addr add ${world.resolver}/32`));
  assert.match(start, /unbound -d -c \/world\/unbound.conf/);
  for (const kind of ["postgres -D", "mariadbd", "redis-server", "web-server.js", "tinyproxy -d"]) assert.ok(start.includes(kind), kind);
  assert.ok(start.indexOf("echo egret-world ready") > start.lastIndexOf("nc -z"), "ready only after every port answers");
  assert.ok(Object.keys(files).some((f) => f.startsWith("tinyproxy-")));
});

test("the web certificate names every record that reaches a web address, CNAMEs included", () => {
  const names = webCertificateNames(world);
  assert.ok(names.includes("assets.example.test"), "CNAME to the CDN");
  assert.ok(names.includes("*.googleapis.test"));
  assert.ok(!names.includes("db.example.test"), "the database is not a web address");
});

test("CoreDNS forwards exactly the world's zones to its resolver, idempotently", () => {
  assert.deepEqual(worldZones(world), ["example.net", "example.test", "googleapis.test"]);
  const base = ".:53 {\n    errors\n    forward . /etc/resolv.conf\n}\n";
  const once = corefileWithWorld(base, world);
  assert.ok(once.startsWith(base.trimEnd()));
  assert.match(once, /example\.test:53 \{\n {4}errors\n {4}cache 5\n {4}forward \. 198\.19\.0\.53\n\}/);
  assert.equal(corefileWithWorld(once, world), once, "applying twice changes nothing");
});

test("every scenario becomes valid Kubernetes objects: injected namespaces, labelled pods, its policies", async () => {
  for (const s of loadScenarioDir(SCENARIOS)) {
    const objects = scenarioObjects(s, "egret-world:istio-tests", "-----BEGIN CERTIFICATE-----\n");
    for (const o of objects.filter((x) => !x.apiVersion.startsWith("egret.dev/"))) assert.deepEqual(await validateObject(o), [], `${s.name}: ${o.kind} ${o.metadata.name}`);
    for (const p of s.pods) {
      const pod = objects.find((o) => o.kind === "Pod" && o.metadata.name === p.name && o.metadata.namespace === p.namespace);
      assert.ok(pod, `${s.name}: pod ${p.key}`);
      for (const [k, v] of Object.entries(p.labels)) assert.equal(pod.metadata.labels?.[k], v);
      const ns = objects.find((o) => o.kind === "Namespace" && o.metadata.name === p.namespace)!;
      assert.equal(ns.metadata.labels?.["istio-injection"], "enabled");
    }
    assert.equal(objects.filter((o) => o.apiVersion.startsWith("egret.dev/")).length, s.policies.length);
  }
});

test("connect and resolve steps become the mesh-in-a-box's client commands", () => {
  const psql = connectCommand({ kind: "connect", title: "", pod: "a/b", client: "psql", to: "db.example.test", expect: { outcome: "connected" } });
  assert.deepEqual(psql.argv.slice(0, 6), ["env", "PGCONNECT_TIMEOUT=10", "PGSSLMODE=disable", "psql", "-h", "db.example.test"]);
  assert.ok(psql.argv.includes("5432"));
  assert.equal(psql.succeeded(0, "egret-mesh-ok\n", ""), true);
  assert.equal(psql.succeeded(0, "", ""), false, "exit 0 without the marker is not a connection");
  const curl = connectCommand({ kind: "connect", title: "", pod: "a/b", client: "curl", to: "api.example.test", host: "www.example.test", expect: { outcome: "refused" } });
  assert.ok(curl.argv.includes("https://api.example.test:443/"));
  assert.deepEqual(curl.argv.slice(-2), ["-H", "Host: www.example.test"]);
  const ssl = connectCommand({ kind: "connect", title: "", pod: "a/b", client: "openssl", to: "198.19.2.10", sni: "www.example.test", expect: { outcome: "refused" } });
  assert.deepEqual(ssl.argv.slice(-2), ["-servername", "www.example.test"]);
  const tcp = connectCommand({ kind: "connect", title: "", pod: "a/b", client: "tcp", to: "db.example.test", port: 5432, send: "GET /", expect: { outcome: "refused" } });
  assert.equal(tcp.argv.at(-1), Buffer.from("GET /").toString("base64"));
  assert.equal(tcp.succeeded(1, '{"connected":false}', ""), false);
  const dig = resolveCommand({ kind: "resolve", title: "", pod: "a/b", name: "db.example.test", with: "dig", expect: {} });
  const parsed = dig.parse(0, ";; ->>HEADER<<- opcode: QUERY, status: NOERROR, id: 1\n;; ANSWER SECTION:\ndb.example.test.\t300\tIN\tA\t198.19.1.10\n\n;; Query time: 1 msec");
  assert.deepEqual(parsed, { rcode: "NOERROR", addresses: ["198.19.1.10"] });
  const digTcp = resolveCommand({ kind: "resolve", title: "", pod: "a/b", name: "db.example.test", with: "dig", tcp: true, expect: {} } as Parameters<typeof resolveCommand>[0]);
  assert.deepEqual(digTcp.argv.slice(0, 2), ["dig", "+tcp"]);
  assert.equal(dig.argv[1], "+time=2", "UDP unless asked");
  assert.throws(() => resolveCommand({ kind: "resolve", title: "", pod: "a/b", name: "x.test", with: "carrier-pigeon" as "dig", expect: {} }), /not supported by the real-cluster runner/);
});

test("audit matching finds the connection's line and compares verdict, reason, policy and rule", () => {
  const lines = [
    "not json",
    JSON.stringify({ time: 1, pod: { namespace: "payments", name: "api" }, dst: "198.19.1.11:3306", verdict: "VERDICT_DENY", reason: "REASON_DEFAULT_DENY" }),
    JSON.stringify({ time: 2, pod: { namespace: "payments", name: "api" }, dst: "198.19.1.10:5432", verdict: "allow", reason: "allowed", policy: "payments/database", rule: "postgres" }),
  ];
  const pod = { namespace: "payments", name: "api" };
  assert.deepEqual(auditVerdict(lines, pod, { ip: "198.19.1.10", port: 5432 }, { verdict: "allow", policy: "payments/database", rule: "postgres" })?.ok, true);
  assert.deepEqual(auditVerdict(lines, pod, { ip: "198.19.1.11", port: 3306 }, { verdict: "deny", reason: "default-deny" })?.ok, true);
  const wrong = auditVerdict(lines, pod, { ip: "198.19.1.10", port: 5432 }, { verdict: "deny" });
  assert.deepEqual(wrong?.mismatches, ["verdict: expected deny, got allow"]);
  assert.equal(auditVerdict(lines, pod, { ip: "198.19.9.9", port: 1 }, { verdict: "deny" }), undefined, "no line yet: keep polling");
});

test("a step kind the real-cluster runner does not know fails loudly instead of passing", async () => {
  const { runStep } = await import("../lib/cluster/main.js");
  const scenario = { name: "x", file: "x.yaml", namespaces: {}, pods: [], policies: [], steps: [] } as unknown as Parameters<typeof runStep>[0];
  const failure = await runStep(scenario, { kind: "teleport", title: "t" } as unknown as Parameters<typeof runStep>[1], world, new Map());
  assert.equal(failure, 'step kind "teleport" is not supported by the real-cluster runner yet');
  const audit = await runStep(scenario, { kind: "audit", title: "a", ref: "nope", expect: {} } as unknown as Parameters<typeof runStep>[1], world, new Map());
  assert.equal(audit, 'no earlier connect step with id "nope"');
});
