// `egret learn` end to end through bin/egret.js: captures built here, replayed through the same
// pipeline as `egret simulate`; the learnt policies are validated and simulated back.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { CaptureScript } from "../support/capture-script.js";
import { clientHello, connectRequest, httpRequest } from "./egress-fixture.js";

const BIN = fileURLToPath(new URL("../../../../bin/egret.js", import.meta.url));
const egret = (...args: string[]) => spawnSync(process.execPath, [BIN, ...args], { encoding: "utf8" });
const R = "10.96.0.10", A = "10.1.0.7", B = "10.1.0.8", C = "10.1.0.9";
const PODS = `pods:
  - {name: web-7d9f-abc, namespace: shop, ip: ${A}, labels: {app: web, pod-template-hash: 7d9f}}
  - {name: web-7d9f-def, namespace: shop, ip: ${B}, labels: {app: web, pod-template-hash: 7d9f}}
  - {name: batch-0, namespace: shop, ip: ${C}, labels: {app: batch, controller-revision-hash: x1}}
`;

/** Legitimate traffic plus every kind of lie the learner must not learn from. */
function training(): Uint8Array {
  const s = new CaptureScript();
  s.dns(A, R, "api.example.com", ["203.0.113.10"]).tcp(A, 40001, "203.0.113.10", 443, clientHello("api.example.com"));
  s.dns(B, R, "api.example.com", ["203.0.113.10"]).tcp(B, 40002, "203.0.113.10", 443, clientHello("api.example.com"));
  for (const [i, n] of ["a", "b", "c"].entries()) s.dns(A, R, `${n}.cdn.example.net`, [`203.0.113.${20 + i}`]).tcp(A, 40010 + i, `203.0.113.${20 + i}`, 443, clientHello(`${n}.cdn.example.net`));
  // Faked SNI: resolved evil.example.org, claims api.example.com.
  s.dns(A, R, "evil.example.org", ["203.0.113.30"]).tcp(A, 40020, "203.0.113.30", 443, clientHello("api.example.com"));
  // Faked Host to a never-resolved address.
  s.tcp(A, 40021, "198.51.100.7", 80, httpRequest("api.example.com"));
  // Forged DNS: an answer to a query the pod never sent.
  s.dns(A, R, "forged.example.org", ["203.0.113.40"], { answerOnly: true }).tcp(A, 40022, "203.0.113.40", 443, clientHello("forged.example.org"));
  s.dns(C, R, "db.example.com", ["203.0.113.50"]).tcp(C, 40030, "203.0.113.50", 80, httpRequest("db.example.com"));
  // Not a pod of the pods file.
  s.tcp("10.9.9.9", 40040, "203.0.113.10", 443, clientHello("api.example.com"));
  return s.bytes();
}

function withDir<T>(files: Record<string, string | Uint8Array>, fn: (dir: string) => T): T {
  const dir = mkdtempSync(join(tmpdir(), "egret-learn-"));
  for (const [n, c] of Object.entries(files)) writeFileSync(join(dir, n), c);
  try { return fn(dir); } finally { rmSync(dir, { recursive: true, force: true }); }
}

interface Sim { client: string; server: string; pod: string | null; verdict: string; reason: string }
function simulate(dir: string, policy: string, pcap: string): Sim[] {
  const r = egret("simulate", "--policy", join(dir, policy), "--pods", join(dir, "pods.yaml"), "--pcap", join(dir, pcap), "--json");
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.trim().split("\n").map((l) => JSON.parse(l) as Sim);
}

function learnTo(dir: string, out: string, ...args: string[]): { yaml: string; summary: string } {
  const r = egret("learn", "--pcap", join(dir, "train.pcap"), "--pods", join(dir, "pods.yaml"), ...args);
  assert.equal(r.status, 0, r.stderr);
  writeFileSync(join(dir, out), r.stdout);
  const v = egret("validate", join(dir, out));
  assert.equal(v.status, 0, v.stdout);
  assert.match(v.stdout, / 0 errors/);
  return { yaml: r.stdout, summary: r.stderr };
}

