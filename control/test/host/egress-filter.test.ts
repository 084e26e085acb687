// The enforcement filter (filter/assembly/egress) in the Node proxy-wasm host with the built
// egret.wasm, against a scripted control service over real gRPC (egress-fixture.ts).
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  egressWorld, eventually, clientHello, httpRequest, pgStartup, connectRequest, sendByteByByte, mysqlGreeting,
  type World, type WorldOptions,
} from "./egress-fixture.js";
import type { Connection } from "../../src/host/index.js";

const POLICY = `
apiVersion: egret.dev/v1alpha1
kind: EgressPolicy
metadata: {name: web-egress, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  rules:
    - name: no-evil
      action: Deny
      to: {domains: [evil.example.com]}
    - name: api
      action: Allow
      to: {domains: [api.example.com]}
      ports: [{port: 443}]
    - name: watched
      action: Alert
      to: {domains: ["*.watched.example.org"]}
    - name: db
      action: Allow
      to: {domains: [pg.db.example.com]}
      protocols: [postgresql]
    - name: cache-block
      action: Allow
      to: {cidrs: [{cidr: 198.19.1.0/24}]}
      ports: [{port: 6379}]
`;

const CIDR_ONLY = `
apiVersion: egret.dev/v1alpha1
kind: EgressPolicy
metadata: {name: cidr, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  rules:
    - name: cache-block
      action: Allow
      to: {cidrs: [{cidr: 198.19.1.0/24, except: [198.19.1.128/25]}]}
      ports: [{port: 6379}, {port: 7000, endPort: 7010}]
`;

async function withWorld(o: WorldOptions, fn: (w: World) => Promise<void>): Promise<void> {
  const w = await egressWorld(o);
  try { await fn(w); } finally { await w.close(); }
}

/** Waits until the filter let tcp_proxy connect, or closed the connection. */
function settled(c: Connection): Promise<boolean> {
  return eventually(() => c.upstreamConnectRequested || c.closed, `connection to ${c.destination} to be decided`);
}

/** Like settled(), moving the manual clock so ticks run (Lookup retries, deadlines). */
function settledTicking(w: World, c: Connection): Promise<boolean> {
  return eventually(async () => { await w.tick(20); return c.upstreamConnectRequested || c.closed; }, `connection to ${c.destination} to be decided`);
}

test("CIDR and port rules decide in on_new_connection: allowed ones connect, others never send a SYN", () =>
  withWorld({ policy: CIDR_ONLY }, async (w) => {
    const ok = w.connect("198.19.1.12:6379");
    assert.equal(ok.upstreamConnectRequested, true);
    await ok.whenUpstreamConnected; // tcp_proxy connects on a later turn; the filter reads client bytes from then on
    ok.downstreamData(Buffer.from("PING\r\n"));
    assert.equal(ok.sentUpstream.toString(), "PING\r\n");
    assert.equal(w.connect("198.19.1.12:7005").upstreamConnectRequested, true, "port range");
    const wrongPort = w.connect("198.19.1.12:5432");
    assert.equal(wrongPort.upstreamConnectRequested, false);
    assert.equal(wrongPort.closed, true, "inside the block, wrong port: decided at once");
    // Outside the block (or in its except range) the address is unattributed. Whether the engine
    // first asks control for names (Lookup) or decides at once, no SYN may ever leave.
    for (const dst of ["198.19.1.200:6379", "198.19.2.1:6379"]) {
      const no = w.connect(dst);
      assert.equal(no.upstreamConnectRequested, false, dst);
      await settled(no);
      assert.equal(no.upstreamConnectRequested, false, dst);
      assert.equal(no.closed, true, dst);
    }
    const ev = await w.events(5);
    assert.deepEqual(ev.map((e) => [e.destination, e.verdict, e.reason, e.policy, e.rule]), [
      ["198.19.1.12:6379", "allow", "allowed", "shop/cidr", "cache-block"],
      ["198.19.1.12:7005", "allow", "allowed", "shop/cidr", "cache-block"],
      ["198.19.1.12:5432", "deny", "default-deny", "shop/cidr", ""],
      ["198.19.1.200:6379", "deny", "unattributed", "shop/cidr", ""],
      ["198.19.2.1:6379", "deny", "unattributed", "shop/cidr", ""],
    ]);
    assert.equal(w.metric("egret_connections_allow"), 2);
    assert.equal(w.metric("egret_connections_deny"), 3);
    assert.equal(w.metric("egret_decisions_unattributed"), 2);
  }));

