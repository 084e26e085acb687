// Attacks on the control API (issue #13, docs/security.md), each against the real service over
// real gRPC sockets: evidence without a credential, with another node's credential, for another
// node's pod; a filter's calls made as another pod; reports in another pod's name. Every attack
// fails with the contracted status (UNAUTHENTICATED / PERMISSION_DENIED) or is counted in
// `rejected_observations`, and nothing it carried reaches the store, a filter or the audit log.
import { test } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import * as grpc from "@grpc/grpc-js";
import { InsecureAgents } from "../../src/auth/agent-auth.js";
import { parseAgentTokens } from "../../src/auth/agent-tokens.js";
import { peerIp } from "../../src/auth/peer.js";
import { createFilterClient, ipToBytes, lookup, type ReportResponse, type VerdictEvent, type Outgoing } from "../../src/proto/index.js";
import {
  ControlFixture,
  OTHER_AGENT_TOKEN,
  OTHER_NODE,
  TEST_AGENT_TOKEN,
  WatchClient,
  egressPolicy,
  eventually,
  observation,
  observe,
} from "../support/control-harness.js";

const WEB = { name: "web-1", namespace: "shop", ips: ["198.18.1.10"], labels: { app: "web" } };
const DB = { name: "db-1", namespace: "shop", ips: ["198.18.1.11"], labels: { app: "db" } };
/** A pod on the other node. */
const REMOTE = { name: "remote-1", namespace: "shop", ips: ["198.18.2.10"], labels: { app: "web" }, node: OTHER_NODE };
const POLICY = egressPolicy("web-egress", "shop", { app: "web" }, ["api.partner.test"]);

async function fixture(t: import("node:test").TestContext, extra = {}) {
  const f = new ControlFixture([WEB, DB, REMOTE], { "web.yaml": POLICY }, {}, extra);
  t.after(async () => {
    await f.stop();
    f.cleanup();
  });
  return f.start();
}

const metricsOf = (f: ControlFixture) => f.service.metrics.registry.metrics();

function rejectsWith(code: grpc.status, egret?: string) {
  return (err: grpc.ServiceError) => {
    assert.equal(err.code, code, `status ${err.code} (${err.details})`);
    if (egret) assert.deepEqual(err.metadata.get("egret-error-code"), [egret]);
    return true;
  };
}

// ---- agent → control --------------------------------------------------------------------------

test("Observe without a token, with a malformed one or an unknown one ends UNAUTHENTICATED and stores nothing", async (t) => {
  const f = await fixture(t);
  const forged = [observation("198.18.1.10", "api.partner.test", ["6.6.6.6"])];
  for (const token of ["", "not-a-known-token"]) {
    await assert.rejects(observe(f.address, forged, 1, false, token), rejectsWith(grpc.status.UNAUTHENTICATED, "EGRET_AGENT_UNAUTHENTICATED"));
  }
  // "Basic …" is not a bearer token.
  await assert.rejects(
    (async () => {
      const md = new grpc.Metadata();
      md.set("authorization", `Basic ${Buffer.from("a:b").toString("base64")}`);
      const { createAgentClient } = await import("../../src/proto/index.js");
      const client = createAgentClient(f.address);
      try {
        const call = client.Observe(md);
        await new Promise((resolve, reject) => {
          call.on("data", resolve);
          call.on("error", reject);
          call.write({ agent_id: "attacker", sequence: 1, observations: forged });
        });
      } finally {
        client.close();
      }
    })(),
    rejectsWith(grpc.status.UNAUTHENTICATED),
  );
  assert.equal(f.service.store.entriesOf("198.18.1.10").length, 0);
  const m = await metricsOf(f);
  assert.match(m, /egret_control_agent_auth_total\{outcome="missing"\} 1/);
  assert.match(m, /egret_control_agent_auth_total\{outcome="invalid"\} 1/);
  assert.match(m, /egret_control_agent_auth_total\{outcome="malformed"\} 1/);
});

