// Open connections and policy changes (issue #15): when the pod's policy changes, the filter in
// the built egret.wasm judges its open connections again on the facts it recorded (destination,
// names, protocol, claim), closes those now denied and reports them with the reason `revoked`;
// a Monitor policy only reports. The scripted control pushes the new policy as a Watch delta.
import { test } from "node:test";
import assert from "node:assert/strict";
import { egressWorld, eventually, clientHello, httpRequest, type World, type WorldOptions } from "./egress-fixture.js";
import type { Connection } from "../../src/host/index.js";

const HEAD = `
apiVersion: egret.dev/v1alpha1
kind: EgressPolicy
metadata: {name: web-egress, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
`;
const ALLOW_API = `
    - name: api
      action: Allow
      to: {domains: [api.example.com]}
      ports: [{port: 443}]`;
const ALLOW_CACHE = `
    - name: cache
      action: Allow
      to: {cidrs: [{cidr: 198.19.1.0/24}]}
      ports: [{port: 6379}]`;
const DENY_API = `
    - name: cut-api
      action: Deny
      to: {domains: [api.example.com]}`;

function policy(rules: string[], mode = "Enforce"): string {
  return `${HEAD}  mode: ${mode}\n  rules:${rules.join("")}\n`;
}

const BEFORE = policy([ALLOW_API, ALLOW_CACHE]);
const AFTER = policy([DENY_API, ALLOW_API, ALLOW_CACHE]);
const API = "203.0.113.10";

async function withWorld(o: WorldOptions, fn: (w: World) => Promise<void>): Promise<void> {
  const w = await egressWorld(o);
  try {
    // One VM holds the Watch and publishes for the others (shared.ts): pushes reach that stream.
    await eventually(() => { w.tick(50); return w.control.watchCount === 1 && w.host.sharedData(`egret.watch/${w.pod.namespace}/${w.pod.name}/head`) !== undefined; }, "one Watch stream for the sidecar");
    await fn(w);
  } finally { await w.close(); }
}

/** Pushes a new policy to the filter (a Watch delta carrying it) and lets every VM apply it. */
function pushPolicy(w: World, yaml: string): void {
  w.control.setPolicy(yaml, w.pod);
  w.control.pushDelta({ policy: true });
}

/** An allowed TLS connection to api.example.com, with its bytes forwarded. */
async function openApi(w: World): Promise<Connection> {
  const c = await w.open(`${API}:443`);
  c.downstreamData(clientHello("api.example.com"));
  assert.equal(c.closed, false);
  assert.ok(c.sentUpstream.length > 0);
  return c;
}

test("a new Deny closes the open connection it now denies, reported revoked with what it was judged on; others stay open", () =>
  withWorld({ policy: BEFORE, resolutions: [[API, "api.example.com", 300]] }, async (w) => {
    const api = await openApi(w);
    const cache = w.connect("198.19.1.12:6379");
    assert.equal(cache.upstreamConnectRequested, true);
    await cache.whenUpstreamConnected; // tcp_proxy connects on a later turn; the filter reads client bytes from then on
    cache.downstreamData(Buffer.from("PING\r\n"));
    await w.events(2);
    // The same policy again (a resnapshot, a delta with unchanged bytes): nothing is judged again.
    pushPolicy(w, BEFORE);
    await eventually(() => { w.tick(20); return w.metric("egret_watch_deltas") >= 1; }, "the unchanged policy applied");
    assert.equal(w.metric("egret_rejudged_connections"), 0);

    pushPolicy(w, AFTER);
    await eventually(() => { w.tick(20); return api.closed; }, "the revoked connection closed");
    assert.equal(api.closeInfo?.by, "filter");
    assert.equal(cache.closed, false, "still allowed by the new policy");
    cache.downstreamData(Buffer.from("PING\r\n"));
    assert.equal(cache.sentUpstream.toString(), "PING\r\nPING\r\n");
    const ev = await w.events(3);
    const e = ev[2]!;
    assert.deepEqual(
      [e.verdict, e.reason, e.rule, e.destination, e.names, e.matched_name, e.protocol, e.sni, e.detail],
      ["deny", "revoked", "cut-api", `${API}:443`, ["api.example.com"], "api.example.com", "tls", "api.example.com", "policy changed: denied-by-rule"]);
    assert.equal(w.metric("egret_decisions_revoked"), 1);
    assert.equal(w.metric("egret_connections_deny"), 1);
    assert.equal(w.metric("egret_rejudged_connections"), 2);
    // A new connection is simply denied by the new policy (decided, not revoked).
    const again = await w.open(`${API}:443`);
    again.downstreamData(clientHello("api.example.com"));
    assert.equal(again.closed, true);
    assert.equal((await w.events(4))[3]!.reason, "denied-by-rule");
  }));

