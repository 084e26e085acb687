// GET /debug/names on control's HTTP port: the names control holds for a pod (for one destination
// or all), and why; readable by loopback callers (kubectl port-forward) and by bearer tokens scoped
// to namespaces (--operator-token-file); everything else refused with the catalogue's codes.
import { test } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { IncomingMessage } from "node:http";
import { ControlFixture, egressPolicy, observation, observe } from "../support/control-harness.js";
import { LoopbackOrTokenAuth, parseOperatorTokens, OperatorTokenFileError } from "../../src/auth/operator-auth.js";
import { ControlError } from "../../src/control/errors.js";

const WEB = { name: "web-0", namespace: "shop", ips: ["10.1.0.7"], labels: { app: "web" } };
const OTHER = { name: "job-0", namespace: "batch", ips: ["10.1.0.8"], labels: { app: "job" } };
const SHOP_TOKEN = "shop-operator-token-0123456789";
const ALL_TOKEN = "cluster-operator-token-0123456789";

function fakeRequest(remoteAddress: string, authorization?: string): IncomingMessage {
  return { headers: authorization ? { authorization } : {}, socket: { remoteAddress } } as unknown as IncomingMessage;
}

test("operator access: loopback reads every namespace; a token only its namespaces; no credential or an unknown token is refused", () => {
  const fx = new ControlFixture([], {});
  try {
    const file = join(fx.dir, "operators");
    writeFileSync(file, `# operators\n${SHOP_TOKEN} shop,payments alice\n${ALL_TOKEN} *\n`);
    const auth = new LoopbackOrTokenAuth(file);
    assert.equal(auth.authorize(fakeRequest("127.0.0.1"), "batch").namespaces, "*");
    assert.equal(auth.authorize(fakeRequest("::ffff:127.0.0.1"), "batch").namespaces, "*");
    assert.equal(auth.authorize(fakeRequest("198.18.1.10", `Bearer ${SHOP_TOKEN}`), "shop").who, "alice");
    assert.equal(auth.authorize(fakeRequest("198.18.1.10", `Bearer ${ALL_TOKEN}`), "batch").namespaces, "*");
    const refused = (req: IncomingMessage, ns: string) => { try { auth.authorize(req, ns); return "allowed"; } catch (e) { return (e as ControlError).code; } };
    assert.equal(refused(fakeRequest("198.18.1.10"), "shop"), "EGRET_OPERATOR_UNAUTHENTICATED", "a pod without a token");
    assert.equal(refused(fakeRequest("198.18.1.10", "Bearer not-a-known-token-000000"), "shop"), "EGRET_OPERATOR_UNAUTHENTICATED");
    assert.equal(refused(fakeRequest("127.0.0.1", "Basic abc"), "shop"), "EGRET_OPERATOR_UNAUTHENTICATED", "a bad header is not excused by loopback");
    assert.equal(refused(fakeRequest("198.18.1.10", `Bearer ${SHOP_TOKEN}`), "batch"), "EGRET_OPERATOR_FORBIDDEN");
    // The file is re-read when it changes.
    writeFileSync(file, `${ALL_TOKEN} batch\n`);
    assert.equal(refused(fakeRequest("198.18.1.10", `Bearer ${SHOP_TOKEN}`), "shop"), "EGRET_OPERATOR_UNAUTHENTICATED");
    assert.equal(refused(fakeRequest("198.18.1.10", `Bearer ${ALL_TOKEN}`), "shop"), "EGRET_OPERATOR_FORBIDDEN");
    // Without a token file only loopback callers get in.
    assert.equal(new LoopbackOrTokenAuth().authorize(fakeRequest("127.0.0.1"), "shop").namespaces, "*");
  } finally { fx.cleanup(); }
});

test("operator token file errors name file:line and what to write", () => {
  assert.throws(() => parseOperatorTokens("short shop\n", "ops"), (e: Error) => e instanceof OperatorTokenFileError && /^ops:1: the token is shorter than 16 characters/.test(e.message));
  assert.throws(() => parseOperatorTokens(`${SHOP_TOKEN}\n`, "ops"), /ops:1: expected "TOKEN NAMESPACES \[WHO\]"/);
  assert.throws(() => parseOperatorTokens(`\n${SHOP_TOKEN} Shop_NS\n`, "ops"), /ops:2: "Shop_NS" is not a namespace name/);
  assert.throws(() => parseOperatorTokens(`${SHOP_TOKEN} a\n${SHOP_TOKEN} b\n`, "ops"), /ops:2: this token appears twice/);
});

