// Reading verdicts back from control's audit log, and finding the destination a scenario step
// reaches from the world's records (CNAMEs, wildcards, proxies).
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync, appendFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { readAudit, findVerdict, auditMismatches, waitForVerdict } from "../../src/mesh/audit.js";
import { worldAddress, expectedDestination } from "../../src/mesh/clients.js";
import { parseWorld } from "../../src/mesh/world.js";
import { parseScenario, type ConnectStep } from "../../src/mesh/scenario.js";

// The shape control writes (control/src/control/reports.ts AuditRecord).
function auditLine(o: Partial<Record<string, unknown>>): string {
  return JSON.stringify({
    kind: "egret.verdict", time: "2026-01-01T00:00:00.000Z", pod: "shop/app", src: "198.18.1.10:40000", dst: "198.19.1.10:5432",
    names: ["db.example.test"], protocol: "postgresql", sni: "", host: "", verdict: "allow", reason: "allowed",
    policy: "shop/pg", rule: "postgres", mode: "enforce", matched_name: "db.example.test", instance: "i", detail: "", ...o,
  }) + "\n";
}

function withFile(fn: (file: string) => Promise<void> | void): Promise<void> | void {
  const dir = mkdtempSync(join(tmpdir(), "egret-mesh-audit-"));
  const file = join(dir, "audit.log");
  const done = () => rmSync(dir, { recursive: true, force: true });
  try {
    const r = fn(file);
    if (r instanceof Promise) return r.finally(done);
    done();
  } catch (e) { done(); throw e; }
}

test("audit lines are read from an offset; log lines and a partial last line are skipped", () => withFile((file) => {
  writeFileSync(file, auditLine({ dst: "198.19.9.9:1" }));
  const offset = Buffer.byteLength(auditLine({ dst: "198.19.9.9:1" }));
  appendFileSync(file, '{"level":30,"msg":"not a verdict"}\n' + auditLine({}) + '{"kind":"egret.verdict","verd');
  const entries = readAudit(file, offset);
  assert.equal(entries.length, 1);
  const e = entries[0]!;
  assert.deepEqual([e.pod, e.sourceIp, e.destinationIp, e.destinationPort, e.verdict, e.reason, e.policy, e.rule, e.protocol],
    ["shop/app", "198.18.1.10", "198.19.1.10", 5432, "allow", "allowed", "shop/pg", "postgres", "postgresql"]);
  assert.equal(e.time, Date.parse("2026-01-01T00:00:00.000Z"));
}));

test("a verdict is matched by pod (or its address) and destination, and compared field by field", () => {
  const entries = readAuditFromLines([
    auditLine({ pod: "shop/other", src: "198.18.1.11:1" }),
    auditLine({ dst: "198.19.1.10:6379", verdict: "deny", reason: "default-deny", policy: "", rule: "" }),
    auditLine({ pod: "", verdict: "deny", reason: "protocol-mismatch" }),
  ]);
  const q = { podKey: "shop/app", podIp: "198.18.1.10", destinationIp: "198.19.1.10", destinationPort: 5432 };
  const hit = findVerdict(entries, q)!;
  assert.equal(hit.reason, "protocol-mismatch", "matched through the source address when pod is empty");
  assert.equal(findVerdict(entries, { ...q, destinationPort: 6379 })?.reason, "default-deny");
  assert.equal(findVerdict(entries, { ...q, destinationIp: "198.19.2.10" }), undefined);
  assert.deepEqual(auditMismatches(hit, { verdict: "deny", reason: "protocol-mismatch" }), []);
  assert.deepEqual(auditMismatches(hit, { verdict: "allow", rule: 0 }), ["verdict: want allow, got deny", "rule: want 0, got postgres"]);
});

function readAuditFromLines(lines: string[]) {
  const dir = mkdtempSync(join(tmpdir(), "egret-mesh-audit-"));
  try {
    writeFileSync(join(dir, "a.log"), lines.join(""));
    return readAudit(join(dir, "a.log"));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test("waitForVerdict returns as soon as the line lands, and gives up at its deadline", () => withFile(async (file) => {
  writeFileSync(file, "");
  const q = { podKey: "shop/app", podIp: "198.18.1.10", destinationIp: "198.19.1.10", destinationPort: 5432 };
  setTimeout(() => appendFileSync(file, auditLine({})), 150);
  const found = await waitForVerdict(file, 0, q, 20_000);
  assert.equal(found.entry?.rule, "postgres");
  const none = await waitForVerdict(file, 0, { ...q, destinationPort: 1 }, 300);
  assert.equal(none.entry, undefined);
  assert.equal(none.seen, 1);
}));

test("destinations follow the world's CNAMEs and single-label wildcards; proxies win", () => {
  const world = parseWorld({
    resolver: "198.19.0.53", services: [],
    records: ["a.cdn.test 60 A 198.19.2.40", "assets.test 60 CNAME a.cdn.test", "*.apis.test 60 A 198.19.2.20", "proxy.test 60 A 198.19.3.10"],
  }, "w.yaml");
  assert.equal(worldAddress(world, "assets.test"), "198.19.2.40");
  assert.equal(worldAddress(world, "storage.apis.test"), "198.19.2.20");
  assert.equal(worldAddress(world, "a.b.apis.test"), undefined, "a wildcard covers exactly one label");
  assert.equal(worldAddress(world, "nope.test"), undefined);
  const steps = parseScenario(`name: d
pods: [{name: p}]
steps:
  - {connect: {client: curl, to: assets.test}, pod: default/p, expect: {outcome: connected}}
  - {connect: {client: curl, to: assets.test, scheme: http}, pod: default/p, expect: {outcome: connected}}
  - {connect: {client: curl, to: assets.test, proxy: "proxy.test:3128"}, pod: default/p, expect: {outcome: connected}}
  - {connect: {client: tcp, to: 198.19.9.9, port: 7}, pod: default/p, expect: {outcome: refused}}
`, "d.yaml").steps as ConnectStep[];
  assert.deepEqual(steps.map((s) => expectedDestination(world, s)), [
    { ip: "198.19.2.40", port: 443 }, { ip: "198.19.2.40", port: 80 }, { ip: "198.19.3.10", port: 3128 }, { ip: "198.19.9.9", port: 7 },
  ]);
});

test("a late verdict of an earlier connection to the same destination does not hide this connection's", () => withFile(async (file) => {
  // What a filter resends after control comes back: a deny decided during the outage, then this
  // connection's allow.
  writeFileSync(file, auditLine({ verdict: "deny", reason: "control-unavailable", policy: "", rule: "" }) + auditLine({}));
  const q = { podKey: "shop/app", podIp: "198.18.1.10", destinationIp: "198.19.1.10", destinationPort: 5432 };
  const want = { verdict: "allow", rule: "postgres" } as Parameters<typeof auditMismatches>[1];
  const accepted = await waitForVerdict(file, 0, q, 2000, (e) => auditMismatches(e, want).length === 0);
  assert.equal(accepted.entry?.verdict, "allow");
  // Without a matching entry, the first one found comes back for the error message.
  writeFileSync(file, auditLine({ verdict: "deny", reason: "control-unavailable", policy: "", rule: "" }));
  const missing = await waitForVerdict(file, 0, q, 300, (e) => auditMismatches(e, want).length === 0);
  assert.equal(missing.entry?.verdict, "deny");
}));
