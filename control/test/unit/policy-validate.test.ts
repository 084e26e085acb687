// The validator: every fixture in control/test/fixtures/policy/mistakes/ holds one kind of mistake
// and, on its first line, the diagnostic it must produce:
//   # expect: error|warning CODE [path=P] [line=N] [col=N] [message=/re/] [hint=/re/]
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync, mkdtempSync, writeFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { tmpdir } from "node:os";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { formatDiagnostic, loadPolicyFiles, loadPolicyText, validatePolicyObject } from "../../src/policy/index.js";

const FIXTURES = fileURLToPath(new URL("../../../../control/test/fixtures/policy/", import.meta.url));
const MISTAKES = join(FIXTURES, "mistakes");
const BIN = fileURLToPath(new URL("../../../../bin/egret.js", import.meta.url));

interface Expectation { severity: string; code: string; path?: string; line?: number; col?: number; message?: RegExp; hint?: RegExp }

function parseExpectation(header: string): Expectation {
  const m = /^# expect: (error|warning) (\S+)(.*)$/.exec(header);
  if (!m) throw new Error(`bad expectation header: ${header}`);
  const rest = m[3]!;
  const field = (name: string): string | undefined => new RegExp(`\\b${name}=(/(?:[^/\\\\]|\\\\.)*/|.+?)(?= (?:path|line|col|message|hint)=|$)`).exec(rest)?.[1];
  const re = (v?: string): RegExp | undefined => (v ? new RegExp(v.slice(1, -1)) : undefined);
  const num = (v?: string): number | undefined => (v ? Number(v) : undefined);
  const e: Expectation = { severity: m[1]!, code: m[2]! };
  const path = field("path"); if (path) e.path = path;
  const line = num(field("line")); if (line) e.line = line;
  const col = num(field("col")); if (col) e.col = col;
  const message = re(field("message")); if (message) e.message = message;
  const hint = re(field("hint")); if (hint) e.hint = hint;
  return e;
}

const files = readdirSync(MISTAKES).filter((f) => f.endsWith(".yaml")).sort();

for (const file of files) {
  const path = join(MISTAKES, file);
  const expect = parseExpectation(readFileSync(path, "utf8").split("\n")[0]!);
  test(`validate reports ${expect.severity} ${expect.code}: ${file}`, () => {
    const { diagnostics } = loadPolicyFiles([path]);
    const found = diagnostics.find((d) => d.code === expect.code && d.severity === expect.severity && (expect.path === undefined || d.path === expect.path));
    assert.ok(found, `no ${expect.severity} ${expect.code}${expect.path ? ` at ${expect.path}` : ""}; got:\n${diagnostics.map(formatDiagnostic).join("\n")}`);
    assert.equal(found.file, path);
    if (expect.line !== undefined) assert.equal(found.line, expect.line, formatDiagnostic(found));
    if (expect.col !== undefined) assert.equal(found.column, expect.col, formatDiagnostic(found));
    if (expect.message) assert.match(found.message, expect.message);
    if (expect.hint) assert.match(found.hint, expect.hint);
    assert.ok(found.hint.length > 0, "every diagnostic says how to fix it");
    // A fixture is about one mistake: no unrelated errors.
    const otherErrors = diagnostics.filter((d) => d.severity === "error" && d !== found && d.code !== expect.code);
    assert.deepEqual(otherErrors.map(formatDiagnostic), []);
  });
}

test("at least 15 distinct kinds of mistakes are rejected as errors", () => {
  const codes = new Set(files.map((f) => parseExpectation(readFileSync(join(MISTAKES, f), "utf8").split("\n")[0]!)).filter((e) => e.severity === "error").map((e) => e.code));
  assert.ok(codes.size >= 15, `only ${codes.size}: ${[...codes].join(", ")}`);
});

test("the same validator runs on Kubernetes objects, without positions", () => {
  const r = validatePolicyObject({ apiVersion: "egret.dev/v1alpha1", kind: "EgressPolicy", metadata: { name: "x", namespace: "n", uid: "1", resourceVersion: "9" },
    spec: { podSelector: {}, rules: [{ action: "Allow", to: { domains: ["a.*.com"] } }] } });
  assert.equal(r.policy, undefined);
  assert.equal(r.diagnostics.length, 1);
  assert.equal(r.diagnostics[0]!.code, "domain-pattern");
  assert.equal(r.diagnostics[0]!.path, "spec.rules[0].to.domains[0]");
  assert.equal(r.diagnostics[0]!.line, undefined);
});

test("objects as the API server returns them validate: metadata extras, defaults, status", () => {
  const r = validatePolicyObject({
    apiVersion: "egret.dev/v1alpha1", kind: "ClusterEgressPolicy",
    metadata: { name: "g", uid: "u", resourceVersion: "5", generation: 2, managedFields: [{ manager: "kubectl" }], annotations: { a: "b" } },
    spec: { tier: "Admin", priority: 500, mode: "Enforce", resolutionGraceSeconds: 60, namespaceSelector: {}, rules: [{ action: "Allow", to: { external: true }, ports: [{ port: 443, protocol: "TCP" }] }] },
    status: { observedGeneration: 2, selectedPods: 3, conditions: [{ type: "Accepted", status: "True", lastTransitionTime: "not checked", reason: "Valid", message: "ok" }] },
  });
  assert.deepEqual(r.diagnostics, []);
  assert.equal(r.policy!.ref, "g");
});

