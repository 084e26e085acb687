// `egret simulate`: captures (built here, and real ones from ../shared/corpus) replayed through the
// DNS observer, egret control (file mode) and egret.wasm; checks the verdicts a person reading the
// policy would reach.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync, existsSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { simulateCapture, SimulateInputError, type SimulatedConnection } from "../../src/simulate/replay.js";
import { silentLogger } from "../../src/common/log.js";
import { CaptureScript } from "../support/capture-script.js";
import { clientHello, httpRequest } from "./egress-fixture.js";

const REPO = fileURLToPath(new URL("../../../../", import.meta.url));
const CORPUS = join(REPO, "..", "shared", "corpus");
const BIN = join(REPO, "bin", "egret.js");

const POD = "10.1.0.7";
const RESOLVER = "10.96.0.10";
const PODS = `
namespaces:
  - {name: shop, labels: {team: payments}}
pods:
  - {name: web-0, namespace: shop, ip: ${POD}, labels: {app: web}}
`;
const POLICY = `
apiVersion: egret.dev/v1alpha1
kind: EgressPolicy
metadata: {name: web-egress, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  rules:
    - {name: no-evil, action: Deny, to: {domains: [evil.example.com]}}
    - {name: api, action: Allow, to: {domains: [api.example.com, www.example.com]}, ports: [{port: 443}]}
    - {name: watched, action: Alert, to: {domains: ["*.watched.example.org"]}}
`;

function withFiles<T>(files: Record<string, string | Uint8Array>, fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), "egret-simulate-"));
  for (const [name, content] of Object.entries(files)) writeFileSync(join(dir, name), content);
  return fn(dir).finally(() => rmSync(dir, { recursive: true, force: true }));
}

async function simulate(capture: Uint8Array, o: { policy?: string; pods?: string; trusted?: string[]; config?: Record<string, unknown> } = {}): Promise<SimulatedConnection[]> {
  return withFiles({ "policy.yaml": o.policy ?? POLICY, "pods.yaml": o.pods ?? PODS }, (dir) =>
    simulateCapture({
      policyPaths: [join(dir, "policy.yaml")], podsFile: join(dir, "pods.yaml"), capture,
      trustedResolvers: o.trusted ?? null, log: silentLogger(), filterConfig: o.config,
    }));
}

const summary = (r: SimulatedConnection) => [r.server, r.verdict, r.reason, r.rule];

test("simulate: the verdicts follow the pod's own DNS answers, SNI/Host verification and rule order", async () => {
  const cap = new CaptureScript()
    .dns(POD, RESOLVER, "api.example.com", ["203.0.113.10"])
    .tcp(POD, 40001, "203.0.113.10", 443, clientHello("api.example.com"))            // resolved + SNI: allow
    .tcp(POD, 40002, "203.0.113.10", 443, clientHello("evil.example.com"))           // SNI not resolved to it
    .tcp(POD, 40003, "198.51.100.200", 443, clientHello("api.example.com"))          // never resolved
    .dns(POD, RESOLVER, "evil.example.com", ["203.0.113.66"])
    .tcp(POD, 40004, "203.0.113.66", 443, clientHello("evil.example.com"))           // deny rule
    .dns(POD, RESOLVER, "www.example.com", ["192.0.2.44"], { cnames: ["edge.cdn.example.net"] })
    .tcp(POD, 40005, "192.0.2.44", 443, clientHello("www.example.com"))              // through a CNAME chain
    .dns(POD, RESOLVER, "x.watched.example.org", ["192.0.2.80"])
    .tcp(POD, 40006, "192.0.2.80", 80, httpRequest("x.watched.example.org"))         // alert
    .tcp("10.9.9.9", 40007, "203.0.113.10", 443, clientHello("api.example.com"))     // not a pod
    .bytes();
  const r = await simulate(cap);
  assert.deepEqual(r.map(summary), [
    ["203.0.113.10:443", "allow", "allowed", "api"],
    ["203.0.113.10:443", "deny", "sni-unverified", "api"], // the rule the claim tried to use
    ["198.51.100.200:443", "deny", "unattributed", null],
    ["203.0.113.66:443", "deny", "denied-by-rule", "no-evil"],
    ["192.0.2.44:443", "allow", "allowed", "api"],
    ["192.0.2.80:80", "alert", "alert-by-rule", "watched"],
    ["203.0.113.10:443", "allow", "not-a-pod", null],
  ]);
  assert.deepEqual(r[0], {
    client: `${POD}:40001`, server: "203.0.113.10:443", pod: "shop/web-0", names: ["api.example.com"], protocol: "tls",
    sni: "api.example.com", matchedName: "api.example.com", verdict: "allow", reason: "allowed", policy: "shop/web-egress", rule: "api", time: r[0]!.time,
    decisions: r[0]!.decisions,
  });
  assert.deepEqual(r[0]!.decisions.map((d) => [d.verdict, d.reason, d.sni]), [["allow", "allowed", "api.example.com"]]);
  assert.equal(r[5]!.protocol, "http");
  assert.equal(r[6]!.pod, null);
});

