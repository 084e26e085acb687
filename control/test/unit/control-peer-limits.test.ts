// One peer cannot starve the others (issue #13): an attacker pod floods control's gRPC port with
// streams, waiting Lookups, oversized messages, connections and pings. Each flood is refused beyond
// its per-peer limit with the catalogued status and counted in
// egret_control_peer_limit_exceeded_total{limit}, while another pod is served as usual.
import { test } from "node:test";
import assert from "node:assert/strict";
import http2 from "node:http2";
import net from "node:net";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import { createFilterClient, createOperatorClient, ipToBytes, lookup } from "../../src/proto/index.js";
import { FileOperatorAuthenticator } from "../../src/auth/operator-access.js";
import { silentLogger } from "../../src/common/log.js";
import { ControlFixture, WatchClient, bearer, egressPolicy, eventually, loopbackOf, observation, observe } from "../support/control-harness.js";

const WEB = { name: "web-1", namespace: "shop", ips: ["198.18.1.10"], labels: { app: "web" } };
const ATTACKER = { name: "attacker", namespace: "shop", ips: ["198.18.1.66"], labels: { app: "web" } };
const OPERATOR_TOKEN = "operator-token-0123456789abcdef";
const POLICY = egressPolicy("web-egress", "shop", { app: "web" }, ["api.partner.test"]);

async function fixture(t: import("node:test").TestContext, peerLimits: Record<string, number>) {
  const f = new ControlFixture([WEB, ATTACKER], { "web.yaml": POLICY }, {}, { peerLimits });
  t.after(async () => {
    await f.stop();
    f.cleanup();
  });
  return f.start();
}

async function exceeded(f: ControlFixture, limit: string): Promise<number> {
  const m = await f.service.metrics.peerLimitExceeded.get();
  return m.values.find((v) => v.labels.limit === limit)?.value ?? 0;
}

function codeOf(err: grpc.ServiceError | undefined): string | undefined {
  return err?.metadata?.get("egret-error-code")[0] as string | undefined;
}

test("peer limits: a pod opening many Watch streams gets RESOURCE_EXHAUSTED beyond its limit; another pod is served; closing frees the slots", async (t) => {
  const f = await fixture(t, { maxStreamsPerPeer: 4 });
  const attackerAddress = await f.filterAddress(ATTACKER);
  const flood = Array.from({ length: 12 }, () => new WatchClient(attackerAddress, { namespace: "shop", name: "attacker" }));
  t.after(() => flood.forEach((w) => w.close()));
  await eventually(() => flood.every((w) => w.responses.length > 0 || w.error), "every flooding stream answered or refused");
  const served = flood.filter((w) => w.responses.length > 0);
  const refused = flood.filter((w) => w.error);
  assert.equal(served.length, 4);
  assert.equal(refused.length, 8);
  for (const w of refused) {
    assert.equal(w.error!.code, grpc.status.RESOURCE_EXHAUSTED);
    assert.equal(codeOf(w.error), "EGRET_PEER_TOO_MANY_STREAMS");
  }
  assert.equal(await exceeded(f, "streams"), 8);
  // The victim pod is not starved.
  const web = new WatchClient(await f.filterAddress(WEB), { namespace: "shop", name: "web-1" });
  t.after(() => web.close());
  await eventually(() => web.responses.length > 0 || web.error, "web-1's snapshot");
  assert.equal(web.error, undefined);
  assert.equal(web.responses[0]!.type, "WATCH_RESPONSE_TYPE_SNAPSHOT");
  // Slots come back when streams end.
  served.forEach((w) => w.close());
  await eventually(() => f.service.grpcPeers.held(loopbackOf(ATTACKER)).streams === 0, "the attacker's slots released");
  const again = new WatchClient(attackerAddress, { namespace: "shop", name: "attacker" });
  t.after(() => again.close());
  await eventually(() => again.responses.length > 0 || again.error, "a new stream after the flood ended");
  assert.equal(again.error, undefined);
});

