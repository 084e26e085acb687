// The project's own recorded corpus (corpus/protocols, scripts/record-corpus): real Debian clients
// and servers captured in the mesh. Present in every clone, so these tests never skip. The truth is
// what each client did (truth.json); detection, the DNS observer and simulate must agree with it.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { detectCapture } from "../../src/detect/capture-detect.js";
import { DetectorEngine } from "../../src/detect/wasm-detector.js";
import { analyzeCapture } from "../../src/dns/offline.js";
import type { DnsObservation } from "../../src/dns/observer.js";
import { RRType } from "../../src/dns/wire.js";
import { simulateCapture } from "../../src/simulate/replay.js";
import { silentLogger } from "../../src/common/log.js";
import type { CorpusTruth } from "../../src/corpus/record.js";

const DIR = fileURLToPath(new URL("../../../../corpus/protocols/", import.meta.url));
const capture = readFileSync(join(DIR, "capture.pcap"));
const truth = JSON.parse(readFileSync(join(DIR, "truth.json"), "utf8")) as CorpusTruth;

/** Every protocol the detector labels that Debian ships a client and a server for (corpus/README.md). */
const RECORDED_PROTOCOLS = ["amqp", "http", "ldap", "memcached", "mqtt", "mysql", "postgresql", "redis", "smtp", "ssh", "tls"];

test("recorded corpus: every client's connection gets the protocol its program speaks (and its SNI)", () => {
  assert.deepEqual([...new Set(truth.connects.map((c) => c.protocol))].sort(), RECORDED_PROTOCOLS, "the corpus covers its protocols");
  const result = detectCapture(capture, new DetectorEngine());
  assert.equal(result.captureErrors, 0, result.captureLastError);
  for (const c of truth.connects) {
    const found = result.connections.filter((d) => d.server === c.server && d.client.startsWith(`${truth.podIp}:`));
    assert.equal(found.length, 1, `${c.command}: one connection to ${c.server} in the capture`);
    const d = found[0]!;
    assert.equal(d.protocol, c.protocol, `${c.command}: detected ${d.protocol}`);
    if (c.sni) assert.equal(d.claims.sni, c.sni, `${c.command}: SNI`);
  }
});

test("recorded corpus: the DNS observer sees each dig answer — UDP, TCP, CNAME chain, AAAA, NXDOMAIN, truncation", () => {
  const seen: DnsObservation[] = [];
  const r = analyzeCapture(capture, { trustedResolvers: [truth.resolver], podCidrs: [`${truth.podIp}/32`], onObservation: (o) => seen.push(o) });
  assert.equal(r.captureErrors, 0, r.captureError);
  const transports = new Set<string>();
  for (const want of truth.resolves) {
    const qtype = want.qtype === "AAAA" ? RRType.AAAA : RRType.A;
    const obs = seen.filter((o) => o.qname === want.name && o.qtype === qtype && o.podIp === truth.podIp);
    assert.ok(obs.length > 0, `${want.command}: an observation`);
    // The answer dig printed is the one that completed the lookup (over TCP after a truncation).
    const final = want.transport === "udp" ? obs.find((o) => o.transport === "udp") : obs.find((o) => o.transport === "tcp");
    assert.ok(final, `${want.command}: observed over ${want.transport}`);
    transports.add(final.transport);
    if (want.rcode === "NXDOMAIN") {
      assert.equal(final.rcode, 3);
      assert.equal(final.negative, true);
      continue;
    }
    assert.equal(final.rcode, 0);
    const addresses = final.answers.filter((a) => a.typeCode === qtype).map((a) => String(a.data)).sort();
    assert.deepEqual(addresses, [...want.addresses].sort(), `${want.command}: addresses`);
    assert.deepEqual(final.cnameChain, want.cnames.map((c) => c.split(">")[1]), `${want.command}: CNAME chain`);
    if (want.transport === "udp-truncated+tcp") {
      assert.ok(obs.some((o) => o.transport === "udp" && o.truncated), `${want.command}: the truncated UDP answer is seen as truncated`);
    }
  }
  assert.deepEqual([...transports].sort(), ["tcp", "udp"]);
  assert.ok(truth.resolves.some((r) => r.transport === "udp-truncated+tcp"), "the corpus holds a truncated answer");
});

/** The pods file (one client pod) and one EgressPolicy selecting it with these rule lines. */
function writePolicyFiles(work: string, rules: string[]): void {
  writeFileSync(join(work, "pods.yaml"), `pods:\n  - {name: client, namespace: rec, ip: ${truth.podIp}, labels: {app: client}}\n`);
  writeFileSync(join(work, "policy.yaml"), [
    "apiVersion: egret.dev/v1alpha1", "kind: EgressPolicy", "metadata: {name: deps, namespace: rec}", "spec:",
    "  podSelector: {matchLabels: {app: client}}", "  rules:", ...rules, "",
  ].join("\n"));
}

