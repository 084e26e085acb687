// The scenario format's bypass additions (control/src/mesh/scenario.ts): pods without a sidecar
// or with Istio's exclusion annotations, clients as the proxy uid, udp steps and bypass
// expectations — loaded with defaults, and mistakes named with their path.
import { test } from "node:test";
import assert from "node:assert/strict";
import { parseScenario, ScenarioError } from "../../src/mesh/scenario.js";
import { udpPayload } from "../../src/mesh/clients.js";
import { dnsQuestion, quicLongHeaderVersion } from "../../src/agent/egress-classify.js";

const BASE = `name: b
pods:
  - {name: old, namespace: legacy, labels: {app: web}, sidecar: false}
  - {name: app, namespace: shop, annotations: {traffic.sidecar.istio.io/excludeOutboundPorts: "5432"}}
steps:
  - connect: {client: tcp, to: 198.19.2.10, port: 80}
    pod: shop/app
    as: proxy-uid
    expect: {outcome: connected, bypass: {cause: sidecar-skipped, protocol: tcp}}
  - udp: {to: api.example.test, port: 443, payload: quic}
    pod: shop/app
    expect: {bypass: none}
  - udp: {to: 198.19.0.99, port: 53, payload: dns, name: exfil.example.net}
    pod: legacy/old
    expect: {bypass: {cause: no-sidecar, within: 1500ms}}
`;

test("bypass scenarios: sidecar, annotations, as, udp steps and bypass expectations load with defaults", () => {
  const s = parseScenario(BASE, "b.yaml");
  assert.equal(s.pods[0]!.sidecar, false);
  assert.deepEqual(s.pods[1]!.annotations, { "traffic.sidecar.istio.io/excludeOutboundPorts": "5432" });
  const c = s.steps[0]!;
  assert.ok(c.kind === "connect" && c.as === "proxy-uid");
  assert.deepEqual(c.kind === "connect" && c.expect.bypass, { cause: "sidecar-skipped", protocol: "tcp", within: 2000 });
  assert.ok(s.steps[1]!.kind === "udp" && s.steps[1]!.expect.bypass === "none");
  const dns = s.steps[2]!;
  assert.ok(dns.kind === "udp" && dns.expect.bypass !== "none" && dns.expect.bypass?.within === 1500);
  // The datagrams the mesh sends are what the agent recognises.
  assert.equal(dns.kind === "udp" && dnsQuestion(udpPayload(dns)), "exfil.example.net");
  assert.equal(s.steps[1]!.kind === "udp" && quicLongHeaderVersion(udpPayload(s.steps[1]!)), 1);
});

test("bypass scenarios: mistakes are named with their path", () => {
  const problems = (text: string) => {
    try {
      parseScenario(text, "b.yaml");
    } catch (e) {
      assert.ok(e instanceof ScenarioError);
      return e.problems.map((p) => `${p.path}: ${p.message}`).join("\n");
    }
    return "";
  };
  assert.match(problems(BASE.replace("sidecar: false", 'sidecar: "no"')), /pods\[0\]\.sidecar: must be true or false/);
  assert.match(problems(BASE.replace("as: proxy-uid", "as: root")), /steps\[0\]\.as: must be proxy-uid/);
  assert.match(problems(BASE.replace("cause: sidecar-skipped", "cause: sneaky")), /steps\[0\]\.expect\.bypass\.cause: must be one of no-sidecar/);
  assert.match(problems(BASE.replace("payload: quic", "payload: http3")), /steps\[1\]\.udp\.payload: must be one of quic, dns, raw/);
  assert.match(problems(BASE.replace("port: 443, payload: quic", "port: 443, payload: quic, name: x.test")), /steps\[1\]\.udp\.name: is the DNS question name, for payload dns only/);
  assert.match(problems(BASE.replace("port: 80}", "port: 80, silence: 30s}")), /steps\[0\]\.connect\.silence: must be a duration up to 10s/);
  assert.match(problems(BASE.replace("port: 80}", "port: 80, silence: soon}")), /steps\[0\]\.connect\.silence: must be a duration/);
});

test("bypass scenarios: a tcp client can stay silent after connecting (the silent-client twin)", () => {
  const s = parseScenario(BASE.replace("port: 80}", 'port: 80, silence: 3s, send: "GET / HTTP/1.0\\r\\n\\r\\n"}'), "b.yaml");
  const c = s.steps[0]!;
  assert.ok(c.kind === "connect" && c.silenceMs === 3000 && c.send === "GET / HTTP/1.0\r\n\r\n");
});