test("a deny-by-name rule ahead of a CIDR rule makes unknown IPs ask control first (Lookup), then decide", () =>
  withWorld({ policy: POLICY }, async (w) => {
    const c = w.connect("198.19.1.12:6379");
    assert.equal(c.upstreamConnectRequested, false, "held in on_new_connection while Lookup runs");
    assert.equal(await settled(c), true);
    assert.equal(c.upstreamConnectRequested, true);
    assert.equal(w.control.lookups.length, 1);
    const [e] = await w.events(1);
    assert.equal(e!.verdict, "allow");
    assert.equal(e!.rule, "cache-block");
    assert.equal(w.metric("egret_holds_lookup"), 1);
    assert.equal(w.metric("egret_lookup_not_found"), 1);
  }));

test("allows a TLS connection whose SNI is the name the pod resolved to that IP", () =>
  withWorld({ policy: POLICY, resolutions: [["203.0.113.10", "api.example.com", 300]] }, async (w) => {
    const c = w.connect("203.0.113.10:443");
    assert.equal(c.upstreamConnectRequested, true, "known IP: no Lookup; connect while the ClientHello is awaited");
    await c.whenUpstreamConnected; // tcp_proxy connects on a later turn; the filter reads client bytes from then on
    const hello = clientHello("api.example.com", ["h2"]);
    c.downstreamData(hello);
    assert.equal(c.closed, false);
    assert.deepEqual(c.sentUpstream, hello, "held bytes are forwarded after the verdict");
    const [e] = await w.events(1);
    assert.deepEqual([e!.verdict, e!.reason, e!.rule, e!.protocol, e!.sni, e!.names], ["allow", "allowed", "api", "tls", "api.example.com", ["api.example.com"]]);
    assert.equal(w.control.lookups.length, 0);
  }));

test("denies a faked SNI or Host pointing at an allowed name the pod did not resolve to that IP", () =>
  withWorld({ policy: POLICY, resolutions: [["198.51.100.9", "other.example.net", 300], ["203.0.113.10", "api.example.com", 300]] }, async (w) => {
    // Each unsupported claim asks control once (it may have just learned the name), then denies.
    const tls = await w.open("198.51.100.9:443");
    tls.downstreamData(clientHello("api.example.com"));
    await eventually(() => tls.closed, "the TLS deny");
    assert.equal(tls.sentUpstream.length, 0, "no client byte reaches the upstream");
    const http = await w.open("198.51.100.9:443");
    http.downstreamData(httpRequest("api.example.com"));
    await eventually(() => http.closed, "the HTTP deny");
    assert.equal(http.sentUpstream.length, 0);
    // Two different Host headers (one allowed, one not): no single host to verify.
    const twoHosts = await w.open("203.0.113.10:443");
    twoHosts.downstreamData(Buffer.from("GET / HTTP/1.1\r\nHost: api.example.com\r\nHost: evil.example.com\r\n\r\n"));
    assert.equal(twoHosts.closed, true);
    assert.equal(twoHosts.sentUpstream.length, 0);
    const ev = await w.events(3);
    assert.deepEqual(ev.map((e) => [e.verdict, e.reason]), [["deny", "sni-unverified"], ["deny", "host-unverified"], ["deny", "host-unverified"]]);
    assert.equal(ev[0]!.sni, "api.example.com");
    assert.equal(ev[1]!.host, "api.example.com");
  }));

test("alert rules forward and report; protocol rules allow only the detected protocol", () =>
  withWorld({ policy: POLICY, resolutions: [["203.0.113.20", "x.watched.example.org", 300], ["203.0.113.30", "pg.db.example.com", 300]] }, async (w) => {
    const a = await w.open("203.0.113.20:80");
    a.downstreamData(httpRequest("x.watched.example.org"));
    assert.equal(a.closed, false);
    assert.ok(a.sentUpstream.length > 0);
    const pg = await w.open("203.0.113.30:5432");
    pg.downstreamData(pgStartup());
    assert.equal(pg.closed, false);
    const notPg = await w.open("203.0.113.30:5432");
    notPg.downstreamData(httpRequest("pg.db.example.com"));
    assert.equal(notPg.closed, true);
    const ev = await w.events(3);
    assert.deepEqual(ev.map((e) => [e.verdict, e.reason, e.rule, e.protocol]), [
      ["alert", "alert-by-rule", "watched", "http"],
      ["allow", "allowed", "db", "postgresql"],
      ["deny", "protocol-mismatch", "db", "http"],
    ]);
    assert.equal(w.metric("egret_connections_alert"), 1);
  }));