test("learn: one policy per workload by stable labels, names not IPs, siblings collapsed, Monitor by default", () => withDir({ "train.pcap": training(), "pods.yaml": PODS }, (dir) => {
  const { yaml, summary } = learnTo(dir, "learnt.yaml");
  assert.match(yaml, /kind: EgressPolicy\nmetadata:\n {2}name: learned-web\n {2}namespace: shop\nspec:\n {2}mode: Monitor\n {2}podSelector:\n {4}matchLabels:\n {6}app: web\n/);
  assert.match(yaml, /name: learned-batch/);
  const uncommented = yaml.split("\n").filter((l) => !l.trim().startsWith("#")).join("\n");
  assert.doesNotMatch(uncommented, /pod-template-hash|controller-revision-hash|web-7d9f/);
  assert.match(yaml, /"\*\.cdn\.example\.net"/);
  assert.match(yaml, /# \*\.cdn\.example\.net stands for 3 names seen/);
  assert.match(yaml, /protocols:\n\s+- tls/);
  assert.match(yaml, /# 5 connection\(s\), first 2026-01-01T00:00:00Z, last 2026-01-01T00:00:00Z; pods: shop\/web-7d9f-abc, shop\/web-7d9f-def/);
  assert.match(summary, /1 claim-unverified/);
  assert.match(summary, /2 unattributed/);
  assert.match(summary, /1 not-a-pod/);
  assert.match(summary, /DNS evidence the observer rejected \(never used\): 1 unsolicited/);
}));

test("learn: lies are never learnt — faked SNI/Host, forged DNS and never-resolved addresses stay out of the rules", () => withDir({ "train.pcap": training(), "pods.yaml": PODS }, (dir) => {
  const { yaml } = learnTo(dir, "learnt.yaml");
  const rules = yaml.split("\n").filter((l) => !l.trim().startsWith("#")).join("\n");
  for (const lie of ["evil.example.org", "forged.example.org", "198.51.100.7", "203.0.113.40", "203.0.113.30"]) assert.ok(!rules.includes(lie), `${lie} must not be in any rule`);
  assert.match(yaml, /# unattributed: connections to addresses the pods never resolved/);
  assert.match(yaml, /# {3}198\.51\.100\.7:80 {2}1 connection\(s\)/);
}));

test("learn round trip: the same capture under the learnt policy in Enforce mode denies exactly what was left out", () => withDir({ "train.pcap": training(), "pods.yaml": PODS }, (dir) => {
  learnTo(dir, "enforce.yaml", "--mode", "Enforce");
  const results = simulate(dir, "enforce.yaml", "train.pcap");
  const denied = results.filter((r) => r.verdict === "deny").map((r) => `${r.server} ${r.reason}`).sort();
  assert.deepEqual(denied, ["198.51.100.7:80 unattributed", "203.0.113.30:443 sni-unverified", "203.0.113.40:443 unattributed"]);
  assert.equal(results.find((r) => r.pod === null)?.reason, "not-a-pod");
}));

test("learn --allow-unattributed-cidrs: never-resolved addresses become /32 rules; claims still never learnt", () => withDir({ "train.pcap": training(), "pods.yaml": PODS }, (dir) => {
  const { yaml } = learnTo(dir, "cidrs.yaml", "--mode", "Enforce", "--allow-unattributed-cidrs");
  assert.match(yaml, /cidr: 198\.51\.100\.7\/32/);
  const denied = simulate(dir, "cidrs.yaml", "train.pcap").filter((r) => r.verdict === "deny").map((r) => `${r.server} ${r.reason}`);
  assert.deepEqual(denied, ["203.0.113.30:443 sni-unverified"]);
}));

test("learn --policy: only what the existing policies do not allow is proposed, and it says so", () => withDir({
  "train.pcap": training(), "pods.yaml": PODS,
  "existing.yaml": "apiVersion: egret.dev/v1alpha1\nkind: EgressPolicy\nmetadata: {name: api, namespace: shop}\nspec:\n  podSelector: {matchLabels: {app: web}}\n  priority: 10\n  rules:\n  - {name: api, action: Allow, to: {domains: [api.example.com]}, ports: [{port: 443}]}\n",
}, (dir) => {
  const { yaml, summary } = learnTo(dir, "more.yaml", "--policy", join(dir, "existing.yaml"));
  const rules = yaml.split("\n").filter((l) => !l.trim().startsWith("#")).join("\n");
  assert.ok(!rules.includes("api.example.com"), "already allowed: not repeated");
  assert.match(rules, /\*\.cdn\.example\.net/);
  assert.match(yaml, /# 2 connection\(s\) already allowed by the --policy files: not repeated here\./);
  assert.match(yaml, /# Only what .*existing\.yaml do not already allow is proposed here\./);
  assert.match(summary, /2 already allowed by/);
}));

test("learn on a held-out capture: what the learnt policy would deny there", () => withDir({ "train.pcap": training(), "pods.yaml": PODS }, (dir) => {
  learnTo(dir, "enforce.yaml", "--mode", "Enforce");
  const s = new CaptureScript();
  s.dns(A, R, "d.cdn.example.net", ["203.0.113.23"]).tcp(A, 41001, "203.0.113.23", 443, clientHello("d.cdn.example.net")); // a new sibling: the wildcard covers it
  s.dns(B, R, "api.example.com", ["203.0.113.11"]).tcp(B, 41002, "203.0.113.11", 443, clientHello("api.example.com"));   // a new address for a known name
  s.dns(B, R, "new.example.com", ["203.0.113.60"]).tcp(B, 41003, "203.0.113.60", 443, clientHello("new.example.com"));     // never seen in training
  s.dns(C, R, "db.example.com", ["203.0.113.50"]).tcp(C, 41004, "203.0.113.50", 443, clientHello("db.example.com"));      // known name, new port and protocol
  writeFileSync(join(dir, "heldout.pcap"), s.bytes());
  const got = simulate(dir, "enforce.yaml", "heldout.pcap").map((r) => `${r.server} ${r.verdict} ${r.reason}`);
  assert.deepEqual(got, [
    "203.0.113.23:443 allow allowed",
    "203.0.113.11:443 allow allowed",
    "203.0.113.60:443 deny default-deny",
    "203.0.113.50:443 deny default-deny",
  ]);
}));

test("learn --audit-log: control's verdict records from a Monitor rollout", () => withDir({ "pods.yaml": PODS }, (dir) => {
  const rec = (o: Record<string, unknown>) => JSON.stringify({ kind: "egret.verdict", time: "2026-01-02T10:00:00.000Z", src: `${A}:40000`, names: [], protocol: "tls", sni: "", host: "", verdict: "would-deny", reason: "default-deny", policy: "shop/trial", rule: "", mode: "monitor", matched_name: "", ...o });
  writeFileSync(join(dir, "audit.log"), [
    rec({ pod: "shop/web-7d9f-abc", dst: "203.0.113.10:443", names: ["api.example.com"], sni: "api.example.com" }),
    rec({ pod: "shop/web-7d9f-abc", dst: "203.0.113.30:443", names: ["evil.example.org"], sni: "api.example.com", reason: "sni-unverified" }),
    rec({ pod: "shop/web-7d9f-abc", dst: "198.51.100.7:443", reason: "unattributed" }),
    rec({ pod: "other/ghost", dst: "203.0.113.10:443", names: ["api.example.com"] }),
    "not json",
  ].join("\n") + "\n");
  const r = egret("learn", "--audit-log", join(dir, "audit.log"), "--pods", join(dir, "pods.yaml"));
  assert.equal(r.status, 0, r.stderr);
  const rules = r.stdout.split("\n").filter((l) => !l.trim().startsWith("#")).join("\n");
  assert.match(rules, /- api\.example\.com/);
  assert.ok(!rules.includes("evil.example.org"));
  assert.match(r.stderr, /1 claim-unverified/);
  assert.match(r.stderr, /1 not-a-pod/);
  assert.match(r.stderr, /1 unattributed/);
  assert.match(r.stderr, /1 line\(s\) that are not egret\.verdict records/);
}));

test("learn: usage errors are clear", () => withDir({ "pods.yaml": PODS }, (dir) => {
  assert.equal(egret("learn", "--pods", join(dir, "pods.yaml")).status, 2);
  assert.match(egret("learn", "--pcap", "x", "--pods", join(dir, "pods.yaml"), "--mode", "Audit").stderr, /Monitor or Enforce/);
  assert.match(egret("learn", "--pcap", "x", "--pods", join(dir, "pods.yaml"), "--min-siblings", "1").stderr, /integer ≥ 2/);
  const missing = egret("learn", "--pcap", join(dir, "nope.pcap"), "--pods", join(dir, "pods.yaml"));
  assert.equal(missing.status, 2);
  assert.match(missing.stderr, /cannot read --pcap/);
  assert.ok(readFileSync(join(dir, "pods.yaml")));
}));

// Two names share one address (a CDN or virtual hosts); the request's Host says which was used.
// The filter verified and narrowed it during the replay; only that name is learnt.
test("learn: a Host-narrowed name — of two names resolved to one address, only the one the request used is learnt", () => {
  const s = new CaptureScript();
  s.dns(A, R, "shop.shared-cdn.example", ["203.0.113.60"]).dns(A, R, "blog.unrelated.example", ["203.0.113.60"]);
  s.tcp(A, 40050, "203.0.113.60", 80, httpRequest("shop.shared-cdn.example"));
  return withDir({ "train.pcap": s.bytes(), "pods.yaml": PODS }, (dir) => {
    const { yaml } = learnTo(dir, "learnt.yaml", "--mode", "Enforce");
    assert.match(yaml, /shop\.shared-cdn\.example/);
    assert.doesNotMatch(yaml, /blog\.unrelated\.example/, "the other name on the address was never used");
    // Round trip: the learnt policy allows the request it was learnt from.
    const sims = simulate(dir, "learnt.yaml", "train.pcap").filter((x) => x.pod === "shop/web-7d9f-abc");
    assert.deepEqual(sims.map((x) => [x.verdict, x.reason]), [["allow", "allowed"]]);
  });
});

// Through a forward proxy the filter judges the CONNECT target (name and port), not the proxy's own
// address and port: the learnt rule must be for what the filter evaluates, or Enforce would deny
// the very connection it was learnt from.
test("learn through a forward proxy: the CONNECT target's name and port are learnt, and the round trip allows it", () => {
  const s = new CaptureScript();
  s.dns(A, R, "proxy.example.com", ["203.0.113.70"]).tcp(A, 40060, "203.0.113.70", 3128, connectRequest("assets.example.com:443"));
  s.tcp(A, 40061, "203.0.113.70", 3128, connectRequest("198.51.100.9:8443"));
  return withDir({ "train.pcap": s.bytes(), "pods.yaml": PODS }, (dir) => {
    const { yaml } = learnTo(dir, "learnt.yaml", "--mode", "Enforce", "--allow-unattributed-cidrs");
    const rules = yaml.split("\n").filter((l) => !l.trim().startsWith("#")).join("\n");
    assert.match(rules, /- assets\.example\.com\n\s+ports:\n\s+- port: 443\n/);
    assert.match(rules, /cidr: 198\.51\.100\.9\/32\n\s+ports:\n\s+- port: 8443\n/, "an IP-literal target becomes that address's rule");
    assert.doesNotMatch(rules, /port: 3128|203\.0\.113\.70/, "never the proxy's own port or address");
    const sims = simulate(dir, "learnt.yaml", "train.pcap").filter((x) => x.pod !== null);
    assert.deepEqual(sims.map((x) => [x.server, x.verdict, x.reason]), [["203.0.113.70:3128", "allow", "allowed"], ["203.0.113.70:3128", "allow", "allowed"]]);
  });
});