test("a control without agent credentials refuses every Observe; --insecure-agents accepts any", async (t) => {
  const closed = await fixture(t, { agentAuth: undefined });
  // ControlFixture passes a token file; undefined here means the service default (none configured).
  await assert.rejects(observe(closed.address, [observation("198.18.1.10", "a.example.com", ["203.0.113.1"])]), rejectsWith(grpc.status.UNAUTHENTICATED));
  const open = await fixture(t, { agentAuth: new InsecureAgents() });
  const ack = await observe(open.address, [observation("198.18.2.10", "a.example.com", ["203.0.113.1"])], 1, false, "");
  assert.equal(ack.accepted_observations, 1);
});

test("an agent speaks only for its own node's pods: the others are counted in rejected_observations, a metric and a log line", async (t) => {
  const f = await fixture(t);
  const w = new WatchClient(await f.filterAddress(WEB), WEB);
  t.after(() => w.close());
  await eventually(() => w.responses.length >= 1, "the snapshot");
  // node-2's genuine agent claims a resolution for web-1 (on node-1), and one for its own pod.
  const ack = await observe(
    f.address,
    [observation("198.18.1.10", "api.partner.test", ["6.6.6.6"]), observation("198.18.2.10", "api.partner.test", ["203.0.113.5"])],
    1,
    false,
    OTHER_AGENT_TOKEN,
  );
  assert.equal(ack.rejected_observations, 1);
  assert.equal(ack.accepted_observations, 1);
  assert.equal(f.service.store.entriesOf("198.18.1.10").length, 0, "nothing stored for web-1");
  assert.equal(f.service.store.entriesOf("198.18.2.10").length, 1, "node-2's own pod is served");
  // node-1's agent may not speak for node-2's pod either.
  const back = await observe(f.address, [observation("198.18.2.10", "x.partner.test", ["203.0.113.6"])], 1, false, TEST_AGENT_TOKEN);
  assert.equal(back.rejected_observations, 1);
  const m = await metricsOf(f);
  assert.match(m, /egret_control_foreign_node_observations_total\{agent_node="node-2"\} 1/);
  assert.match(m, /egret_control_foreign_node_observations_total\{agent_node="node-1"\} 1/);
  assert.match(m, /egret_control_observations_total\{outcome="foreign_node"\} 2/);
  // The filter never saw the forged address.
  const mine = await observe(f.address, [observation("198.18.1.10", "later.partner.test", ["203.0.113.9"])]);
  assert.equal(mine.accepted_observations, 1);
  await eventually(() => w.names("203.0.113.9"), "web-1's genuine resolution");
  assert.equal(w.entries.has("6.6.6.6"), false);
});

test("evidence for a pod IP control does not know yet is held, then judged by the pod's node", async (t) => {
  const f = await fixture(t);
  const LATE_MINE = { name: "late-1", namespace: "shop", ips: ["198.18.1.20"], labels: { app: "web" } };
  const LATE_OTHER = { name: "late-2", namespace: "shop", ips: ["198.18.2.20"], labels: { app: "web" }, node: OTHER_NODE };
  const ack = await observe(f.address, [observation("198.18.1.20", "a.partner.test", ["203.0.113.20"]), observation("198.18.2.20", "b.partner.test", ["6.6.6.6"])]);
  assert.equal(ack.rejected_observations, 0);
  assert.equal(f.service.nodeBinding.heldObservations, 2);
  assert.equal(f.service.store.entriesOf("198.18.1.20").length, 0, "not stored before the pod is known");
  f.writePods([WEB, DB, REMOTE, LATE_MINE, LATE_OTHER]);
  f.reload();
  await eventually(() => f.service.nodeBinding.heldObservations === 0, "the held observations to be judged");
  assert.equal(f.service.store.entriesOf("198.18.1.20").length, 1, "node-1's pod: stored");
  assert.equal(f.service.store.entriesOf("198.18.2.20").length, 0, "node-2's pod: rejected");
  assert.match(await metricsOf(f), /egret_control_foreign_node_observations_total\{agent_node="node-1"\} 1/);
});