test("byte-at-a-time delivery: the verdict waits for the whole ClientHello and every byte is forwarded once", () =>
  withWorld({ policy: POLICY, resolutions: [["203.0.113.10", "api.example.com", 300], ["198.51.100.9", "other.example.net", 300]] }, async (w) => {
    const hello = clientHello("api.example.com", ["h2", "http/1.1"]);
    const c = await w.open("203.0.113.10:443");
    sendByteByByte(c, hello);
    assert.equal(c.closed, false);
    assert.deepEqual(c.sentUpstream, hello);
    const bad = await w.open("198.51.100.9:443");
    sendByteByByte(bad, clientHello("api.example.com"));
    await eventually(() => bad.closed, "the deny after the claim Lookup");
    assert.equal(bad.sentUpstream.length, 0);
    const ev = await w.events(2);
    assert.deepEqual(ev.map((e) => e.reason), ["allowed", "sni-unverified"]);
  }));

test("shared IP: a verified SNI picks one of the names; without a claim every candidate counts", () =>
  withWorld({ policy: POLICY, resolutions: [["203.0.113.50", "api.example.com", 300], ["203.0.113.50", "evil.example.com", 300]] }, async (w) => {
    const good = await w.open("203.0.113.50:443");
    good.downstreamData(clientHello("api.example.com"));
    const evil = await w.open("203.0.113.50:443");
    evil.downstreamData(clientHello("evil.example.com"));
    const none = await w.open("203.0.113.50:443");
    none.downstreamData(clientHello(""));
    assert.deepEqual([good.closed, evil.closed, none.closed], [false, true, true]);
    const ev = await w.events(3);
    assert.deepEqual(ev.map((e) => [e.verdict, e.rule, e.matched_name]), [
      ["allow", "api", "api.example.com"], ["deny", "no-evil", "evil.example.com"], ["deny", "no-evil", "evil.example.com"],
    ]);
    assert.deepEqual(ev[0]!.names.slice().sort(), ["api.example.com", "evil.example.com"]);
  }));

test("server-first protocols are judged on the first server bytes: a violation closes before they reach the client", () =>
  withWorld({
    policy: POLICY.replace("    - name: cache-block", "    - {name: mysql, action: Allow, to: {domains: [my.db.example.com]}, protocols: [mysql]}\n    - name: cache-block"),
    resolutions: [["203.0.113.30", "pg.db.example.com", 300], ["203.0.113.31", "my.db.example.com", 300]],
  }, async (w) => {
    const wrong = w.connect("203.0.113.30:3306"); // only postgresql is allowed to pg.db.example.com
    assert.equal(wrong.upstreamConnectRequested, true, "a protocol rule needs the bytes: connect and wait");
    await wrong.whenUpstreamConnected; // tcp_proxy connects on a later turn; the filter reads client bytes from then on
    wrong.upstreamData(mysqlGreeting());
    assert.equal(wrong.closed, true);
    assert.equal(wrong.sentDownstream.length, 0, "the greeting never reached the client");
    const right = await w.open("203.0.113.31:3306");
    right.upstreamData(mysqlGreeting());
    assert.equal(right.closed, false);
    assert.ok(right.sentDownstream.length > 0);
    const ev = await w.events(2);
    assert.deepEqual(ev.map((e) => [e.verdict, e.reason, e.rule, e.protocol]), [["deny", "protocol-mismatch", "db", "mysql"], ["allow", "allowed", "mysql", "mysql"]]);
    assert.equal(w.metric("egret_upstream_closes"), 1);
  }));