test("re-judging uses the names recorded when the connection was decided, not the table of the moment", () =>
  withWorld({ policy: BEFORE, resolutions: [[API, "api.example.com", 30]] }, async (w) => {
    const api = await openApi(w);
    await w.events(1);
    // Control acknowledged the batch (a long tick must not find it unanswered and send it again).
    await eventually(() => { w.tick(20); return w.metric("egret_report_events_sent") >= 1; }, "the report acknowledged");
    // The resolution expires and control removes it; the connection, verified when it opened, stays.
    w.control.resolutions.delete(API);
    w.control.pushDelta({ removals: [API] });
    w.tick(60_000);
    pushPolicy(w, policy([ALLOW_API, ALLOW_CACHE, `
    - name: docs
      action: Allow
      to: {domains: [docs.example.com]}`]));
    await eventually(() => { w.tick(20); return w.metric("egret_rejudged_connections") >= 1; }, "the open connection judged again");
    assert.equal(api.closed, false, "still allowed on its recorded name");
    assert.equal(w.metric("egret_decisions_revoked"), 0);
    pushPolicy(w, AFTER);
    await eventually(() => { w.tick(20); return api.closed; }, "revoked on its recorded name");
    const e = (await w.events(2))[1]!;
    assert.deepEqual([e.reason, e.names, e.rule], ["revoked", ["api.example.com"], "cut-api"]);
  }));

test("Monitor only reports (would-deny, revoked) and keeps the connection; switching to Enforce then closes it", () =>
  withWorld({ policy: BEFORE, resolutions: [[API, "api.example.com", 300]] }, async (w) => {
    const api = await openApi(w);
    await w.events(1);
    pushPolicy(w, policy([DENY_API, ALLOW_API, ALLOW_CACHE], "Monitor"));
    const ev = await w.events(2);
    assert.deepEqual([ev[1]!.verdict, ev[1]!.reason, ev[1]!.rule, ev[1]!.mode], ["would-deny", "revoked", "cut-api", "POLICY_MODE_MONITOR"]);
    assert.equal(api.closed, false);
    const before = api.sentUpstream.length;
    api.downstreamData(Buffer.from("more"));
    assert.equal(api.sentUpstream.length, before + 4, "a Monitor revocation forwards as before");
    // The same Monitor verdict again (another unrelated change) is not reported twice.
    pushPolicy(w, policy([DENY_API, ALLOW_API], "Monitor"));
    await eventually(() => { w.tick(20); return w.metric("egret_rejudged_connections") >= 2; }, "judged again");
    pushPolicy(w, AFTER);
    await eventually(() => { w.tick(20); return api.closed; }, "closed once the policy enforces");
    const all = await w.events(3);
    assert.equal(all.length, 3, "allow, would-deny revoked, deny revoked");
    assert.deepEqual([all[2]!.verdict, all[2]!.reason, all[2]!.mode], ["deny", "revoked", "POLICY_MODE_ENFORCE"]);
  }));

test("a connection decided before its protocol was seen is kept while some protocol would pass, revoked once none does", () =>
  withWorld({ policy: BEFORE, resolutions: [[API, "api.example.com", 300]] }, async (w) => {
    const cache = w.connect("198.19.1.12:6379"); // decided in on_new_connection: no protocol detected
    assert.equal(cache.upstreamConnectRequested, true);
    await w.events(1);
    pushPolicy(w, policy([ALLOW_API, ALLOW_CACHE.replace("ports: [{port: 6379}]", "ports: [{port: 6379}]\n      protocols: [redis]")]));
    await eventually(() => { w.tick(20); return w.metric("egret_rejudged_connections") >= 1; }, "judged again");
    assert.equal(cache.closed, false, "redis would pass: the bytes that would tell are gone, so it is kept");
    pushPolicy(w, policy([ALLOW_API]));
    await eventually(() => { w.tick(20); return cache.closed; }, "revoked: no protocol passes now");
    const e = (await w.events(2))[1]!;
    assert.deepEqual([e.verdict, e.reason, e.protocol, e.names], ["deny", "revoked", "", []]);
    assert.match(e.detail, /^policy changed: (default-deny|unattributed)$/);
  }));

test("every worker VM re-judges its own connections (followers apply the policy from the shared Watch)", () =>
  withWorld({ policy: BEFORE, resolutions: [[API, "api.example.com", 300]], concurrency: 2 }, async (w) => {
    const conns = [await openApi(w), await openApi(w), await openApi(w), await openApi(w)];
    assert.deepEqual(new Set(conns.map((c) => c.vm)).size, 2, "connections on both workers");
    const http = await w.open(`${API}:443`);
    http.downstreamData(httpRequest("api.example.com"));
    assert.equal(http.closed, false);
    await w.events(5);
    pushPolicy(w, AFTER);
    await eventually(() => { w.tick(20); return conns.every((c) => c.closed) && http.closed; }, "every open connection revoked");
    const ev = (await w.events(10)).slice(5);
    assert.deepEqual(ev.map((e) => e.reason), Array(5).fill("revoked"));
    assert.deepEqual(ev.map((e) => e.host).filter(Boolean), ["api.example.com"], "the HTTP connection's recorded Host");
  }));

test("many open connections: one callback closes at most 256 (deferred closes nest in the host), the next ticks go on until every one is revoked", () =>
  withWorld({ policy: BEFORE, resolutions: [[API, "api.example.com", 300]] }, async (w) => {
    const conns = await Promise.all(Array.from({ length: 600 }, () => openApi(w)));
    pushPolicy(w, AFTER);
    const seen: number[] = [];
    await eventually(() => {
      w.tick(20); // at most one tick per VM each time
      const n = w.metric("egret_decisions_revoked");
      if (n > (seen.at(-1) ?? 0)) seen.push(n);
      return conns.every((c) => c.closed);
    }, "every connection revoked", 30_000);
    assert.equal(w.metric("egret_decisions_revoked"), 600);
    assert.ok(seen.length >= 2, `revoked over several callbacks, not all in one (progress: ${seen.join(", ")})`);
  }));
