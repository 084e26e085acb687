// `egret explain`: argument handling and what it prints, end to end through bin/egret.js.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { tmpdir } from "node:os";

const BIN = fileURLToPath(new URL("../../../../bin/egret.js", import.meta.url));
const POLICY = `apiVersion: egret.dev/v1alpha1
kind: ClusterEgressPolicy
metadata: {name: guard}
spec:
  tier: Admin
  priority: 1
  namespaceSelector: {matchLabels: {team: pay}}
  rules:
  - name: no-tracker
    action: Deny
    to: {domains: ["**.tracker.example.net"]}
---
apiVersion: egret.dev/v1alpha1
kind: EgressPolicy
metadata: {name: api, namespace: payments}
spec:
  podSelector: {matchLabels: {app: api}}
  rules:
  - name: bank
    action: Allow
    to: {domains: [api.bank.example.com]}
    ports: [{port: 443}]
    protocols: [tls]
  - name: corp
    action: Alert
    to: {cidrs: [{cidr: "2001:db8::/32"}]}
`;

function withPolicy(fn: (file: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), "egret-explain-"));
  try {
    const file = join(dir, "p.yaml");
    writeFileSync(file, POLICY);
    fn(file);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
const egret = (...args: string[]) => spawnSync(process.execPath, [BIN, ...args], { encoding: "utf8" });

test("explain by name: ordered rules across policies and the deciding rule", () => withPolicy((file) => {
  const r = egret("explain", "--policy", file, "--pod", "payments/api-0:app=api", "--namespace-labels", "team=pay", "--to", "api.bank.example.com:443", "--protocol", "tls");
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /policies selecting the pod, in evaluation order: guard \(Admin, priority 1\) → payments\/api \(namespaced, priority 500\)/);
  assert.match(r.stdout, / 1\. ✘ ClusterEgressPolicy guard rule no-tracker: Deny domains \*\*\.tracker\.example\.net/);
  assert.match(r.stdout, / 2\. ✔ EgressPolicy payments\/api rule bank:/);
  assert.match(r.stdout, /verdict: allow \(allowed\) by EgressPolicy payments\/api rule bank, matched name api\.bank\.example\.com/);
}));

test("explain by IP with names, an SNI claim the names do not support", () => withPolicy((file) => {
  const r = egret("explain", "--policy", file, "--pod", "payments/api-0:app=api", "--to", "203.0.113.9:443", "--name", "cdn.example.org", "--protocol", "tls", "--sni", "api.bank.example.com", "--json");
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { verdict: string; reason: string; rule: string; policies: string[]; trace: { rule: string; outcome: string }[] };
  assert.equal(out.verdict, "deny");
  assert.equal(out.reason, "sni-unverified");
  assert.equal(out.rule, "bank");
  assert.deepEqual(out.policies, ["payments/api"]); // namespace labels not given: guard does not select
  assert.match(out.trace[0]!.outcome, /claimed name/);
}));

test("explain: IPv6 in brackets, protocol pending, pod not selected", () => withPolicy((file) => {
  const v6 = egret("explain", "--policy", file, "--pod", "payments/api-0:app=api", "--to", "[2001:db8::7]:8443");
  assert.equal(v6.status, 0, v6.stderr);
  assert.match(v6.stdout, /verdict: alert \(alert-by-rule\) by EgressPolicy payments\/api rule corp/);
  const pending = egret("explain", "--policy", file, "--pod", "payments/api-0:app=api", "--to", "api.bank.example.com");
  assert.match(pending.stdout, /verdict: pending — EgressPolicy payments\/api rule bank needs the detected protocol; pass --protocol/);
  const other = egret("explain", "--policy", file, "--pod", "payments/worker-0:app=worker", "--to", "1.1.1.1:53");
  assert.match(other.stdout, /no policy selects this pod: it is not enforced/);
  assert.match(other.stdout, /verdict: allow \(not-selected\)/);
}));

test("explain: bad arguments exit 2 with the reason; invalid policies exit 1", () => withPolicy((file) => {
  assert.equal(egret("explain", "--policy", file, "--pod", "nonamespace", "--to", "a.example.com").status, 2);
  const badPort = egret("explain", "--policy", file, "--pod", "ns/p", "--to", "a.example.com:70000");
  assert.equal(badPort.status, 2);
  assert.match(badPort.stderr, /port must be 1…65535/);
  const badProto = egret("explain", "--policy", file, "--pod", "ns/p", "--to", "a.example.com", "--protocol", "postgres");
  assert.equal(badProto.status, 2);
  assert.match(badProto.stderr, /--protocol "postgres" is not one of/);
  assert.equal(egret("explain", "--pod", "ns/p", "--to", "a.example.com").status, 2);
  const dir = mkdtempSync(join(tmpdir(), "egret-explain-bad-"));
  try {
    writeFileSync(join(dir, "bad.yaml"), POLICY.replace("api.bank.example.com", "api.*.example.com"));
    const r = egret("explain", "--policy", join(dir, "bad.yaml"), "--pod", "payments/api-0:app=api", "--to", "x.example.com");
    assert.equal(r.status, 1);
    assert.match(r.stderr, /bad\.yaml:21:\d+: error: spec\.rules\[0\]\.to\.domains\[0\]/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}));