test("IPv6: resolutions, verdicts and reports work for v6 destinations", () =>
  withWorld({ policy: POLICY, resolutions: [["2001:db8::10", "api.example.com", 300]] }, async (w) => {
    const ok = await w.open("[2001:db8::10]:443");
    ok.downstreamData(clientHello("api.example.com"));
    assert.equal(ok.closed, false);
    const no = w.connect("[2001:db8::11]:443");
    await settled(no);
    assert.equal(no.closed, true);
    const ev = await w.events(2);
    assert.deepEqual(ev.map((e) => [e.destination, e.verdict, e.reason]), [["2001:db8::10:443", "allow", "allowed"], ["2001:db8::11:443", "deny", "unattributed"]]);
  }));

const GRACE = (grace: number) => `
apiVersion: egret.dev/v1alpha1
kind: EgressPolicy
metadata: {name: api-only, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  resolutionGraceSeconds: ${grace}
  rules:
    - {name: api, action: Allow, to: {domains: [api.example.com]}}
`;

test("expiry: once the TTL ran out (and no grace), the IP is no longer attributed to the name", () =>
  withWorld({ policy: GRACE(0), resolutions: [["203.0.113.10", "api.example.com", 10]] }, async (w) => {
    w.control.resolutions.clear(); // control forgets it too (expired there as well)
    const before = await w.open("203.0.113.10:443");
    before.downstreamData(clientHello("api.example.com"));
    assert.equal(before.closed, false);
    await eventually(async () => { await w.tick(20); return w.metric("egret_report_events_sent") >= 1; }, "the first batch answered"); // before the clock jumps: an unanswered batch is sent again
    await w.tick(11_000);
    const after = w.connect("203.0.113.10:443");
    await settled(after);
    assert.equal(after.closed, true);
    const ev = await w.events(2);
    assert.deepEqual(ev.map((e) => e.verdict), ["allow", "deny"]);
    assert.match(ev[1]!.reason, /unattributed|default-deny/);
  }));

test("grace: a policy's resolutionGraceSeconds keeps an expired resolution usable (apps reuse IPs)", () =>
  withWorld({ policy: GRACE(60), resolutions: [["203.0.113.10", "api.example.com", 10]] }, async (w) => {
    // 30 s pass with the network live (a Watch holder may re-subscribe and get control's state),
    // then control forgets the name: only the filter's own copy, within its grace, can allow.
    await w.tick(30_000);
    w.control.resolutions.clear();
    const c = await w.open("203.0.113.10:443");
    c.downstreamData(clientHello("api.example.com"));
    assert.equal(c.closed, false);
    await eventually(async () => { await w.tick(20); return w.metric("egret_report_events_sent") >= 1; }, "the first batch answered"); // before the clock jumps: an unanswered batch is sent again
    await w.tick(60_000);
    const late = w.connect("203.0.113.10:443");
    await settled(late);
    assert.equal(late.closed, true, "past TTL + grace");
    const ev = await w.events(2);
    assert.deepEqual(ev.map((e) => e.verdict), ["allow", "deny"]);
  }));

test("Monitor mode: what Enforce would deny is forwarded and reported as would-deny", () =>
  withWorld({ policy: POLICY.replace("spec:\n", "spec:\n  mode: Monitor\n"), resolutions: [["203.0.113.66", "evil.example.com", 300]] }, async (w) => {
    const c = await w.open("203.0.113.66:443");
    c.downstreamData(clientHello("evil.example.com"));
    assert.equal(c.closed, false);
    assert.ok(c.sentUpstream.length > 0);
    const [e] = await w.events(1);
    assert.deepEqual([e!.verdict, e!.rule, e!.mode], ["would-deny", "no-evil", "POLICY_MODE_MONITOR"]);
    assert.equal(w.metric("egret_connections_would_deny"), 1);
  }));