test("the agent token file: TOKEN NODE-NAME lines, comments, and errors that name file:line", () => {
  const tokens = parseAgentTokens("# agents\n\n  tok-a   node-a  \ntok-b node-b # not a comment\n".replace(" # not a comment", ""), "tokens");
  assert.equal(tokens.size, 2);
  assert.throws(() => parseAgentTokens("tok-a node-a\ntok-a node-b\n", "t"), /t:2: this token is also on line 1/);
  assert.throws(() => parseAgentTokens("tok-a\n", "t"), /t:1: expected "TOKEN NODE-NAME"/);
  assert.throws(() => parseAgentTokens("tok-a Node_A\n", "t"), /t:1: "Node_A" is not a node name/);
});

test("a token file edit takes effect for new streams; a broken edit keeps the previous tokens", async (t) => {
  const f = await fixture(t);
  writeFileSync(f.tokenFile, `rotated-token node-1\n`);
  await assert.rejects(observe(f.address, [observation("198.18.1.10", "a.example.com", ["203.0.113.1"])], 1, false, TEST_AGENT_TOKEN), rejectsWith(grpc.status.UNAUTHENTICATED));
  assert.equal((await observe(f.address, [observation("198.18.1.10", "a.example.com", ["203.0.113.1"])], 1, false, "rotated-token")).accepted_observations, 1);
  writeFileSync(f.tokenFile, `rotated-token\n`);
  assert.equal((await observe(f.address, [observation("198.18.1.10", "b.example.com", ["203.0.113.2"])], 1, false, "rotated-token")).accepted_observations, 1);
});

// ---- filter → control -------------------------------------------------------------------------

test("Watch as another pod, or from an address no pod has, is PERMISSION_DENIED and counted", async (t) => {
  const f = await fixture(t);
  await observe(f.address, [observation("198.18.1.11", "db.internal.test", ["203.0.113.30"])]);
  // From web-1's address, naming db-1: would read db-1's DNS history and policy.
  const spy = new WatchClient(await f.filterAddress(WEB), DB);
  t.after(() => spy.close());
  await eventually(() => spy.error, "the refusal");
  assert.equal(spy.error!.code, grpc.status.PERMISSION_DENIED);
  assert.deepEqual(spy.error!.metadata.get("egret-error-code"), ["EGRET_FILTER_POD_MISMATCH"]);
  assert.equal(spy.responses.length, 0);
  // From the host's own loopback address (no pod's).
  const outsider = new WatchClient(f.address, WEB);
  t.after(() => outsider.close());
  await eventually(() => outsider.error, "the refusal");
  assert.equal(outsider.error!.code, grpc.status.PERMISSION_DENIED);
  assert.deepEqual(outsider.error!.metadata.get("egret-error-code"), ["EGRET_FILTER_PEER_NOT_A_POD"]);
  assert.match(await metricsOf(f), /egret_control_filter_binding_total\{call="watch",outcome="denied"\} 2/);
  // The genuine filter is served.
  const db = new WatchClient(await f.filterAddress(DB), DB);
  t.after(() => db.close());
  await eventually(() => db.names("203.0.113.30"), "db-1's own view");
});

test("Lookup for another pod's source address, or naming another pod, is PERMISSION_DENIED", async (t) => {
  const f = await fixture(t);
  await observe(f.address, [observation("198.18.1.11", "db.internal.test", ["203.0.113.30"])]);
  const client = createFilterClient(await f.filterAddress(WEB));
  t.after(() => client.close());
  const asDb = { source_ip: ipToBytes("198.18.1.11"), destination_ip: ipToBytes("203.0.113.30"), wait_ms: 10 };
  await assert.rejects(lookup(client, asDb, 5000), rejectsWith(grpc.status.PERMISSION_DENIED, "EGRET_FILTER_POD_MISMATCH"));
  await assert.rejects(
    lookup(client, { ...asDb, source_ip: ipToBytes("198.18.1.10"), pod_name: "db-1", pod_namespace: "shop" }, 5000),
    rejectsWith(grpc.status.PERMISSION_DENIED, "EGRET_FILTER_POD_MISMATCH"),
  );
  const outsider = createFilterClient(f.address);
  t.after(() => outsider.close());
  await assert.rejects(lookup(outsider, asDb, 5000), rejectsWith(grpc.status.PERMISSION_DENIED, "EGRET_FILTER_PEER_NOT_A_POD"));
  // Its own question is answered (and says web-1 never resolved it).
  const own = await lookup(client, { ...asDb, source_ip: ipToBytes("198.18.1.10") }, 5000);
  assert.equal(own.result, "LOOKUP_RESULT_NOT_FOUND");
});

