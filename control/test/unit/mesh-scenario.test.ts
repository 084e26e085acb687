// The scenario and world loaders: every shipped file loads, and mistakes are reported with
// file:line:column, the field path and what to write instead.
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { loadScenarioDir, parseScenario, parseDuration, ScenarioError } from "../../src/mesh/scenario.js";
import { loadWorld, parseWorld, namesServedBy, zoneFile, outsideAddresses, MeshConfigError } from "../../src/mesh/world.js";

const root = join(fileURLToPath(new URL(".", import.meta.url)), "../../../..");
const scenarioDir = join(root, "istio-tests/scenarios");

const GOOD = `
name: sample
pods:
  - {name: app, namespace: shop, labels: {app: shop}}
policies: []
steps:
  - resolve: db.example.test
    pod: shop/app
  - connect: {client: psql, to: db.example.test}
    pod: shop/app
    expect: {outcome: connected, verdict: allow}
`;

function problemsOf(text: string): ScenarioError["problems"] {
  try {
    parseScenario(text, "s.yaml");
  } catch (e) {
    assert.ok(e instanceof ScenarioError, String(e));
    return e.problems;
  }
  assert.fail("expected the scenario to be rejected");
}

test("every shipped scenario and the world load", () => {
  const scenarios = loadScenarioDir(scenarioDir);
  assert.ok(scenarios.length >= 9, `found ${scenarios.length} scenarios`);
  const world = loadWorld(join(scenarioDir, "world.yaml"));
  const known = new Set(world.records.map((r) => r.name));
  for (const s of scenarios) {
    for (const step of s.steps) {
      if ((step.kind === "connect" && !/^\d/.test(step.to)) || step.kind === "resolve") {
        const name = step.kind === "connect" ? step.to : step.name;
        const covered = known.has(name) || [...known].some((k) => k.startsWith("*.") && name.endsWith(k.slice(1)) && !name.slice(0, -k.length + 1).includes("."));
        assert.ok(covered, `${s.file}: ${step.title}: ${name} is not in world.yaml`);
      }
    }
  }
});

test("a valid scenario gets defaults: namespace entries, client ports, titles", () => {
  const s = parseScenario(GOOD, "s.yaml");
  assert.deepEqual(Object.keys(s.namespaces), ["shop"]);
  const connect = s.steps[1]!;
  assert.equal(connect.kind, "connect");
  assert.equal(connect.kind === "connect" && connect.port, 5432);
  assert.match(connect.title, /shop\/app: psql db\.example\.test:5432 → connected/);
  assert.equal(s.steps[0]!.kind === "resolve" && s.steps[0]!.with, "dig");
});

test("an unknown pod is named with the declared ones and the line", () => {
  const p = problemsOf(GOOD.replace("    pod: shop/app\n    expect", "    pod: shop/ap\n    expect"));
  assert.equal(p.length, 1);
  assert.equal(p[0]!.path, "steps[1].pod");
  assert.equal(p[0]!.line, 10);
  assert.match(p[0]!.message, /"shop\/ap" is not declared.*shop\/app/);
});

test("a misspelt field gets a did-you-mean", () => {
  const p = problemsOf(GOOD.replace("{outcome: connected, verdict: allow}", "{outcome: connected, verdcit: allow}"));
  assert.equal(p[0]!.path, "steps[1].expect.verdcit");
  assert.match(p[0]!.message, /did you mean "verdict"/);
});

test("every problem in a file is reported at once", () => {
  const bad = `
name: Bad_Name
pods:
  - {name: app, labels: {"bad key!": x}}
steps:
  - sleep: soon
  - connect: {client: telnet, to: "not a host"}
    pod: default/app
  - resolve: x.test
    connect: {client: psql, to: db.example.test}
`;
  const p = problemsOf(bad);
  const paths = p.map((x) => x.path);
  for (const want of ["name", "pods[0].labels.bad key!", "steps[0].sleep", "steps[1].connect.client", "steps[1].connect.to", "steps[1].expect", "steps[2]"]) {
    assert.ok(paths.includes(want), `missing ${want} in ${paths.join(", ")}`);
  }
  assert.ok(p.every((x) => x.line !== undefined), "every problem has a line");
});

test("client-specific options are refused on other clients; tcp needs a port", () => {
  const p = problemsOf(GOOD.replace("{client: psql, to: db.example.test}", "{client: psql, to: db.example.test, sni: x.test}")
    .replace("  - resolve: db.example.test\n    pod: shop/app\n", "  - connect: {client: tcp, to: 198.19.1.10}\n    pod: shop/app\n    expect: {outcome: refused}\n"));
  assert.deepEqual(p.map((x) => x.path).sort(), ["steps[0].connect.port", "steps[1].connect.sni"]);
  assert.match(p.find((x) => x.path === "steps[1].connect.sni")!.message, /only to the openssl client/);
});

test("policies need apiVersion, kind and metadata", () => {
  const p = problemsOf(GOOD.replace("policies: []", "policies:\n  - {apiVersion: v1, kind: NetworkPolicy, metadata: {}}"));
  assert.deepEqual(p.map((x) => x.path), ["policies[0].apiVersion", "policies[0].kind", "policies[0].metadata.name"]);
});