test("GET /debug/names: the pod's names for an IP and why, every destination without ip=, and the refusals", async (t) => {
  const fx = new ControlFixture([WEB, OTHER], { "web.yaml": egressPolicy("web-egress", "shop", { app: "web" }, ["api.example.com"]) }, {},
    { httpListen: "127.0.0.1:0", operatorAuth: new LoopbackOrTokenAuth() });
  t.after(async () => { await fx.stop(); fx.cleanup(); });
  await fx.start();
  await observe(fx.address, [
    observation("10.1.0.7", "api.example.com", ["203.0.113.10"], 300),
    observation("10.1.0.7", "www.example.org", ["203.0.113.10", "203.0.113.11"], 60, { cname_chain: ["www.example.org.cdn.test"] }),
    observation("10.1.0.8", "other.example.net", ["203.0.113.10"], 300),
  ]);
  const base = `http://127.0.0.1:${fx.ports.httpPort}/debug/names`;
  const get = async (query: string, headers: Record<string, string> = {}) => {
    const r = await fetch(`${base}?${query}`, { headers });
    return { status: r.status, body: await r.json() as Record<string, any>, auth: r.headers.get("www-authenticate") };
  };
  // The test client is on loopback, as `kubectl port-forward` is.
  const one = await get("pod=shop/web-0&ip=203.0.113.10");
  assert.equal(one.status, 200, JSON.stringify(one.body));
  assert.ok(one.body.podIps.includes("10.1.0.7"));
  assert.deepEqual(one.body.policy, { watched: false }, "no sidecar watches it on this replica");
  const [api, www] = one.body.destinations[0].names;
  assert.deepEqual([api.name, api.evidence, api.cnameChain], ["api.example.com", "pod-dns", []]);
  assert.ok(api.expiresInSeconds > 250 && api.expiresInSeconds <= 300);
  assert.match(api.why, /^the pod asked for api\.example\.com and a trusted resolver answered with this address; valid for \d+ s more/);
  assert.deepEqual([www.name, www.cnameChain], ["www.example.org", ["www.example.org.cdn.test"]]);
  assert.match(www.why, /via CNAME www\.example\.org\.cdn\.test/);
  // Another pod's answers for the same IP are not this pod's evidence.
  assert.ok(!one.body.destinations[0].names.some((n: { name: string }) => n.name === "other.example.net"));
  // Every destination.
  const all = await get("pod=shop/web-0");
  assert.deepEqual(all.body.destinations.map((d: { ip: string }) => d.ip), ["203.0.113.10", "203.0.113.11"]);
  // Nothing held: says what that means.
  const none = await get("pod=shop/web-0&ip=198.51.100.1");
  assert.deepEqual(none.body.destinations, []);
  assert.match(none.body.none, /^no name: this pod's sidecar gets no name for 198\.51\.100\.1/);
  // Refusals, with the catalogue's codes.
  assert.deepEqual([(await get("pod=web-0")).status, (await get("pod=web-0")).body.code], [400, "EGRET_DEBUG_BAD_QUERY"]);
  assert.deepEqual([(await get("pod=shop/web-0&ip=nope")).status, (await get("pod=shop/web-0&ip=nope")).body.code], [400, "EGRET_DEBUG_BAD_QUERY"]);
  assert.deepEqual([(await get("pod=shop/nobody")).status, (await get("pod=shop/nobody")).body.code], [404, "EGRET_DEBUG_POD_UNKNOWN"]);
  const bad = await get("pod=shop/web-0", { authorization: "Bearer not-a-known-token-000000" });
  assert.deepEqual([bad.status, bad.body.code, bad.auth], [401, "EGRET_OPERATOR_UNAUTHENTICATED", 'Bearer realm="egret-control"']);
});