async function report(address: string, events: Outgoing<VerdictEvent>[]): Promise<ReportResponse> {
  const client = createFilterClient(address);
  try {
    return await new Promise<ReportResponse>((resolve, reject) => {
      const call = client.Report(new grpc.Metadata(), {}, (err, r) => (err ? reject(err) : resolve(r!)));
      call.write({ events });
      call.end();
    });
  } finally {
    client.close();
  }
}

test("Report events are recorded under the stream's pod, whatever pod they name; another pod's source address is rejected", async (t) => {
  const f = await fixture(t);
  const forged = {
    time_unix_ms: Date.now(), pod_namespace: "shop", pod_name: "db-1", source_ip: ipToBytes("198.18.1.10"), source_port: 40000,
    destination_ip: ipToBytes("203.0.113.9"), destination_port: 443, verdict: "VERDICT_DENY" as const, reason: "REASON_DEFAULT_DENY" as const,
  };
  const r = await report(await f.filterAddress(WEB), [forged, { ...forged, source_ip: ipToBytes("198.18.1.11") }]);
  assert.deepEqual(r, { accepted_events: 1, rejected_events: 1 });
  assert.equal(f.audit.length, 1);
  assert.equal(JSON.parse(f.audit[0]!).pod, "shop/web-1", "recorded under the bound pod, not the one the event names");
  assert.match(await metricsOf(f), /egret_control_report_events_rejected_total\{cause="foreign_source"\} 1/);
  await assert.rejects(report(f.address, [forged]), rejectsWith(grpc.status.PERMISSION_DENIED, "EGRET_FILTER_PEER_NOT_A_POD"));
  assert.equal(f.audit.length, 1);
});

test("a bound Watch ends when its pod stops owning the peer address", async (t) => {
  const f = await fixture(t);
  const w = new WatchClient(await f.filterAddress(DB), DB);
  t.after(() => w.close());
  await eventually(() => w.responses.length >= 1, "the snapshot");
  f.writePods([WEB, REMOTE]);
  f.reload();
  await eventually(() => w.error, "the stream to end");
  assert.equal(w.error!.code, grpc.status.PERMISSION_DENIED);
  assert.deepEqual(w.error!.metadata.get("egret-error-code"), ["EGRET_FILTER_POD_GONE"]);
});

test("the SNAT escape hatch (off by default) serves named pods from listed peers, counted as unverified", async (t) => {
  const f = await fixture(t, { filterSnatPeers: ["127.0.0.1/32"] });
  const w = new WatchClient(f.address, DB);
  t.after(() => w.close());
  await eventually(() => w.responses.length >= 1, "the snapshot");
  assert.match(await metricsOf(f), /egret_control_filter_binding_total\{call="watch",outcome="unverified_snat"\} 1/);
});

test("peer addresses: IPv4, IPv6, v4-mapped, bracketed; anything else is no IP", () => {
  assert.equal(peerIp("198.18.1.10:41234"), "198.18.1.10");
  assert.equal(peerIp("::ffff:198.18.1.10:41234"), "198.18.1.10");
  assert.equal(peerIp("[2001:db8::1]:41234"), "2001:db8::1");
  assert.equal(peerIp("2001:db8::1:41234"), "2001:db8::1");
  assert.equal(peerIp("unix:/run/x.sock"), undefined);
  assert.equal(peerIp("unknown"), undefined);
});

test("a batch an authenticated agent sent just before its stream ended is still applied", async (t) => {
  const f = await fixture(t);
  const { createAgentClient } = await import("../../src/proto/index.js");
  const { bearer } = await import("../support/control-harness.js");
  const client = createAgentClient(f.address);
  t.after(() => client.close());
  const call = client.Observe(bearer(TEST_AGENT_TOKEN));
  call.on("error", () => undefined);
  call.write({ agent_id: "killed-agent", sequence: 1, observations: [observation("198.18.1.10", "last.example.com", ["203.0.113.77"])] });
  call.end();
  await eventually(() => f.service.store.entriesOf("198.18.1.10").length === 1, "the last batch to be stored");
});