test("simulate: answers from a resolver that is not trusted are not evidence", async () => {
  const cap = new CaptureScript()
    .dns(POD, "10.96.0.99", "api.example.com", ["203.0.113.10"])
    .tcp(POD, 40001, "203.0.113.10", 443, clientHello("api.example.com"))
    .bytes();
  assert.deepEqual((await simulate(cap, { trusted: [RESOLVER] })).map(summary), [["203.0.113.10:443", "deny", "unattributed", null]]);
  assert.deepEqual((await simulate(cap)).map(summary), [["203.0.113.10:443", "allow", "allowed", "api"]], "offline mode believes any resolver");
});

test("simulate: a resolution expires with its TTL (plus control's grace)", async () => {
  const cap = new CaptureScript()
    .dns(POD, RESOLVER, "api.example.com", ["203.0.113.10"], { ttl: 10 })
    .tcp(POD, 40001, "203.0.113.10", 443, clientHello("api.example.com"))
    .wait(3600)
    .tcp(POD, 40002, "203.0.113.10", 443, clientHello("api.example.com"))
    .bytes();
  assert.deepEqual((await simulate(cap)).map((c) => c.verdict), ["allow", "deny"]);
});

test("simulate: Monitor mode reports would-deny and lets the connection through", async () => {
  const cap = new CaptureScript().dns(POD, RESOLVER, "evil.example.com", ["203.0.113.66"]).tcp(POD, 40001, "203.0.113.66", 443, clientHello("evil.example.com")).bytes();
  const [c] = await simulate(cap, { policy: POLICY.replace("spec:\n", "spec:\n  mode: Monitor\n") });
  assert.deepEqual([c!.verdict, c!.reason, c!.rule, c!.mode], ["allow", "would-deny", "no-evil", "monitor"]);
});

test("simulate: a real capture — egress through a forward proxy is judged by its CONNECT target", { skip: !existsSync(join(CORPUS, "ndpi", "http_connect.pcap")) && "corpus not present beside the clone" }, async () => {
  const capture = readFileSync(join(CORPUS, "ndpi", "http_connect.pcap"));
  const pods = `pods:\n  - {name: laptop, namespace: office, ip: 192.168.1.103, labels: {app: browser}}\n  - {name: squid, namespace: office, ip: 192.168.1.146, labels: {app: proxy}}\n`;
  const policy = (domain: string) => `
apiVersion: egret.dev/v1alpha1
kind: EgressPolicy
metadata: {name: browse, namespace: office}
spec:
  podSelector: {matchLabels: {app: browser}}
  rules:
    - {name: site, action: Allow, to: {domains: [${domain}]}, ports: [{port: 443}]}
`;
  const config = { forwardProxies: ["192.168.1.146:8080"] };
  const allowed = await simulate(capture, { pods, policy: policy("apache.org"), config });
  const viaProxy = allowed.find((c) => c.server === "192.168.1.146:8080")!;
  assert.deepEqual([viaProxy.pod, viaProxy.verdict, viaProxy.rule, viaProxy.names], ["office/laptop", "allow", "site", ["apache.org"]]);
  const proxyOwn = allowed.find((c) => c.server === "151.101.2.132:443")!;
  assert.deepEqual([proxyOwn.pod, proxyOwn.verdict, proxyOwn.reason, proxyOwn.sni], ["office/squid", "allow", "not-selected", "apache.org"], "no policy selects the proxy pod");
  const denied = await simulate(capture, { pods, policy: policy("example.org"), config });
  assert.deepEqual(summary(denied.find((c) => c.server === "192.168.1.146:8080")!), ["192.168.1.146:8080", "deny", "default-deny", null]);
  // Without a declaration, the proxy is recognised from the CONNECT it receives in the capture.
  const detected = await simulate(capture, { pods, policy: policy("apache.org") });
  assert.deepEqual(summary(detected.find((c) => c.server === "192.168.1.146:8080")!), ["192.168.1.146:8080", "allow", "allowed", "site"]);
});

