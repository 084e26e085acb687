// Bypass reports in control (control/src/control/bypass.ts) over the real gRPC edge: a filter's
// verdict reaches the agent of its pod's node as a covered connection (so the agent can tell the
// sidecar's own SYN from a bypass); bypass attempts become `egret.bypass` audit lines with the
// likely cause and the verdict the pod's policies would have given (the filter's engine), and
// metrics. Attacks: an agent speaking for another node's pod, and an agent without a credential.
import { test } from "node:test";
import assert from "node:assert/strict";
import * as grpc from "@grpc/grpc-js";
import { stringify } from "yaml";
import {
  ControlFixture, OTHER_NODE, TEST_AGENT_TOKEN, WatchClient, bearer, eventually, observation, observe,
} from "../support/control-harness.js";
import { createAgentClient, createFilterClient, ipToBytes, bytesToIp, type BypassAttempt, type EgressResponse, type Outgoing } from "../../src/proto/index.js";

const WEB = { name: "web", namespace: "shop", ips: ["198.18.1.40"], labels: { app: "web" }, sidecar: true };
const BARE = { name: "bare", namespace: "shop", ips: ["198.18.1.41"], labels: { app: "web" }, sidecar: false };
const EXCL = { name: "excl", namespace: "shop", ips: ["198.18.1.42"], labels: { app: "web" }, sidecar: true, annotations: { "traffic.sidecar.istio.io/excludeOutboundPorts": "5432,6379" } };
const FREE = { name: "free", namespace: "shop", ips: ["198.18.1.43"], labels: { app: "free" } };
const FAR = { name: "far", namespace: "shop", ips: ["198.18.1.44"], labels: { app: "web" }, node: OTHER_NODE };

const POLICY = stringify({
  apiVersion: "egret.dev/v1alpha1",
  kind: "EgressPolicy",
  metadata: { name: "web-egress", namespace: "shop" },
  spec: { podSelector: { matchLabels: { app: "web" } }, rules: [{ name: "api", action: "Allow", to: { domains: ["api.example.com"] } }] },
});

function attempt(pod: string, dst: string, port: number, kind: BypassAttempt["kind"], detail = ""): Outgoing<BypassAttempt> {
  return { pod_ip: ipToBytes(pod), source_port: 40000, destination_ip: ipToBytes(dst), destination_port: port, kind, observed_unix_ms: Date.now(), last_unix_ms: Date.now(), packets: 1, detail };
}

/** An agent's Egress stream: collects covered connections and answers. */
function egressStream(address: string, token = TEST_AGENT_TOKEN) {
  const client = createAgentClient(address);
  const call = client.Egress(token ? bearer(token) : new grpc.Metadata());
  const covered: string[] = [];
  const answers: EgressResponse[] = [];
  let error: grpc.ServiceError | undefined;
  call.on("data", (r: EgressResponse) => {
    for (const c of r.covered_connections) covered.push(`${bytesToIp(c.pod_ip)}>${bytesToIp(c.destination_ip)}:${c.destination_port}`);
    if (r.covered_connections.length === 0) answers.push(r);
  });
  call.on("error", (e: grpc.ServiceError) => (error = e));
  call.write({ agent_id: "test-agent" });
  return { call, covered, answers, error: () => error, close: () => (call.cancel(), client.close()) };
}

async function report(f: ControlFixture, pod: { ips: string[] }, dst: string, port: number) {
  const client = createFilterClient(await f.filterAddress(pod));
  try {
    await new Promise<void>((resolve, reject) => {
      const call = client.Report(new grpc.Metadata(), {}, (err) => (err ? reject(err) : resolve()));
      call.write({ events: [{ source_ip: ipToBytes(pod.ips[0]), source_port: 51000, destination_ip: ipToBytes(dst), destination_port: port, verdict: "VERDICT_ALLOW", reason: "REASON_ALLOWED", policy: "shop/web-egress", rule: "api" }] });
      call.end();
    });
  } finally {
    client.close();
  }
}

