// egret control end to end over real gRPC sockets (file mode): Watch snapshot + deltas for every
// kind of change, Lookup (known / wait / timeout / unknown pod), Report → audit + metrics,
// invalid policy keeps the previous one, resume on the same replica, protocol errors.
import { test } from "node:test";
import assert from "node:assert/strict";
import * as grpc from "@grpc/grpc-js";
import { createFilterClient, ipToBytes, lookup } from "../../src/proto/index.js";
import { ControlFixture, WatchClient, egressPolicy, eventually, observation, observe } from "../support/control-harness.js";

const WEB = { name: "web-1", namespace: "shop", ips: ["198.18.1.10"], labels: { app: "web" } };
const OTHER = { name: "db-1", namespace: "shop", ips: ["198.18.1.11"], labels: { app: "db" } };
const POLICY_V1 = egressPolicy("web-egress", "shop", { app: "web" }, ["api.example.com"]);
const POLICY_V2 = egressPolicy("web-egress", "shop", { app: "web" }, ["api.example.com", "*.cdn.example.net"]);

async function fixture(t: import("node:test").TestContext, extra = {}) {
  const f = new ControlFixture([WEB, OTHER], { "web.yaml": POLICY_V1 }, { shop: { team: "shop" } }, extra);
  t.after(async () => {
    await f.stop();
    f.cleanup();
  });
  return f.start();
}

test("a watcher gets its snapshot, then every relevant change as a delta", async (t) => {
  const f = await fixture(t, { storeLimits: { minTtlSeconds: 1, graceSeconds: 0 } });
  const w = new WatchClient(await f.filterAddress(WEB), WEB);
  t.after(() => w.close());

  await eventually(() => w.responses.length >= 1, "the snapshot");
  const snap = w.responses[0];
  assert.equal(snap.type, "WATCH_RESPONSE_TYPE_SNAPSHOT");
  assert.equal(snap.pod_selected, true);
  assert.ok(snap.policy.length > 0 && snap.policy_hash.length === 64, "the compiled policy travels in the snapshot");
  const hashV1 = w.policyHash;

  // New resolution → DELTA upsert.
  await observe(f.address, [observation("198.18.1.10", "API.example.com.", ["203.0.113.7"], 300)]);
  await eventually(() => w.names("203.0.113.7"), "the resolution delta");
  assert.deepEqual(w.names("203.0.113.7"), ["api.example.com"]);
  const delta = w.responses.at(-1)!;
  assert.equal(delta.type, "WATCH_RESPONSE_TYPE_DELTA");
  assert.equal(delta.policy_hash, "", "the policy is not resent when it did not change");

  // Another pod's resolution is not this pod's business.
  const before = w.responses.length;
  await observe(f.address, [observation("198.18.1.11", "db.example.com", ["203.0.113.99"])]);
  // A resolution of our own afterwards proves the other one was not sent in between.
  await observe(f.address, [observation("198.18.1.10", "x.example.com", ["203.0.113.8"])]);
  await eventually(() => w.names("203.0.113.8"), "our second resolution");
  assert.equal(w.responses.length, before + 1);
  assert.equal(w.entries.has("203.0.113.99"), false);

  // Policy edit → DELTA with the new policy.
  f.writePolicy("web.yaml", POLICY_V2);
  f.reload();
  await eventually(() => w.policyHash !== hashV1, "the policy delta");
  assert.equal(w.responses.at(-1)!.type, "WATCH_RESPONSE_TYPE_DELTA");
  assert.ok(w.responses.at(-1)!.policy.length > 0);

  // Label change that unselects the pod → DELTA, pod no longer selected.
  f.writePods([{ ...WEB, labels: { app: "batch" } }, OTHER], { shop: { team: "shop" } });
  f.reload();
  await eventually(() => !w.selected, "the pod to be unselected");
  assert.equal(w.responses.at(-1)!.type, "WATCH_RESPONSE_TYPE_DELTA");

  // Expiry → DELTA removal (TTL 1 s, no grace; the sweep runs every 50 ms).
  await observe(f.address, [observation("198.18.1.10", "short.example.com", ["203.0.113.50"], 1)]);
  await eventually(() => w.names("203.0.113.50"), "the short-lived resolution");
  await eventually(() => !w.entries.has("203.0.113.50"), "the expiry delta");
  assert.ok(w.responses.at(-1)!.removals.length >= 1);
  assert.ok(w.entries.has("203.0.113.7"), "unexpired entries stay");
  // Versions only increase on a stream, and every delta applied (WatchClient checks base_version).
  for (let i = 1; i < w.responses.length; i++) assert.ok(w.responses[i].version > w.responses[i - 1].version);
});