test("the race with an already-known IP: an SNI/Host control learns for that IP as the bytes arrive is allowed (no false deny)", () =>
  withWorld({ policy: POLICY, resolutions: [["198.51.100.20", "other.example.net", 300]], prepare: (c) => { c.lookupWaitCapMs = 30_000; } }, async (w) => {
    const expires = Number(w.clock.nowNs() / 1_000_000n) + 60_000;
    // TLS: the table knows the IP as other.example.net; the app just resolved api.example.com to it.
    const tls = w.connect("198.51.100.20:443");
    assert.equal(await settled(tls), true);
    tls.downstreamData(clientHello("api.example.com"));
    await eventually(() => w.control.lookups.length === 1, "the claim Lookup");
    assert.equal(w.control.lookups[0].claimed_name, "api.example.com");
    assert.equal(tls.closed, false, "held, not denied, while control is asked");
    assert.equal(tls.sentUpstream.length, 0, "client bytes held");
    w.control.addResolution("198.51.100.20", "api.example.com", expires);
    await eventually(() => tls.sentUpstream.length > 0 || tls.closed, "the TLS verdict");
    assert.equal(tls.closed, false);
    // HTTP: same race on a Host header (another already-known IP).
    w.control.addResolution("198.51.100.21", "other.example.net", expires, true);
    await eventually(() => w.metric("egret_watch_deltas") >= 2, "the delta in every VM");
    const http = w.connect("198.51.100.21:443");
    assert.equal(await settled(http), true);
    http.downstreamData(httpRequest("api.example.com"));
    await eventually(() => w.control.lookups.length === 2, "the second claim Lookup");
    w.control.addResolution("198.51.100.21", "api.example.com", expires);
    await eventually(() => http.sentUpstream.length > 0 || http.closed, "the HTTP verdict");
    assert.equal(http.closed, false);
    const ev = await w.events(2);
    assert.deepEqual(ev.map((e) => [e.verdict, e.reason, e.rule]), [["allow", "allowed", "api"], ["allow", "allowed", "api"]]);
    assert.equal(w.metric("egret_decisions_sni_unverified") + w.metric("egret_decisions_host_unverified"), 0);
  }));

test("default-deny names the policy whose mode decided it: the last Monitor policy (would-deny) or the last Enforce one (deny)", async () => {
  const monitorOnly = POLICY.replace("spec:\n", "spec:\n  mode: Monitor\n");
  const enforcing = `
apiVersion: egret.dev/v1alpha1
kind: EgressPolicy
metadata: {name: web-baseline, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  rules:
    - {name: status, action: Allow, to: {domains: [status.example.com]}}
`;
  for (const [policy, verdict, ref, mode] of [
    [monitorOnly, "would-deny", "web-egress", "POLICY_MODE_MONITOR"],
    [monitorOnly + "---\n" + enforcing, "deny", "web-baseline", "POLICY_MODE_ENFORCE"],
  ] as const) {
    await withWorld({ policy, resolutions: [["203.0.113.90", "other.example.net", 300]] }, async (w) => {
      const c = await w.open("203.0.113.90:443");
      c.downstreamData(clientHello("other.example.net"));
      const [e] = await w.events(1);
      assert.deepEqual([e!.verdict, e!.reason, e!.rule, e!.mode], [verdict, "default-deny", "", mode]);
      assert.match(e!.policy, new RegExp(`\\b${ref}$`), `attributed to ${ref}`);
    });
  }
});

test("the race: a connection to an IP control learns while the connection is held is allowed", () =>
  withWorld({ policy: GRACE(0), prepare: (c) => { c.lookupWaitCapMs = 30_000; } }, async (w) => {
    const c = w.connect("203.0.113.77:443");
    assert.equal(c.upstreamConnectRequested, false, "held");
    await eventually(() => w.control.lookups.length === 1, "the Lookup");
    assert.equal(w.control.lookups[0].wait_ms > 0, true);
    w.control.addResolution("203.0.113.77", "api.example.com", Number(w.clock.nowNs() / 1_000_000n) + 60_000);
    assert.equal(await settled(c), true);
    assert.equal(c.closed, false);
    c.downstreamData(clientHello("api.example.com"));
    assert.equal(c.closed, false);
    const [e] = await w.events(1);
    assert.deepEqual([e!.verdict, e!.names], ["allow", ["api.example.com"]]);
    assert.match(e!.detail, /^lookup held \d+ ms$/);
  }));

test("a pushed Watch delta releases a held connection without waiting for Lookup", () =>
  withWorld({ policy: GRACE(0), prepare: (c) => { c.lookupMode = "hang"; } }, async (w) => {
    const c = w.connect("203.0.113.78:443");
    await eventually(() => w.control.lookups.length === 1, "the Lookup");
    w.control.addResolution("203.0.113.78", "api.example.com", Number(w.clock.nowNs() / 1_000_000n) + 60_000, true);
    assert.equal(await settled(c), true);
    assert.equal(c.closed, false);
  }));