test("recorded corpus: simulate judges each connection by the names this pod resolved and the detected protocol", async () => {
  const work = mkdtempSync(join(tmpdir(), "egret-corpus-sim-"));
  try {
    writePolicyFiles(work, [
      "    - {name: pg, action: Allow, to: {domains: [db.example.test]}, protocols: [postgresql]}",
      // The name is right but the protocol is not: mysql.example.test is allowed only as PostgreSQL.
      "    - {name: wrong-protocol, action: Allow, to: {domains: [mysql.example.test]}, protocols: [postgresql]}",
      "    - {name: cache, action: Allow, to: {domains: [cache.example.test]}, protocols: [redis]}",
      "    - {name: web, action: Allow, to: {domains: [www.example.test, api.example.test]}, protocols: [http, tls]}",
    ]);
    const results = await simulateCapture({ policyPaths: [join(work, "policy.yaml")], podsFile: join(work, "pods.yaml"), capture, trustedResolvers: [truth.resolver], log: silentLogger() });
    const verdict = (server: string) => {
      const r = results.filter((x) => x.server === server && x.pod === "rec/client");
      assert.equal(r.length, 1, `one connection to ${server}`);
      return { verdict: r[0]!.verdict, reason: r[0]!.reason, rule: r[0]!.rule };
    };
    assert.deepEqual(verdict("198.19.1.10:5432"), { verdict: "allow", reason: "allowed", rule: "pg" });
    assert.equal(verdict("198.19.1.11:3306").verdict, "deny", "mysql.example.test spoken as MySQL, allowed only as PostgreSQL");
    assert.deepEqual(verdict("198.19.1.12:6379"), { verdict: "allow", reason: "allowed", rule: "cache" });
    assert.deepEqual(verdict("198.19.2.10:80"), { verdict: "allow", reason: "allowed", rule: "web" });
    assert.deepEqual(verdict("198.19.2.10:443"), { verdict: "allow", reason: "allowed", rule: "web" });
    assert.deepEqual(verdict("198.19.2.20:443"), { verdict: "deny", reason: "default-deny", rule: null }, "storage.googleapis.test is in no rule");
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});

test("recorded corpus: simulate binds SSH, SMTP, LDAP, MQTT, AMQP and memcached to the names this pod resolved", async () => {
  const work = mkdtempSync(join(tmpdir(), "egret-corpus-sim-"));
  try {
    writePolicyFiles(work, [
      "    - {name: ssh, action: Allow, to: {domains: [ssh.example.test]}, protocols: [ssh]}",
      // Plain SMTP and SMTP with STARTTLS, plain LDAP and LDAP with StartTLS: the outer protocol.
      "    - {name: mail, action: Allow, to: {domains: [mail.example.test, submission.example.test]}, protocols: [smtp]}",
      "    - {name: ldap, action: Allow, to: {domains: [ldap.example.test, directory.example.test]}, protocols: [ldap]}",
      "    - {name: mqtt, action: Allow, to: {domains: [mqtt.example.test]}, protocols: [mqtt]}",
      // The right name, the wrong protocol: telemetry.example.test is allowed only as AMQP.
      "    - {name: telemetry-amqp, action: Allow, to: {domains: [telemetry.example.test]}, protocols: [amqp]}",
      "    - {name: amqp, action: Allow, to: {domains: [amqp.example.test]}, protocols: [amqp]}",
      "    - {name: cache, action: Allow, to: {domains: [\"*.example.test\"]}, protocols: [memcached]}",
    ]);
    const results = await simulateCapture({ policyPaths: [join(work, "policy.yaml")], podsFile: join(work, "pods.yaml"), capture, trustedResolvers: [truth.resolver], log: silentLogger() });
    const verdict = (server: string) => {
      const r = results.filter((x) => x.server === server && x.pod === "rec/client");
      assert.equal(r.length, 1, `one connection to ${server}`);
      return { verdict: r[0]!.verdict, reason: r[0]!.reason, rule: r[0]!.rule, protocol: r[0]!.protocol };
    };
    const server = (to: string) => {
      const c = truth.connects.filter((x) => x.command.includes(to));
      assert.equal(c.length, 1, `one recorded client of ${to}`);
      return c[0]!.server;
    };
    const allowed = (to: string, rule: string, protocol: string) => assert.deepEqual(verdict(server(to)), { verdict: "allow", reason: "allowed", rule, protocol }, to);
    allowed("ssh.example.test", "ssh", "ssh");
    allowed("mail.example.test", "mail", "smtp");
    allowed("submission.example.test", "mail", "smtp");
    allowed("ldap.example.test", "ldap", "ldap");
    allowed("directory.example.test", "ldap", "ldap");
    allowed("mqtt.example.test", "mqtt", "mqtt");
    allowed("amqp.example.test", "amqp", "amqp");
    allowed("memcached.example.test", "cache", "memcached");
    allowed("sessions.example.test", "cache", "memcached");
    assert.deepEqual(verdict(server("telemetry.example.test")), { verdict: "deny", reason: "protocol-mismatch", rule: "telemetry-amqp", protocol: "mqtt" });
    // db.example.test matches *.example.test, but only as memcached: PostgreSQL there is denied.
    assert.deepEqual(verdict("198.19.1.10:5432"), { verdict: "deny", reason: "protocol-mismatch", rule: "cache", protocol: "postgresql" });
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});