test("Lookup answers at once when known, waits for the observation, and times out", async (t) => {
  const f = await fixture(t);
  const client = createFilterClient(await f.filterAddress(WEB));
  t.after(() => client.close());
  const req = (dest: string, wait_ms: number, source = "198.18.1.10") => ({ source_ip: ipToBytes(source), destination_ip: ipToBytes(dest), wait_ms });

  await observe(f.address, [observation("198.18.1.10", "api.example.com", ["203.0.113.7"], 300, { cname_chain: ["edge.cdn.example.net"] })]);
  const known = await lookup(client, req("203.0.113.7", 0), 10_000);
  assert.equal(known.result, "LOOKUP_RESULT_FOUND");
  assert.deepEqual(known.resolution!.names.map((n) => [n.name, n.cname_chain]), [["api.example.com", ["edge.cdn.example.net"]]]);
  assert.ok(known.resolution!.names[0].expires_unix_ms > Date.now());

  // Pending: the Lookup is parked; the observation lands; the Lookup returns FOUND (a 30 s wait
  // could only end with FOUND this soon because the observation arrived).
  const pending = lookup(client, req("203.0.113.20", 30_000), 60_000);
  await eventually(() => f.service.lookups.pending === 1, "the Lookup to be waiting");
  await observe(f.address, [observation("198.18.1.10", "late.example.com", ["203.0.113.20"])]);
  const late = await pending;
  assert.equal(late.result, "LOOKUP_RESULT_FOUND");
  assert.deepEqual(late.resolution!.names.map((n) => n.name), ["late.example.com"]);
  assert.equal(f.service.lookups.pending, 0);

  // Nothing arrives: NOT_FOUND when wait_ms ends.
  const none = await lookup(client, req("203.0.113.21", 100), 10_000);
  assert.equal(none.result, "LOOKUP_RESULT_NOT_FOUND");

  // Only a deadline: the server answers just before it (or the client's deadline fires first).
  try {
    const r = await lookup(client, req("203.0.113.22", 0), 300);
    assert.equal(r.result, "LOOKUP_RESULT_NOT_FOUND");
  } catch (err) {
    assert.equal((err as grpc.ServiceError).code, grpc.status.DEADLINE_EXCEEDED);
  }

  // A source IP that is not this pod's: refused (a filter asks only about its own pod).
  await assert.rejects(lookup(client, req("203.0.113.7", 50, "198.18.9.9"), 10_000), (err: grpc.ServiceError) => {
    assert.equal(err.code, grpc.status.PERMISSION_DENIED);
    assert.deepEqual(err.metadata.get("egret-error-code"), ["EGRET_FILTER_POD_MISMATCH"]);
    return true;
  });

  // Malformed request: INVALID_ARGUMENT with the catalogue code in trailing metadata.
  await assert.rejects(lookup(client, { source_ip: new Uint8Array(3), destination_ip: ipToBytes("203.0.113.7") }, 10_000), (err: grpc.ServiceError) => {
    assert.equal(err.code, grpc.status.INVALID_ARGUMENT);
    assert.deepEqual(err.metadata.get("egret-error-code"), ["EGRET_LOOKUP_BAD_IP"]);
    return true;
  });
  assert.equal(f.service.lookups.pending, 0);
});

test("an invalid policy edit leaves the previous version in force and says why", async (t) => {
  const f = await fixture(t);
  const w = new WatchClient(await f.filterAddress(WEB), WEB);
  t.after(() => w.close());
  await eventually(() => w.responses.length >= 1, "the snapshot");
  const hashV1 = w.policyHash;
  const count = w.responses.length;

  f.writePolicy("web.yaml", POLICY_V1.replace("action: Allow", "action: Permit"));
  f.reload();
  const status = f.service.status() as { policies: { key: string; inForce: boolean; invalid?: string[] }[] };
  const p = status.policies.find((x) => x.key === "EgressPolicy/shop/web-egress")!;
  assert.equal(p.inForce, true, "the previous version stays in force");
  assert.ok(p.invalid && p.invalid.length > 0 && /action/.test(p.invalid.join("\n")), `invalid message names the field: ${p.invalid}`);
  assert.equal(f.service.hub.compiledFor("shop", "web-1")!.hash, hashV1);

  // Fixing it applies the new version (and proves the watcher was not sent anything in between).
  f.writePolicy("web.yaml", POLICY_V2);
  f.reload();
  await eventually(() => w.policyHash !== hashV1, "the fixed policy");
  assert.equal(w.responses.length, count + 1);
});