test("bypass: verdicts reach the pod's node as covered connections; attempts become egret.bypass lines with cause and would-be verdict", async (t) => {
  const f = await new ControlFixture([WEB, BARE, EXCL, FREE, FAR], { "web.yaml": POLICY }).start();
  t.after(async () => (await f.stop(), f.cleanup()));
  const agent = egressStream(f.address);
  t.after(() => agent.close());
  // web and excl have filters connected: enforced.
  const watches = [new WatchClient(await f.filterAddress(WEB), WEB), new WatchClient(await f.filterAddress(EXCL), EXCL)];
  t.after(() => watches.forEach((w) => w.close()));
  await eventually(() => watches.every((w) => w.responses.length > 0), "snapshots");
  await observe(f.address, [observation("198.18.1.40", "api.example.com", ["203.0.113.10"])]);
  await eventually(() => f.service.coverage.podCoverage("shop", "web")?.state === "enforced" && f.service.coverage.podCoverage("shop", "excl")?.state === "enforced", "web and excl enforced");

  await report(f, WEB, "203.0.113.10", 443);
  await eventually(() => agent.covered.includes("198.18.1.40>203.0.113.10:443"), "the covered connection at the agent");
  // A Lookup (the filter holds a connection; its verdict may come seconds later) covers any port.
  const lookupClient = createFilterClient(await f.filterAddress(WEB));
  await new Promise<void>((resolve, reject) => lookupClient.Lookup({ source_ip: ipToBytes("198.18.1.40"), destination_ip: ipToBytes("203.0.113.77"), wait_ms: 1, pod_namespace: "shop", pod_name: "web" }, new grpc.Metadata(), {}, (err) => (err ? reject(err) : resolve())));
  lookupClient.close();
  await eventually(() => agent.covered.includes("198.18.1.40>203.0.113.77:0"), "the Lookup as a covered destination (any port)");

  agent.call.write({
    agent_id: "test-agent",
    attempts: [
      attempt("198.18.1.40", "203.0.113.10", 8443, "EGRESS_KIND_TCP_SYN"),
      attempt("198.18.1.40", "198.51.100.7", 443, "EGRESS_KIND_UDP_QUIC", "quic/1"),
      attempt("198.18.1.40", "198.51.100.53", 53, "EGRESS_KIND_UDP_DNS", "exfil.example.net"),
      attempt("198.18.1.41", "203.0.113.10", 443, "EGRESS_KIND_TCP_SYN"),
      attempt("198.18.1.42", "203.0.113.20", 5432, "EGRESS_KIND_TCP_SYN"),
      attempt("198.18.1.43", "203.0.113.10", 443, "EGRESS_KIND_TCP_SYN"),
    ],
  });
  await eventually(() => agent.answers.length >= 1, "the answer");
  assert.deepEqual({ accepted: agent.answers[0].accepted_attempts, rejected: agent.answers[0].rejected_attempts }, { accepted: 6, rejected: 0 });
  const lines = f.audit.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.kind === "egret.bypass");
  const by = (dst: string) => lines.find((l) => l.dst === dst)!;
  assert.equal(lines.length, 5, "the unselected pod's egress is not a bypass");
  assert.deepEqual(
    [by("203.0.113.10:8443").cause, by("203.0.113.10:8443").protocol, by("203.0.113.10:8443").verdict, by("203.0.113.10:8443").policy, by("203.0.113.10:8443").rule],
    ["sidecar-skipped", "tcp", "allow", "shop/web-egress", "api"],
    "a SYN of an enforced pod no verdict covered; through the filter it would have been allowed (the pod resolved api.example.com)",
  );
  assert.deepEqual(by("203.0.113.10:8443").names, ["api.example.com"]);
  assert.deepEqual([by("198.51.100.7:443").cause, by("198.51.100.7:443").protocol, by("198.51.100.7:443").detail, by("198.51.100.7:443").verdict], ["udp-not-captured", "quic", "quic/1", "deny"]);
  assert.deepEqual([by("198.51.100.53:53").protocol, by("198.51.100.53:53").detail], ["dns", "exfil.example.net"]);
  assert.equal(lines.find((l) => l.pod === "shop/bare")!.cause, "no-sidecar");
  assert.equal(by("203.0.113.20:5432").cause, "excluded-port");
  const metrics = await f.service.metrics.registry.metrics();
  assert.match(metrics, /egret_control_bypass_events_total\{protocol="tcp",cause="sidecar-skipped"\} 1/);
  assert.match(metrics, /egret_control_bypass_events_total\{protocol="quic",cause="udp-not-captured"\} 1/);
  assert.match(metrics, /egret_control_bypass_attempts_total\{outcome="not_selected"\} 1/);
});

test("bypass attack: an agent cannot report (or hear about) another node's pods, and an agent without a credential is refused", async (t) => {
  const f = await new ControlFixture([WEB, FAR], { "web.yaml": POLICY }).start();
  t.after(async () => (await f.stop(), f.cleanup()));
  const agent = egressStream(f.address);
  t.after(() => agent.close());
  agent.call.write({ agent_id: "test-agent", attempts: [attempt("198.18.1.44", "203.0.113.10", 443, "EGRESS_KIND_TCP_SYN")] });
  await eventually(() => agent.answers.length >= 1, "the answer");
  assert.deepEqual({ accepted: agent.answers[0].accepted_attempts, rejected: agent.answers[0].rejected_attempts }, { accepted: 0, rejected: 1 });
  assert.equal(f.audit.filter((l) => l.includes("egret.bypass")).length, 0);
  // A verdict of the far pod's filter is not sent to this node's agent (twin: web's is).
  await report(f, FAR, "203.0.113.10", 443);
  await report(f, WEB, "203.0.113.10", 443);
  await eventually(() => agent.covered.length > 0, "web's covered connection");
  assert.deepEqual(agent.covered, ["198.18.1.40>203.0.113.10:443"]);
  const anonymous = egressStream(f.address, "");
  t.after(() => anonymous.close());
  await eventually(() => anonymous.error(), "the anonymous stream refused");
  assert.equal(anonymous.error()!.code, grpc.status.UNAUTHENTICATED);
});