test("peer limits: waiting Lookups are bounded per pod; the excess is refused at once and another pod's Lookup is answered", async (t) => {
  const f = await fixture(t, { maxLookupsPerPeer: 2 });
  const attacker = createFilterClient(await f.filterAddress(ATTACKER));
  const web = createFilterClient(await f.filterAddress(WEB));
  t.after(() => (attacker.close(), web.close()));
  const ask = (client: typeof attacker, source: string, wait: number) =>
    lookup(client, { source_ip: ipToBytes(source), destination_ip: ipToBytes("203.0.113.99"), wait_ms: wait }, 10_000).then(
      (r) => ({ ok: r.result }),
      (err: grpc.ServiceError) => ({ err }),
    );
  const flood = Array.from({ length: 6 }, () => ask(attacker, "198.18.1.66", 1500));
  // Wait until the attacker's two slots are taken, then the victim asks.
  await eventually(() => f.service.grpcPeers.held(loopbackOf(ATTACKER)).lookups === 2, "two Lookups waiting");
  await observe(f.address, [observation("198.18.1.10", "api.partner.test", ["203.0.113.99"])]);
  const victim = await ask(web, "198.18.1.10", 1000);
  assert.deepEqual(victim, { ok: "LOOKUP_RESULT_FOUND" });
  const results = await Promise.all(flood);
  const refused = results.filter((r) => "err" in r) as { err: grpc.ServiceError }[];
  assert.equal(refused.length, 4);
  for (const r of refused) {
    assert.equal(r.err.code, grpc.status.RESOURCE_EXHAUSTED);
    assert.equal(codeOf(r.err), "EGRET_PEER_TOO_MANY_LOOKUPS");
  }
  assert.equal(results.filter((r) => "ok" in r).length, 2);
  assert.equal(await exceeded(f, "lookups"), 4);
  assert.equal(f.service.grpcPeers.held(loopbackOf(ATTACKER)).lookups, 0);
});

test("peer limits: a message over the size limit ends the call RESOURCE_EXHAUSTED (EGRET_MESSAGE_TOO_LARGE), counted; a normal batch is accepted", async (t) => {
  const f = await fixture(t, { maxMessageBytes: 64 * 1024 });
  const huge = Array.from({ length: 2000 }, (_, i) => observation("198.18.1.10", `n${i}.partner.test`, ["203.0.113.1"]));
  await assert.rejects(observe(f.address, huge), (err: grpc.ServiceError) => {
    assert.equal(err.code, grpc.status.RESOURCE_EXHAUSTED, err.details);
    assert.equal(codeOf(err), "EGRET_MESSAGE_TOO_LARGE");
    return true;
  });
  assert.equal(await exceeded(f, "message_size"), 1);
  const ack = await observe(f.address, [observation("198.18.1.10", "api.partner.test", ["203.0.113.7"])]);
  assert.equal(ack.accepted_observations, 1);
});

/** An HTTP/2 connection to control from `source` (no gRPC: the attacker's own client). */
function connectFrom(f: ControlFixture, source: string): Promise<http2.ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const [host, port] = [f.address.split(":")[0]!, Number(f.address.split(":")[1])];
    const s = http2.connect(`http://${f.address}`, { createConnection: () => net.connect({ host, port, localAddress: source }) });
    s.once("connect", () => resolve(s));
    s.once("error", reject);
  });
}

test("peer limits: connections beyond the per-peer limit are closed at once; another pod still connects", async (t) => {
  const f = await fixture(t, { maxConnectionsPerPeer: 3 });
  const sessions = await Promise.all(Array.from({ length: 8 }, () => connectFrom(f, loopbackOf(ATTACKER)).catch(() => undefined)));
  t.after(() => sessions.forEach((s) => s?.destroy()));
  await eventually(() => sessions.filter((s) => s && !s.closed && !s.destroyed).length === 3, "3 attacker connections left open");
  assert.equal(await exceeded(f, "connections"), 5);
  const web = new WatchClient(await f.filterAddress(WEB), { namespace: "shop", name: "web-1" });
  t.after(() => web.close());
  await eventually(() => web.responses.length > 0 || web.error, "web-1's snapshot");
  assert.equal(web.error, undefined);
});