test("a watcher that reconnects with its epoch and version gets only what changed", async (t) => {
  const f = await fixture(t);
  await observe(f.address, [observation("198.18.1.10", "a.example.com", ["203.0.113.1"])]);
  const first = new WatchClient(await f.filterAddress(WEB), WEB);
  await eventually(() => first.names("203.0.113.1"), "the snapshot with a.example.com");
  const resumeFrom = { epoch: first.epoch, version: first.version };
  const entriesBefore = new Map(first.entries);
  first.close();
  await eventually(() => f.service.hub.streamCount === 0, "the first stream to close");

  // Nothing changed: an empty DELTA confirms the resume.
  const same = new WatchClient(await f.filterAddress(WEB), WEB, resumeFrom);
  t.after(() => same.close());
  await eventually(() => same.responses.length >= 1, "the resume confirmation");
  assert.equal(same.responses[0].type, "WATCH_RESPONSE_TYPE_DELTA");
  assert.equal(same.responses[0].base_version, resumeFrom.version);
  assert.equal(same.responses[0].version, resumeFrom.version);
  same.close();
  await eventually(() => f.service.hub.streamCount === 0, "the second stream to close");

  // A change while away: the DELTA carries just that change.
  await observe(f.address, [observation("198.18.1.10", "b.example.com", ["203.0.113.2"])]);
  const resumed = new WatchClient(await f.filterAddress(WEB), WEB, resumeFrom);
  t.after(() => resumed.close());
  for (const [k, v] of entriesBefore) resumed.entries.set(k, v);
  await eventually(() => resumed.responses.length >= 1, "the resume delta");
  const d = resumed.responses[0];
  assert.equal(d.type, "WATCH_RESPONSE_TYPE_DELTA");
  assert.equal(d.base_version, resumeFrom.version);
  assert.deepEqual(d.upserts.map((u) => u.names[0].name), ["b.example.com"]);
  assert.deepEqual([...resumed.entries.keys()].sort(), ["203.0.113.1", "203.0.113.2"]);

  // A version from another epoch (another replica, or before a restart) gets a SNAPSHOT.
  const foreign = new WatchClient(await f.filterAddress(WEB), WEB, { epoch: "someone-else", version: 3 });
  t.after(() => foreign.close());
  await eventually(() => foreign.responses.length >= 1, "the snapshot");
  assert.equal(foreign.responses[0].type, "WATCH_RESPONSE_TYPE_SNAPSHOT");
  assert.deepEqual([...foreign.entries.keys()].sort(), ["203.0.113.1", "203.0.113.2"]);
});

test("a NACK makes the server resend a full snapshot; the stream goes on", async (t) => {
  const f = await fixture(t);
  let nacked = false;
  const w = new WatchClient(await f.filterAddress(WEB), WEB, undefined, {
    nackWhen: (r) => {
      if (nacked || r.type !== "WATCH_RESPONSE_TYPE_DELTA") return false;
      nacked = true;
      return true;
    },
  });
  t.after(() => w.close());
  await eventually(() => w.responses.length >= 1, "the snapshot");
  await observe(f.address, [observation("198.18.1.10", "a.example.com", ["203.0.113.1"])]);
  await eventually(() => w.responses.length >= 3, "the NACKed delta and the snapshot after it");
  assert.equal(w.responses[1].type, "WATCH_RESPONSE_TYPE_DELTA");
  assert.equal(w.responses[2].type, "WATCH_RESPONSE_TYPE_SNAPSHOT");
  assert.deepEqual(w.names("203.0.113.1"), ["a.example.com"]);
});

test("Watch refuses requests before SUBSCRIBE and subscriptions without identity", async (t) => {
  const f = await fixture(t);
  const client = createFilterClient(await f.filterAddress(WEB));
  t.after(() => client.close());
  for (const [first, code, egret] of [
    [{ type: "WATCH_REQUEST_TYPE_ACK" as const, response_version: 1 }, grpc.status.FAILED_PRECONDITION, "EGRET_WATCH_SUBSCRIBE_FIRST"],
    [{ type: "WATCH_REQUEST_TYPE_SUBSCRIBE" as const, pod_name: "web-1" }, grpc.status.INVALID_ARGUMENT, "EGRET_WATCH_IDENTITY_MISSING"],
  ] as const) {
    const call = client.Watch();
    const err = await new Promise<grpc.ServiceError>((resolve) => {
      call.on("error", resolve);
      call.on("data", () => undefined);
      call.write(first);
    });
    assert.equal(err.code, code);
    assert.deepEqual(err.metadata.get("egret-error-code"), [egret]);
  }
});

