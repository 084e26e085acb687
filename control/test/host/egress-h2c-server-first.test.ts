// An h2c server that speaks first (issue #14): its connection preface (a SETTINGS frame, RFC 9113
// §3.4) may reach the filter before the client's first request, on an IP judged by names. Those
// server bytes are held, never passed, and the connection is judged by the request's :authority
// when it comes. Through the real egret.wasm in the Node host, whole and one byte at a time.
import { test } from "node:test";
import assert from "node:assert/strict";
import { egressWorld, eventually, sendByteByByte, type World } from "./egress-fixture.js";
import type { Connection } from "../../src/host/index.js";
import { H2_PREFACE, h2cRequest, h2Frame, requestBlock } from "../support/h2c.js";

const POLICY = `
apiVersion: egret.dev/v1alpha1
kind: EgressPolicy
metadata: {name: h2c, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  rules:
    - {name: api, action: Allow, to: {domains: [api.example.com]}}
`;
/** Shared: the pod resolved both names to it, only one is allowed: the verdict rests on the claim. */
const API = "198.18.5.10";
const SERVER_SETTINGS = h2Frame(4, 0, 0, Buffer.from([0, 3, 0, 0, 0, 100, 0, 4, 0, 1, 0, 0]));
const SETTINGS_ACK = h2Frame(4, 1, 0, Buffer.alloc(0));

async function withWorld(fn: (w: World) => Promise<void>): Promise<void> {
  const w = await egressWorld({ policy: POLICY, resolutions: [[API, "api.example.com", 300], [API, "evil.example.net", 300]] });
  try { await fn(w); } finally { await w.close(); }
}

async function serverFirst(w: World, authority: string, bbb: boolean, clientFirstBytes = 0): Promise<Connection> {
  const c = w.connect(`${API}:80`);
  c.upstreamConnected(); // tcp_proxy's upstream is up (a no-op when the host connects at once)
  const request = h2cRequest(requestBlock(authority));
  const send = (b: Buffer) => (bbb ? sendByteByByte(c, b) : c.downstreamData(b));
  if (clientFirstBytes > 0) send(request.subarray(0, clientFirstBytes));
  if (bbb) for (let i = 0; i < SERVER_SETTINGS.length && !c.closed; i++) c.upstreamData(SERVER_SETTINGS.subarray(i, i + 1));
  else c.upstreamData(SERVER_SETTINGS);
  assert.equal(c.closed, false, "the server's preface alone decides nothing");
  assert.equal(c.sentDownstream.length, 0, "and is not passed before a verdict");
  send(request.subarray(clientFirstBytes));
  await eventually(async () => { await w.tick(1); return c.closed || c.sentUpstream.length === request.length; }, "a verdict");
  return c;
}

test("h2c server speaks first: its SETTINGS are held, the request's :authority decides; twin allowed (and gets the held SETTINGS), attack denied", () =>
  withWorld(async (w) => {
    let n = 0;
    for (const bbb of [false, true]) {
      for (const clientFirst of [0, H2_PREFACE.length - 3, H2_PREFACE.length + 9]) {
        const twin = await serverFirst(w, "api.example.com", bbb, clientFirst);
        assert.equal(twin.closed, false, `twin (byte at a time: ${bbb}, client sent ${clientFirst} first)`);
        assert.equal(twin.sentDownstream.length, 0, "still held until the server's next bytes");
        twin.upstreamData(SETTINGS_ACK);
        assert.deepEqual(twin.sentDownstream, Buffer.concat([SERVER_SETTINGS, SETTINGS_ACK]), "then passed, once, in order");
        const attack = await serverFirst(w, "evil.example.net", bbb, clientFirst);
        assert.equal(attack.closed, true, "attack: another host on the shared IP");
        assert.equal(attack.sentDownstream.length, 0, "nothing of the server reached the app");
        n += 2;
      }
    }
    const ev = await w.events(n);
    assert.deepEqual([...new Set(ev.map((e) => `${e.verdict}/${e.reason}`))].sort(), ["allow/allowed", "deny/default-deny"]);
    assert.equal(w.metric("egret_h2_server_preface_held"), n);
  }));

test("h2c server speaks first (attack): server bytes that are not an HTTP/2 SETTINGS frame before a verdict still close the connection", () =>
  withWorld(async (w) => {
    for (const bytes of [Buffer.from("HTTP/1.1 200 OK\r\n\r\nhi"), h2Frame(0, 0, 1, Buffer.from("data")), h2Frame(4, 0, 1, Buffer.alloc(6)), h2Frame(4, 0, 0, Buffer.alloc(5))]) {
      const c = w.connect(`${API}:80`);
      c.upstreamConnected();
      c.downstreamData(H2_PREFACE);
      c.upstreamData(bytes);
      assert.equal(c.closed, true, bytes.subarray(0, 12).toString("hex"));
      assert.equal(c.sentDownstream.length, 0);
    }
    // A client that is not speaking h2c gets no holding either.
    const c = w.connect(`${API}:80`);
    c.upstreamConnected();
    c.downstreamData(Buffer.from("GET / HTTP/1.1\r\n"));
    c.upstreamData(SERVER_SETTINGS);
    assert.equal(c.closed, true);
  }));