test("a valid policy is normalized: defaults, lowercase patterns, refs", () => {
  const r = loadPolicyText(`apiVersion: egret.dev/v1alpha1
kind: ClusterEgressPolicy
metadata: {name: base}
spec:
  namespaceSelector: {}
  rules:
  - action: Allow
    to: {domains: ["API.Example.COM.", "**.CDN.example.net"]}
`);
  assert.deepEqual(r.diagnostics, []);
  const p = r.policies[0]!;
  assert.equal(p.ref, "base");
  assert.equal(p.tier, "Admin");
  assert.equal(p.priority, 500);
  assert.equal(p.mode, "Enforce");
  assert.equal(p.resolutionGraceSeconds, 60);
  assert.deepEqual(p.rules[0]!.domains!.map((d) => d.text), ["api.example.com", "**.cdn.example.net"]);
});

test("non-Egret documents in a folder are skipped with a warning; folders are read recursively", () => {
  const dir = mkdtempSync(join(tmpdir(), "egret-policy-"));
  try {
    writeFileSync(join(dir, "app.yaml"), "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n---\napiVersion: egret.dev/v1alpha1\nkind: EgressPolicy\nmetadata: {name: p, namespace: n}\nspec: {podSelector: {}, rules: []}\n");
    writeFileSync(join(dir, "notes.txt"), "not yaml: [");
    const r = loadPolicyFiles([dir]);
    assert.equal(r.policies.length, 1);
    assert.deepEqual(r.diagnostics.map((d) => `${d.severity} ${d.code}`), ["warning not-a-policy"]);
    const missing = loadPolicyFiles([join(dir, "nope.yaml")]);
    assert.equal(missing.diagnostics[0]!.code, "unreadable");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("egret validate: exit 1 on errors, 0 with warnings only, 2 without files", () => {
  const bad = spawnSync(process.execPath, [BIN, "validate", join(MISTAKES, "inner-wildcard.yaml")], { encoding: "utf8" });
  assert.equal(bad.status, 1, bad.stderr);
  assert.match(bad.stdout, /inner-wildcard\.yaml:14:11: error: spec\.rules\[0\]\.to\.domains\[1\]: "a\.\*\.com"/);
  assert.match(bad.stdout, /0 valid policies, 1 error, 0 warnings/);
  const warn = spawnSync(process.execPath, [BIN, "validate", join(MISTAKES, "shadowed-rule.yaml")], { encoding: "utf8" });
  assert.equal(warn.status, 0, warn.stdout);
  assert.match(warn.stdout, /warning: spec\.rules\[1\]: this rule can never match/);
  const json = spawnSync(process.execPath, [BIN, "validate", "--json", join(MISTAKES, "unknown-protocol.yaml")], { encoding: "utf8" });
  assert.equal(json.status, 1);
  const parsed = JSON.parse(json.stdout) as { errors: number; diagnostics: { code: string; line: number }[] };
  assert.equal(parsed.errors, 1);
  assert.equal(parsed.diagnostics[0]!.code, "unknown-protocol");
  const none = spawnSync(process.execPath, [BIN, "validate"], { encoding: "utf8" });
  assert.equal(none.status, 2);
  assert.match(none.stderr, /no files given/);
});

test("a List (kubectl get -o yaml) is validated item by item, with positions inside the list", () => {
  const r = loadPolicyText(`apiVersion: v1
kind: List
items:
- apiVersion: egret.dev/v1alpha1
  kind: EgressPolicy
  metadata: {name: ok, namespace: shop}
  spec: {podSelector: {}, rules: []}
- apiVersion: egret.dev/v1alpha1
  kind: EgressPolicy
  metadata: {name: bad, namespace: shop}
  spec:
    podSelector: {}
    rules:
    - action: Allow
      to: {domains: ["a.*.com"]}
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: unrelated}
`, "list.yaml");
  assert.deepEqual(r.policies.map((p) => p.ref), ["shop/ok"]);
  assert.equal(r.diagnostics.length, 1);
  const d = r.diagnostics[0]!;
  assert.equal(d.path, "items[1].spec.rules[0].to.domains[0]");
  assert.equal(d.line, 15);
  assert.equal(d.column, 22);
});

test("encryptedClientHello: Allow is compiled into the rule; without domains or on a Deny rule it is an error", () => {
  const base = (rule: string) => `apiVersion: egret.dev/v1alpha1
kind: EgressPolicy
metadata: {name: p, namespace: ns}
spec:
  podSelector: {}
  rules:
    - ${rule}
`;
  const ok = loadPolicyText(base("{action: Allow, to: {domains: [a.example.com]}, encryptedClientHello: Allow}"), "ok.yaml");
  assert.deepEqual(ok.diagnostics.map((d) => d.code), []);
  assert.equal(ok.policies[0]!.rules[0]!.encryptedClientHello, "Allow");
  const noDomains = loadPolicyText(base("{action: Allow, to: {cidrs: [{cidr: 198.18.0.0/15}]}, encryptedClientHello: Allow}"), "nd.yaml");
  assert.deepEqual(noDomains.diagnostics.map((d) => [d.code, d.path]), [["ech-without-domains", "spec.rules[0].encryptedClientHello"]]);
  const onDeny = loadPolicyText(base("{action: Deny, to: {domains: [a.example.com]}, encryptedClientHello: Allow}"), "deny.yaml");
  assert.deepEqual(onDeny.diagnostics.map((d) => d.code), ["ech-on-deny"]);
  const typo = loadPolicyText(base("{action: Allow, to: {domains: [a.example.com]}, encryptedClientHello: Yes}"), "typo.yaml");
  assert.equal(typo.diagnostics.filter((d) => d.severity === "error").length, 1);
  assert.match(formatDiagnostic(typo.diagnostics[0]!), /encryptedClientHello/);
});