test("a pod not known yet is refused until it appears, then served (its filter retries)", async (t) => {
  const f = await fixture(t);
  const NEW = { name: "new-1", namespace: "shop", ips: ["198.18.1.12"], labels: { app: "web" } };
  const early = new WatchClient(await f.filterAddress(NEW), NEW);
  t.after(() => early.close());
  await eventually(() => early.error, "the refusal");
  assert.equal(early.error!.code, grpc.status.PERMISSION_DENIED);
  assert.deepEqual(early.error!.metadata.get("egret-error-code"), ["EGRET_FILTER_PEER_NOT_A_POD"]);
  f.writePods([WEB, OTHER, NEW], { shop: { team: "shop" } });
  f.reload();
  await eventually(() => f.service.registry.get("shop", "new-1"), "the new pod");
  const w = new WatchClient(await f.filterAddress(NEW), NEW);
  t.after(() => w.close());
  await eventually(() => w.responses.length >= 1, "the snapshot");
  assert.equal(w.responses[0].type, "WATCH_RESPONSE_TYPE_SNAPSHOT");
  assert.equal(w.selected, true);
});

test("Report turns verdict events into audit lines and counters, and drops malformed ones", async (t) => {
  const f = await fixture(t);
  const client = createFilterClient(await f.filterAddress(WEB));
  t.after(() => client.close());
  const response = await new Promise<{ accepted_events: number; rejected_events: number }>((resolve, reject) => {
    const call = client.Report(new grpc.Metadata(), {}, (err, r) => (err ? reject(err) : resolve(r!)));
    call.write({
      events: [
        {
          time_unix_ms: Date.UTC(2026, 0, 2, 3, 4, 5),
          pod_namespace: "shop",
          pod_name: "web-1",
          source_ip: ipToBytes("198.18.1.10"),
          source_port: 40000,
          destination_ip: ipToBytes("2001:db8::7"),
          destination_port: 443,
          names: ["api.example.com"],
          protocol: "tls",
          sni: "evil.example.org",
          verdict: "VERDICT_DENY",
          reason: "REASON_SNI_UNVERIFIED",
          policy: "shop/web-egress",
          rule: "#0",
          mode: "POLICY_MODE_ENFORCE",
        },
        { verdict: "VERDICT_UNSPECIFIED", reason: "REASON_ALLOWED", destination_ip: ipToBytes("192.0.2.1") },
        { verdict: "VERDICT_ALLOW", reason: "REASON_ALLOWED", destination_ip: ipToBytes("192.0.2.1"), time_unix_ms: 9e15 },
        { verdict: "VERDICT_ALLOW", reason: "REASON_ALLOWED", destination_ip: new Uint8Array(5) },
      ],
      dropped_events: 3,
    });
    call.end();
  });
  assert.deepEqual(response, { accepted_events: 1, rejected_events: 3 });
  assert.equal(f.audit.length, 1);
  const line = JSON.parse(f.audit[0]);
  assert.deepEqual(
    { ...line, time: undefined },
    {
      kind: "egret.verdict",
      time: undefined,
      pod: "shop/web-1",
      src: "198.18.1.10:40000",
      dst: "[2001:db8::7]:443",
      names: ["api.example.com"],
      protocol: "tls",
      sni: "evil.example.org",
      host: "",
      verdict: "deny",
      reason: "sni-unverified",
      policy: "shop/web-egress",
      rule: "#0",
      mode: "enforce",
      matched_name: "",
      instance: "",
      detail: "",
      evidence: "",
      cluster: "",
    },
  );
  assert.equal(line.time, "2026-01-02T03:04:05.000Z");
  const metrics = await f.service.metrics.registry.metrics();
  assert.match(metrics, /egret_control_verdicts_total\{verdict="deny",reason="sni-unverified",policy="shop\/web-egress",rule="#0",mode="enforce"\} 1/);
  assert.match(metrics, /egret_control_report_events_rejected_total\{cause="verdict"\} 1/);
  assert.match(metrics, /egret_control_report_events_rejected_total\{cause="time"\} 1/);
  assert.match(metrics, /egret_control_report_events_rejected_total\{cause="destination_ip"\} 1/);
  assert.match(metrics, /egret_control_report_events_dropped_by_filters_total 3/);
});