test("the filter enforces its own Lookup deadline: lookup-timeout, closed by default", () =>
  withWorld({ policy: GRACE(0), config: { lookupTimeoutMs: 250 }, prepare: (c) => { c.lookupMode = "hang"; } }, async (w) => {
    const c = w.connect("203.0.113.79:443");
    await eventually(() => w.control.lookups.length === 1, "the Lookup");
    await w.tick(200);
    assert.equal(c.closed, false, "still within the deadline");
    await w.tick(100);
    assert.equal(c.closed, true);
    assert.equal(c.upstreamConnectRequested, false);
    const [e] = await w.events(1);
    assert.deepEqual([e!.verdict, e!.reason], ["deny", "lookup-timeout"]);
    assert.equal(w.metric("egret_lookup_timeout"), 1);
  }));

test("control outage: the last tables keep deciding known IPs; unknown ones follow the failure mode; Watch reconnects and resumes", () =>
  withWorld({ policy: POLICY, resolutions: [["203.0.113.10", "api.example.com", 300]] }, async (w) => {
    w.control.lookupMode = "fail";
    w.control.refuseWatch = true;
    w.control.dropWatches();
    await eventually(() => w.metric("egret_watch_reconnects") >= 1, "the filter to notice the outage");
    const known = await w.open("203.0.113.10:443");
    known.downstreamData(clientHello("api.example.com"));
    assert.equal(known.closed, false, "decided from the last table");
    const unknown = w.connect("203.0.113.99:443");
    await settledTicking(w, unknown); // the failed Lookup is retried on ticks, then the failure mode decides
    assert.equal(unknown.closed, true);
    assert.ok(w.metric("egret_lookup_retries") >= 1);
    const ev = await w.events(2);
    const byDst = new Map(ev.map((e) => [e.destination, [e.verdict, e.reason]]));
    assert.deepEqual(byDst.get("203.0.113.10:443"), ["allow", "allowed"]);
    assert.deepEqual(byDst.get("203.0.113.99:443"), ["deny", "control-unavailable"]);
    // Control comes back: the filter re-subscribes with its resume point.
    w.control.refuseWatch = false;
    w.control.lookupMode = "answer";
    const subscribes = () => w.control.watchRequests.filter((r) => r.type === "WATCH_REQUEST_TYPE_SUBSCRIBE");
    const before = subscribes().length;
    await eventually(async () => { await w.tick(1000); return subscribes().length > before; }, "a new SUBSCRIBE");
    const resume = subscribes().at(-1);
    assert.equal(resume.resume_epoch, "test");
    assert.ok(resume.resume_version > 0);
    assert.equal(resume.pod_name, "web-0");
    assert.equal(resume.pod_namespace, "shop");
  }));

test("control outage: verdicts decided while Report fails stay buffered and reach control once it is back; overflow is counted", () =>
  withWorld({ policy: POLICY, resolutions: [["203.0.113.10", "api.example.com", 3600]], config: { reportBufferBytes: 4096, reportBatchSize: 1000 } }, async (w) => {
    w.control.refuseReport = true;
    const decide = async (n: number) => {
      for (let i = 0; i < n; i++) {
        const c = await w.open("203.0.113.10:443");
        c.downstreamData(clientHello("api.example.com"));
        c.downstreamClose();
      }
    };
    await decide(10);
    // Batches go out and fail while control is away: nothing may count as sent.
    for (let i = 0; i < 40; i++) { await w.tick(100); await new Promise((r) => setTimeout(r, 5)); }
    assert.equal(w.control.events.length, 0);
    assert.equal(w.metric("egret_report_events_sent"), 0, "a batch counts as sent only once control answered it");
    await decide(5);
    w.control.refuseReport = false;
    const ev = await eventually(async () => { await w.tick(100); return w.control.events.length >= 15 && w.metric("egret_report_events_sent") >= 15 && w.control.events; }, "the buffered verdicts after control came back");
    assert.equal(ev.length, 15, "every verdict once (no batch was answered twice)");
    assert.ok(ev.every((e) => e.verdict === "allow"));
    assert.equal(w.metric("egret_report_events_dropped"), 0);
    // Overflow while control is away: the buffer keeps what fits; the rest is counted and reported.
    w.control.refuseReport = true;
    await decide(60);
    const dropped = w.metric("egret_report_events_dropped");
    assert.ok(dropped > 0, "a 4 KiB buffer cannot hold 60 verdicts");
    for (let i = 0; i < 10; i++) { await w.tick(100); await new Promise((r) => setTimeout(r, 5)); }
    w.control.refuseReport = false;
    await eventually(async () => { await w.tick(100); return w.control.events.length >= 15 + 60 - dropped && w.control.droppedEvents >= dropped; }, "the kept verdicts and the dropped count");
    assert.equal(w.control.events.length, 15 + 60 - dropped);
    assert.equal(w.control.droppedEvents, dropped);
  }));

