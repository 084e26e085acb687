// OpenedConnection reports (filter/assembly/egress/stream.ts goingUpstream/refreshCover,
// decision.ts reportOpened): the built egret.wasm tells control when Envoy may open an upstream
// connection no verdict report covers — a connection that goes upstream while its verdict waits
// for the client's first bytes (a silent client), and new client bytes on a decided connection
// long after its verdict (an HTTP chain's pool reconnecting). The node agent takes a SYN it cannot
// tie to either for a bypass (docs/operations.md "Bypass reports").
import { test } from "node:test";
import assert from "node:assert/strict";
import { egressWorld, eventually, httpRequest, type World } from "./egress-fixture.js";

/** Advances the clock in small steps (report flushes travel over real gRPC) until `fn` holds. */
const until = (w: World, fn: () => boolean, what: string) => eventually(async () => (await w.tick(20), fn()), what);

const POLICY = `
apiVersion: egret.dev/v1alpha1
kind: EgressPolicy
metadata: {name: web-egress, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  rules:
    - name: cache
      action: Allow
      to: {cidrs: [{cidr: 198.19.1.0/24}]}
      ports: [{port: 6379}]
    - name: api
      action: Allow
      to: {domains: [api.example.com]}
`;

test("a connection that goes upstream before its verdict is reported as opened at once; new bytes long after the verdict renew it, at most once a second", async () => {
  const w = await egressWorld({ policy: POLICY, resolutions: [["203.0.113.10", "api.example.com", 3600]], config: { detectTimeoutMs: 60_000 } });
  try {
    // A silent client: the destination is known (no Lookup), the verdict waits for its bytes;
    // once it waited 250 ms the filter reports the connection opened, stamped when it went upstream.
    const c = w.connect("203.0.113.10:80");
    const wentUpstreamAt = Number(w.clock.nowNs() / 1_000_000n);
    assert.equal(c.upstreamConnectRequested, true, "tcp_proxy connects while the request is awaited");
    const opened = w.control.opened;
    await until(w, () => opened.length >= 1, "the opened entry");
    assert.deepEqual(opened.map((o) => [o.source, o.destination]), [["10.1.0.7", "203.0.113.10:80"]], "reported before any verdict");
    assert.equal(opened[0]!.time, wentUpstreamAt);
    assert.equal(w.control.events.length, 0, "no verdict yet: the client sent nothing");
    assert.ok(w.metric("egret_report_opened_connections") >= 1);

    // The client speaks 30 s later: the verdict is reported (it covers that moment itself).
    await w.tick(30_000);
    c.downstreamData(httpRequest("api.example.com"));
    const [e] = await w.events(1);
    assert.deepEqual([e!.verdict, e!.rule], ["allow", "api"]);
    assert.equal(opened.length, 1, "the verdict itself covers the bytes that decided it");

    // A later request right away: the verdict is fresh, nothing more to say.
    c.downstreamData(httpRequest("api.example.com", "/2"));
    await w.tick(50);
    assert.equal(opened.length, 1, "bytes within a second of the last cover add nothing");

    // A request on the kept-alive connection a minute later may make Envoy reconnect: renewed.
    await w.tick(60_000);
    c.downstreamData(httpRequest("api.example.com", "/3"));
    await until(w, () => opened.length >= 2, "the renewed entry");
    assert.deepEqual(opened.map((o) => o.destination), ["203.0.113.10:80", "203.0.113.10:80"]);
    assert.ok(opened[1]!.time - opened[0]!.time >= 90_000, "stamped with the filter's clock when the bytes came");
  } finally {
    await w.close();
  }
});

test("connections decided in on_new_connection, held for a Lookup, or whose client speaks at once send no opened entry (the verdict or the Lookup covers them)", async () => {
  const w = await egressWorld({ policy: POLICY, resolutions: [["203.0.113.10", "api.example.com", 3600]] });
  try {
    const cidr = w.connect("198.19.1.5:6379");
    assert.equal(cidr.upstreamConnectRequested, true);
    const [e] = await w.events(1);
    assert.deepEqual([e!.verdict, e!.rule], ["allow", "cache"]);
    // A client that speaks at once: the verdict is reported right away and covers the SYN.
    const quick = w.connect("203.0.113.10:80");
    quick.downstreamData(httpRequest("api.example.com"));
    await w.events(2);
    await w.tick(1_000);
    const unknown = w.connect("203.0.113.77:443");
    await until(w, () => w.control.lookups.length === 1, "an unknown address is looked up (control covers it from the Lookup)");
    await w.tick(6_000);
    assert.ok(unknown.closed || unknown.upstreamConnectRequested);
    assert.deepEqual(w.control.opened, [], "nothing the verdict or the Lookup already says");
  } finally {
    await w.close();
  }
});