test("a SUBSCRIBE whose pod IPs do not match the pod is served by name and counted", async (t) => {
  const f = await fixture(t);
  const w = new WatchClient(await f.filterAddress(WEB), { ...WEB, ips: ["198.18.9.99"] });
  t.after(() => w.close());
  await eventually(() => w.responses.length >= 1, "the snapshot");
  assert.equal(w.selected, true);
  assert.match(await f.service.metrics.registry.metrics(), /egret_control_watch_identity_mismatches_total 1/);
  const ok = new WatchClient(await f.filterAddress(WEB), WEB);
  t.after(() => ok.close());
  await eventually(() => ok.responses.length >= 1, "the second snapshot");
  assert.match(await f.service.metrics.registry.metrics(), /egret_control_watch_identity_mismatches_total 1/);
});

test("a Lookup still waiting when control shuts down fails UNAVAILABLE, not a false NOT_FOUND", async (t) => {
  const f = await fixture(t);
  const client = createFilterClient(await f.filterAddress(WEB));
  t.after(() => client.close());
  const waiting = lookup(client, { source_ip: ipToBytes("198.18.1.10"), destination_ip: ipToBytes("203.0.113.77"), wait_ms: 30_000 }, 60_000);
  await eventually(() => f.service.lookups.pending === 1, "the Lookup to be waiting");
  const outcome = waiting.then(
    (r) => r,
    (err: grpc.ServiceError) => err,
  );
  await f.stop();
  const err = await outcome;
  assert.ok(err instanceof Error, `expected an error, got ${JSON.stringify(err)}`);
  assert.equal((err as grpc.ServiceError).code, grpc.status.UNAVAILABLE);
  assert.match(err.message, /EGRET_SHUTTING_DOWN/);
});

test("random Watch request sequences never take the server down", async (t) => {
  const fc = (await import("fast-check")).default;
  const f = await fixture(t);
  const client = createFilterClient(await f.filterAddress(WEB));
  t.after(() => client.close());
  const request = fc.record({
    type: fc.constantFrom("WATCH_REQUEST_TYPE_UNSPECIFIED", "WATCH_REQUEST_TYPE_SUBSCRIBE", "WATCH_REQUEST_TYPE_ACK", "WATCH_REQUEST_TYPE_NACK", 7 as unknown as "WATCH_REQUEST_TYPE_ACK"),
    pod_name: fc.constantFrom("", "web-1", "nope", "x".repeat(300)),
    pod_namespace: fc.constantFrom("", "shop", "other"),
    pod_ips: fc.array(fc.uint8Array({ maxLength: 17 }), { maxLength: 3 }),
    resume_epoch: fc.constantFrom("", "zzz"),
    resume_version: fc.nat(),
    response_version: fc.nat(),
    response_nonce: fc.string({ maxLength: 10 }),
    error_detail: fc.string({ maxLength: 10 }),
  });
  const allowed = new Set([grpc.status.FAILED_PRECONDITION, grpc.status.INVALID_ARGUMENT, grpc.status.CANCELLED, grpc.status.PERMISSION_DENIED]);
  await fc.assert(
    fc.asyncProperty(fc.array(request, { minLength: 1, maxLength: 5 }), async (requests) => {
      const call = client.Watch();
      const ended = new Promise<grpc.ServiceError | undefined>((resolve) => {
        call.on("error", (err: grpc.ServiceError) => resolve(err));
        call.on("end", () => resolve(undefined));
        call.on("data", () => undefined);
      });
      for (const r of requests) call.write(r);
      await new Promise((r) => setTimeout(r, 5));
      call.cancel();
      const err = await ended;
      if (err) assert.ok(allowed.has(err.code), `unexpected status ${err.code}: ${err.details}`);
    }),
    { numRuns: 60 },
  );
  // Still serving, and every stream was released.
  const w = new WatchClient(await f.filterAddress(WEB), WEB);
  t.after(() => w.close());
  await eventually(() => w.responses.length >= 1, "a snapshot after the fuzzing");
  await eventually(() => f.service.hub.streamCount === 1, "only the last stream to remain");
});