test("reconnect after a long control outage: Watch attempts stay at most ~5 s apart (small jittered backoff, capped), so a restarted control is found quickly", () =>
  withWorld({ policy: POLICY }, async (w) => {
    w.control.refuseWatch = true;
    w.control.dropWatches();
    await eventually(() => w.metric("egret_watch_reconnects") >= 2, "every VM to notice the outage");
    // Two minutes of (manual) outage in 100 ms steps, letting each attempt's refusal arrive.
    for (let t = 0; t < 120_000; t += 100) {
      await w.tick(100);
      await new Promise((r) => setTimeout(r, 1));
    }
    // One VM of the sidecar holds the Watch once ticks run (shared.ts) and retries alone; a
    // second VM may retry too until the first election settles.
    const times = w.control.refusedWatches.map((r) => r.at);
    const vms = 1;
    // Per VM: a handful of growing steps, then one attempt every 2.5–5 s (cap 5 s, next attempt b/2..b).
    assert.ok(times.length >= vms * (120_000 / 5_000 - 2), `attempts kept coming during the outage (${times.length})`);
    assert.ok(times.length <= 2 * (120_000 / 2_500 + 12), `attempts are spaced by the backoff, not a tight loop (${times.length})`);
    const gaps = times.slice(1).map((t, i) => t - times[i]!);
    // Slack for the refusal's round trip while the clock moves.
    assert.ok(Math.max(...gaps) <= 6_000, `no long silence between attempts: ${gaps.join(", ")} ms`);
    w.control.refuseWatch = false;
    const before = w.metric("egret_watch_snapshots");
    await eventually(async () => { await w.tick(100); return w.metric("egret_watch_snapshots") >= before + 1 && w.control.watchCount === 1; }, "the sidecar's Watch back after control returned");
  }));

test("failure mode open: with control unreachable, connections that need it are allowed (and reported as such)", () =>
  withWorld({ policy: GRACE(0), config: { failureMode: "open" }, prepare: (c) => { c.lookupMode = "fail"; } }, async (w) => {
    const c = w.connect("203.0.113.80:443");
    assert.equal(await settledTicking(w, c), true);
    assert.equal(c.closed, false);
    const [e] = await w.events(1);
    assert.deepEqual([e!.verdict, e!.reason], ["allow", "control-unavailable"]);
  }));

test("no snapshot yet: connections wait for it, then fail closed after startupWaitMs", () =>
  withWorld({ policy: CIDR_ONLY, noWait: true, config: { startupWaitMs: 1000 }, prepare: (c) => { c.refuseWatch = true; } }, async (w) => {
    const c = w.connect("198.19.1.12:6379");
    assert.equal(c.upstreamConnectRequested, false);
    await w.tick(500);
    assert.equal(c.closed, false);
    await w.tick(600);
    assert.equal(c.closed, true);
    assert.equal(w.metric("egret_holds_startup"), 1);
    assert.equal(w.metric("egret_decisions_control_unavailable"), 1);
  }));

test("no snapshot yet: a held connection proceeds as soon as the first snapshot arrives", () =>
  withWorld({ policy: CIDR_ONLY, noWait: true, config: { startupWaitMs: 60000 }, prepare: (c) => { c.refuseWatch = true; } }, async (w) => {
    const c = w.connect("198.19.1.12:6379");
    w.control.refuseWatch = false;
    await eventually(async () => { await w.tick(300); return c.upstreamConnectRequested; }, "the connection to proceed after the snapshot");
    assert.equal(c.closed, false);
  }));