test("policy contents go through egret's own validator, positioned in the scenario file", () => {
  const policy = `policies:
  - apiVersion: egret.dev/v1alpha1
    kind: EgressPolicy
    metadata: {name: p, namespace: shop}
    spec:
      podSelector: {}
      rules:
        - {action: Allow, to: {domains: ["a.*.example.test"]}}`;
  const p = problemsOf(GOOD.replace("policies: []", policy));
  assert.equal(p.length, 1, JSON.stringify(p));
  assert.match(p[0]!.path, /^policies\[0\]\.spec\.rules\[0\]\.to\.domains/);
  assert.equal(p[0]!.line, 12, "the line of the offending rule in the scenario file");
});

test("YAML syntax errors carry their position", () => {
  const p = problemsOf("name: x\npods: [\n");
  assert.equal(p[0]!.path, "(yaml)");
  assert.ok(p[0]!.line! >= 2);
});

test("stop/start/await/audit steps, connect ids and knownIssue", () => {
  const s = parseScenario(GOOD.replace("    expect: {outcome: connected, verdict: allow}\n", `    id: first
    expect: {outcome: connected, verdict: allow}
  - stop: control
  - start: agent
  - await: sidecars-connected
    within: 10s
  - audit: first
    expect: {verdict: allow, within: 5s}
    knownIssue: reports can be lost
`), "s.yaml");
  assert.deepEqual(s.steps.map((x) => x.kind), ["resolve", "connect", "stop", "start", "await", "audit"]);
  const audit = s.steps[5]!;
  assert.ok(audit.kind === "audit" && audit.ref === "first" && audit.expect.within === 5000);
  assert.equal(audit.knownIssue, "reports can be lost");
  assert.ok(s.steps[4]!.kind === "await" && s.steps[4]!.within === 10_000);

  const p = problemsOf(GOOD.replace("    expect: {outcome: connected, verdict: allow}\n", `    expect: {outcome: connected}
  - audit: later
    expect: {verdict: allow}
  - connect: {client: psql, to: db.example.test}
    pod: shop/app
    id: later
    expect: {outcome: connected}
  - await: everything
  - stop: database
    knownIssue: ""
`));
  assert.deepEqual(p.map((x) => x.path), ["steps[2].audit", "steps[4].await", "steps[5].stop"]);
  assert.match(p[0]!.message, /id of an earlier connect step/);
});

test("repeat: {i} is checked as 1 and only allowed with repeat; a repeated step has no id", () => {
  const ok = parseScenario(GOOD.replace("{client: psql, to: db.example.test}\n    pod: shop/app", "{client: curl, to: \"n{i}.apis.test\"}\n    pod: shop/app\n    repeat: 3"), "s.yaml");
  const c = ok.steps[1]!;
  assert.ok(c.kind === "connect" && c.repeat === 3 && c.to === "n{i}.apis.test");
  assert.match(c.title, /3× curl n\{i\}\.apis\.test/);
  const p = problemsOf(GOOD.replace("{client: psql, to: db.example.test}\n    pod: shop/app", "{client: curl, to: \"n{i}.apis.test\"}\n    pod: shop/app\n    id: x\n    repeat: 0"));
  assert.deepEqual(p.map((x) => x.path).sort(), ["steps[1].id", "steps[1].repeat"]);
  const q = problemsOf(GOOD.replace("{client: psql, to: db.example.test}", "{client: curl, to: \"n{i}.apis.test\"}"));
  assert.deepEqual(q.map((x) => x.path), ["steps[1].connect.to"]);
  assert.match(q[0]!.message, /only replaced in a step with repeat/);
});

test("durations", () => {
  assert.equal(parseDuration("3s"), 3000);
  assert.equal(parseDuration("250ms"), 250);
  assert.equal(parseDuration("1.5s"), 1500);
  assert.equal(parseDuration(2), 2000);
  assert.equal(parseDuration("3 seconds"), undefined);
  assert.equal(parseDuration(-1), undefined);
});

test("world: records become one root zone; certificate names follow A records and CNAMEs", () => {
  const w = parseWorld({
    resolver: "198.19.0.53",
    services: [{ name: "web", kind: "web", addresses: ["198.19.2.40"] }],
    records: ["a.cdn.test 60 A 198.19.2.40", "alias.test 30 CNAME A.CDN.test.", "other.test 5 A 198.19.9.9"],
  }, "w.yaml");
  assert.equal(w.services[0]!.port, 443);
  assert.deepEqual(namesServedBy(w, ["198.19.2.40"]), ["a.cdn.test", "alias.test"]);
  assert.deepEqual(outsideAddresses(w), ["198.19.0.53", "198.19.2.40"]);
  const zone = zoneFile(w);
  assert.match(zone, /^alias\.test\. 30 IN CNAME a\.cdn\.test\.$/m);
  assert.match(zone, /^other\.test\. 5 IN A 198\.19\.9\.9$/m);
});

test("world: bad records and services are named precisely", () => {
  const bad = (patch: Record<string, unknown>, path: string) => {
    const base = { resolver: "198.19.0.53", services: [], records: [] };
    assert.throws(() => parseWorld({ ...base, ...patch }, "w.yaml"), (e: unknown) => e instanceof MeshConfigError && e.path === path);
  };
  bad({ resolver: "dns" }, "resolver");
  bad({ records: ["a.test 60 A"] }, "records[0]");
  bad({ records: ["a.test 60 MX 10"] }, "records[0]");
  bad({ records: ["a.test ttl A 1.2.3.4"] }, "records[0]");
  bad({ records: ["a.test 60 A 1.2.3"] }, "records[0]");
  bad({ services: [{ name: "db", kind: "oracle", addresses: ["198.19.1.1"] }] }, "services[0].kind");
  bad({ services: [{ name: "db", kind: "redis", addresses: [] }] }, "services[0].addresses");
});