test("peer limits: a connection that pings in a loop is closed (GOAWAY ENHANCE_YOUR_CALM), counted; other connections are unaffected", async (t) => {
  const f = await fixture(t, {});
  const web = new WatchClient(await f.filterAddress(WEB), { namespace: "shop", name: "web-1" });
  t.after(() => web.close());
  await eventually(() => web.responses.length > 0, "web-1's snapshot");
  const s = await connectFrom(f, loopbackOf(ATTACKER));
  t.after(() => s.destroy());
  const goaway = new Promise<number>((resolve) => s.once("goaway", (code: number) => resolve(code)));
  for (let i = 0; i < 5; i++) s.ping(() => undefined);
  assert.equal(await goaway, 0xb);
  await eventually(() => s.closed || s.destroyed, "the pinging connection closed");
  assert.equal(await exceeded(f, "keepalive"), 1);
  // The Watch on another connection keeps working.
  const before = web.responses.length;
  await observe(f.address, [observation("198.18.1.10", "api.partner.test", ["203.0.113.7"])]);
  await eventually(() => web.responses.length > before, "web-1 still gets deltas");
  assert.equal(web.error, undefined);
});

test("peer limits: operator calls too — ObserveVerdicts streams beyond the limit and a GetStatus while the peer holds every slot get RESOURCE_EXHAUSTED; another address is served", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "egE-operator-limits-"));
  const tokens = join(dir, "operator-tokens");
  writeFileSync(tokens, `${OPERATOR_TOKEN} * admin\n`);
  const f = new ControlFixture([WEB, ATTACKER], { "web.yaml": POLICY }, {}, { peerLimits: { maxStreamsPerPeer: 3 }, operatorAccess: new FileOperatorAuthenticator(tokens, silentLogger()) });
  t.after(async () => {
    await f.stop();
    f.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });
  await f.start();
  // The attacker pod holds a valid operator token (the worst case): its address still gets 3 calls at once.
  const attackerAddress = await f.filterAddress(ATTACKER);
  const client = createOperatorClient(attackerAddress);
  t.after(() => client.close());
  const followers = Array.from({ length: 8 }, () => {
    const s = { historyDone: false, error: undefined as grpc.ServiceError | undefined };
    const call = client.ObserveVerdicts({ follow: true }, bearer(OPERATOR_TOKEN));
    call.on("data", (r: { history_done?: boolean }) => (s.historyDone ||= r.history_done === true));
    call.on("error", (err: grpc.ServiceError) => (s.error = err));
    return { s, call };
  });
  t.after(() => followers.forEach((x) => x.call.cancel()));
  await eventually(() => followers.every((x) => x.s.historyDone || x.s.error), "every follow stream answered or refused");
  const refused = followers.filter((x) => x.s.error);
  assert.equal(followers.filter((x) => x.s.historyDone).length, 3);
  assert.equal(refused.length, 5);
  for (const x of refused) {
    assert.equal(x.s.error!.code, grpc.status.RESOURCE_EXHAUSTED);
    assert.equal(codeOf(x.s.error), "EGRET_PEER_TOO_MANY_STREAMS");
  }
  const status = (address: string) => new Promise<grpc.ServiceError | null>((resolve) => {
    const c = createOperatorClient(address);
    c.GetStatus({}, bearer(OPERATOR_TOKEN), {}, (err) => {
      c.close();
      resolve(err);
    });
  });
  const full = await status(attackerAddress);
  assert.equal(full?.code, grpc.status.RESOURCE_EXHAUSTED, "GetStatus needs a slot too");
  assert.equal(await exceeded(f, "streams"), 6);
  // Another address (another pod, or the operator's port-forward) is served.
  assert.equal(await status(await f.filterAddress(WEB)), null);
  // Slots come back when the streams end, and GetStatus returns its slot when answered.
  followers.forEach((x) => x.call.cancel());
  await eventually(() => f.service.grpcPeers.held(loopbackOf(ATTACKER)).streams === 0, "the attacker's slots released");
  for (let i = 0; i < 5; i++) assert.equal(await status(attackerAddress), null, `GetStatus #${i + 1} after the flood`);
  assert.equal(f.service.grpcPeers.held(loopbackOf(ATTACKER)).streams, 0);
});