test("forward proxy: the CONNECT target is the destination evaluated, not the proxy", () =>
  withWorld({ policy: POLICY.replace("    - name: cache-block", "    - {name: proxy-api, action: Allow, to: {domains: [api.example.com]}, ports: [{port: 8443}]}\n    - name: cache-block"), config: { forwardProxies: ["198.18.5.5:3128"] } }, async (w) => {
    const ok = w.connect("198.18.5.5:3128");
    assert.equal(ok.upstreamConnectRequested, true, "the proxy is connected; the request is held");
    await ok.whenUpstreamConnected; // tcp_proxy connects on a later turn; the filter reads client bytes from then on
    ok.downstreamData(connectRequest("api.example.com:8443"));
    assert.equal(ok.closed, false);
    const no = await w.open("198.18.5.5:3128");
    no.downstreamData(connectRequest("evil.example.com:443"));
    assert.equal(no.closed, true);
    const ev = await w.events(2);
    assert.deepEqual(ev.map((e) => [e.verdict, e.rule, e.names]), [["allow", "proxy-api", ["api.example.com"]], ["deny", "no-evil", ["evil.example.com"]]]);
  }));

test("rejects bad plugin configuration with a message naming the field", async () => {
  const { EnvoyHost } = await import("../../src/host/index.js");
  const { EGRET_WASM, CONTROL_CLUSTER } = await import("./egress-fixture.js");
  for (const [config, message] of [
    ["{}", /controlCluster/],
    [JSON.stringify({ controlCluster: CONTROL_CLUSTER, lookupTimeoutMs: -5 }), /lookupTimeoutMs/],
    [JSON.stringify({ controlCluster: CONTROL_CLUSTER, failureMode: "sometimes" }), /failureMode/],
    [JSON.stringify({ controlCluster: CONTROL_CLUSTER, forwardProxies: ["proxy:3128"] }), /forwardProxies\[0\]/],
    [JSON.stringify({ controlCluster: CONTROL_CLUSTER, lookupTimeout: 5 }), /unknown field "lookupTimeout"/],
    ["{not json", /invalid JSON/],
  ] as const) {
    // Envoy refuses the plugin when the canary's on_configure returns false; the log says why.
    await assert.rejects(
      EnvoyHost.create({ wasm: EGRET_WASM, pluginConfig: config, node: { name: "p", namespace: "n", instanceIps: ["10.0.0.1"] } }),
      (e: Error) => /on_configure returned false/.test(e.message) && message.test(e.message), config);
  }
});

test("memory stays flat over 30,000 decided connections once the GC reached steady state (no leak per connection)", () =>
  withWorld({ policy: POLICY, resolutions: [["203.0.113.10", "api.example.com", 86_400], ["198.51.100.9", "other.example.net", 86_400]], config: { reportBufferBytes: 65536 } }, async (w) => {
    const hello = clientHello("api.example.com");
    const bad = clientHello("evil.example.com");
    const round = async (n: number) => {
      for (let i = 0; i < n; i++) {
        const ok = await w.open("203.0.113.10:443");
        ok.downstreamData(hello);
        ok.downstreamClose();
        const no = await w.open("198.51.100.9:443");
        no.downstreamData(bad);
        const held = w.connect("198.19.1.12:6379"); // held for Lookup (deny-by-name rule ahead), then abandoned
        held.downstreamClose();
        if (i % 100 === 0) await w.tick(20); // report batches go out; ticks run
      }
    };
    const vm = w.host.workers[0]!;
    await round(5000); // 15,000 connections: the incremental GC settles on its working heap
    const before = vm.memory.buffer.byteLength;
    await round(5000);
    const after = vm.memory.buffer.byteLength;
    assert.equal(w.host.openConnections, 0, "every connection closed");
    assert.ok(after <= before, `wasm memory grew from ${before} to ${after} bytes`);
    assert.equal(w.host.vmStatus().filter((s) => s.failed).length, 0, "no VM trapped");
    assert.equal(w.metric("egret_connections_allow"), 10_000);
    assert.equal(w.metric("egret_decisions_sni_unverified"), 10_000);
    assert.equal(w.metric("egret_pending_connections"), 0, "abandoned holds are released");
  }));