test("egret simulate: JSON lines on stdout; bad input exits non-zero with the reason", () =>
  withFiles({
    "policy.yaml": POLICY, "pods.yaml": PODS,
    "cap.pcap": new CaptureScript().dns(POD, RESOLVER, "api.example.com", ["203.0.113.10"]).tcp(POD, 40001, "203.0.113.10", 443, clientHello("api.example.com")).bytes(),
    "bad-policy.yaml": POLICY.replace("action: Deny", "action: Maybe"),
  }, async (dir) => {
    const run = (...args: string[]) => spawnSync(process.execPath, [BIN, "simulate", ...args], { encoding: "utf8", timeout: 120_000 });
    const ok = run("--policy", join(dir, "policy.yaml"), "--pods", join(dir, "pods.yaml"), "--pcap", join(dir, "cap.pcap"), "--json");
    assert.equal(ok.status, 0, ok.stderr);
    const lines = ok.stdout.trim().split("\n").map((l) => JSON.parse(l));
    assert.deepEqual(lines, [{
      client: `${POD}:40001`, server: "203.0.113.10:443", pod: "shop/web-0", names: ["api.example.com"], protocol: "tls",
      sni: "api.example.com", verdict: "allow", reason: "allowed", policy: "shop/web-egress", rule: "api",
      decisions: [{
        time: lines[0].decisions[0].time, verdict: "allow", reason: "allowed", policy: "shop/web-egress", rule: "api",
        names: ["api.example.com"], protocol: "tls", sni: "api.example.com", host: null, matchedName: "api.example.com",
      }],
    }]);
    const bad = run("--policy", join(dir, "bad-policy.yaml"), "--pods", join(dir, "pods.yaml"), "--pcap", join(dir, "cap.pcap"));
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /bad-policy\.yaml:\d+:\d+/);
    const missing = run("--pods", join(dir, "pods.yaml"), "--pcap", join(dir, "cap.pcap"));
    assert.equal(missing.status, 2);
    assert.match(missing.stderr, /--policy/);
    const notPcap = run("--policy", join(dir, "policy.yaml"), "--pods", join(dir, "pods.yaml"), "--pcap", join(dir, "pods.yaml"));
    assert.equal(notPcap.status, 1);
    assert.match(notPcap.stderr, /pods\.yaml/);
  }));

test("simulate: input errors name the file", async () => {
  await assert.rejects(simulate(new CaptureScript().bytes(), { pods: "pods:\n  - {name: web-0}\n" }), (e: Error) => e instanceof SimulateInputError && /pods\.yaml:\d+:\d+.*namespace/.test(e.message));
});

test("simulate: PODS.yaml may list namespaces as a mapping and pods with podIP (rewritten to control's form)", async () => {
  const cap = new CaptureScript().dns(POD, RESOLVER, "api.example.com", ["203.0.113.10"]).tcp(POD, 40001, "203.0.113.10", 443, clientHello("api.example.com")).bytes();
  const pods = `namespaces:\n  shop: {labels: {team: payments}}\npods:\n  - {name: web-0, namespace: shop, podIP: ${POD}, labels: {app: web}}\n`;
  const teamPolicy = POLICY.replace("kind: EgressPolicy\nmetadata: {name: web-egress, namespace: shop}", "kind: ClusterEgressPolicy\nmetadata: {name: payments}")
    .replace("  podSelector: {matchLabels: {app: web}}", "  namespaceSelector: {matchLabels: {team: payments}}\n  podSelector: {matchLabels: {app: web}}");
  const [c] = await simulate(cap, { pods, policy: teamPolicy });
  assert.deepEqual([c!.pod, c!.verdict, c!.policy, c!.rule], ["shop/web-0", "allow", "payments", "api"]);
});