test("bypass: a filter's opened connections reach the pod's node as covered connections; entries for another pod's source are ignored", async (t) => {
  const f = await new ControlFixture([WEB, BARE], { "web.yaml": POLICY }).start();
  t.after(async () => (await f.stop(), f.cleanup()));
  const agent = egressStream(f.address);
  t.after(() => agent.close());
  await eventually(async () => (await f.service.metrics.egressStreams.get()).values[0]?.value === 1, "the agent's Egress stream");
  const client = createFilterClient(await f.filterAddress(WEB));
  t.after(() => client.close());
  const opened = (src: string, dst: string, port: number) => ({ source_ip: ipToBytes(src), destination_ip: ipToBytes(dst), destination_port: port, time_unix_ms: Date.now() });
  await new Promise<void>((resolve, reject) => {
    const call = client.Report(new grpc.Metadata(), {}, (err) => (err ? reject(err) : resolve()));
    // No verdict in this batch: a silent client's connection went upstream, and a kept-alive one carried a new request.
    call.write({ events: [], opened_connections: [opened("198.18.1.40", "203.0.113.10", 80), opened("198.18.1.40", "203.0.113.11", 443), opened("198.18.1.41", "203.0.113.12", 443)] });
    call.end();
  });
  await eventually(() => agent.covered.includes("198.18.1.40>203.0.113.10:80") && agent.covered.includes("198.18.1.40>203.0.113.11:443"), "the opened connections at the agent");
  assert.ok(!agent.covered.some((c) => c.startsWith("198.18.1.41>")), "web's stream cannot cover bare's SYNs");
  const metrics = await f.service.metrics.registry.metrics();
  assert.match(metrics, /egret_control_opened_connections_total\{outcome="covered"\} 2/);
  assert.match(metrics, /egret_control_opened_connections_total\{outcome="ignored"\} 1/);
  assert.equal(f.audit.filter((l) => (JSON.parse(l) as { kind: string }).kind === "egret.verdict").length, 0, "opened entries are not verdicts");
});

test("bypass: a verdict for a ServiceEntry VIP also covers the endpoints Envoy resolved for the routed host, from the pod's own DNS", async (t) => {
  const f = await new ControlFixture([WEB], { "web.yaml": POLICY }).start();
  t.after(async () => (await f.stop(), f.cleanup()));
  const agent = egressStream(f.address);
  t.after(() => agent.close());
  const watch = new WatchClient(await f.filterAddress(WEB), WEB);
  t.after(() => watch.close());
  await eventually(() => watch.responses.length > 0, "snapshot");
  // Envoy's own queries for the ServiceEntry host leave from the pod's address: the pod's evidence.
  await observe(f.address, [observation("198.18.1.40", "api.example.com", ["203.0.113.10", "203.0.113.11"]), observation("198.18.1.40", "other.example.com", ["203.0.113.12"])]);
  const client = createFilterClient(await f.filterAddress(WEB));
  t.after(() => client.close());
  const send = (cluster: string, vip: string) => new Promise<void>((resolve, reject) => {
    const call = client.Report(new grpc.Metadata(), {}, (err) => (err ? reject(err) : resolve()));
    call.write({ events: [{ source_ip: ipToBytes("198.18.1.40"), source_port: 51000, destination_ip: ipToBytes(vip), destination_port: 443, verdict: "VERDICT_ALLOW", reason: "REASON_ALLOWED", policy: "shop/web-egress", rule: "api", evidence: "NAME_SOURCE_MESH_CONFIG", cluster }] });
    call.end();
  });
  await send("outbound|443||api.example.com", "198.19.250.10");
  await eventually(() => ["198.18.1.40>198.19.250.10:443", "198.18.1.40>203.0.113.10:0", "198.18.1.40>203.0.113.11:0"].every((c) => agent.covered.includes(c)), `VIP and endpoints covered (got ${agent.covered.join(", ")})`);
  assert.ok(!agent.covered.some((c) => c.includes("203.0.113.12")), "another host's addresses stay uncovered");
  // Passthrough (no ServiceEntry cluster): only the destination itself.
  const before = agent.covered.length;
  await send("PassthroughCluster", "198.19.250.11");
  await eventually(() => agent.covered.includes("198.18.1.40>198.19.250.11:443"), "passthrough destination covered");
  assert.equal(agent.covered.length, before + 1);
});
