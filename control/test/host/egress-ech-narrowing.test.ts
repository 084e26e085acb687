// ECH narrowing by the pod's own HTTPS/SVCB answers (issue #14), through the real egret.wasm in the
// Node host, whole and one byte at a time. With the opt-in (`encryptedClientHello: Allow`), an ECH
// ClientHello whose outer SNI is a public name that this pod's HTTPS answers named for some of the
// destination IP's names is judged on those names only; any other outer SNI, or a public name from
// an answer for a name the IP was not resolved from, leaves the IP's every name to judge (and
// without the opt-in ECH stays unverifiable).
import { test } from "node:test";
import assert from "node:assert/strict";
import { egressWorld, eventually, sendByteByByte, type World, type WorldOptions } from "./egress-fixture.js";
import { tlsHello } from "../support/attack-bytes.js";

const ECH_POLICY = `
apiVersion: egret.dev/v1alpha1
kind: EgressPolicy
metadata: {name: ech, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  rules:
    - {name: browsers, action: Allow, to: {domains: [api.example.com]}, encryptedClientHello: Allow}
    - {name: other, action: Allow, to: {domains: [other.example.com]}}
`;
const NO_OPT_IN = ECH_POLICY.replace(", encryptedClientHello: Allow", "");

/** A shared IP: the pod resolved both names to it. Only api.example.com's HTTPS answer named front.example. */
const SHARED = "198.18.5.11";
/** Resolved only from other.example.com. */
const OTHER_ONLY = "198.18.5.12";
const RESOLVED: WorldOptions["resolutions"] = [[SHARED, "api.example.com", 300], [SHARED, "other.example.com", 300], [OTHER_ONLY, "other.example.com", 300]];

async function withWorld(policy: string, fn: (w: World) => Promise<void>, ech: Record<string, string[]> = { "api.example.com": ["front.example"] }): Promise<void> {
  const w = await egressWorld({ policy, resolutions: RESOLVED, prepare: (c) => { for (const [n, p] of Object.entries(ech)) c.setEchPublicNames(n, p); } });
  try { await fn(w); } finally { await w.close(); }
}

async function allowed(w: World, outerSni: string, dst: string, byteByByte: boolean): Promise<boolean> {
  const bytes = tlsHello({ names: [outerSni], ech: true });
  const c = w.connect(`${dst}:443`);
  if (byteByByte) sendByteByByte(c, bytes); else c.downstreamData(bytes);
  await eventually(async () => { await w.tick(1); return c.closed || c.sentUpstream.length === bytes.length; }, "a verdict");
  if (c.closed) assert.equal(c.sentUpstream.length, 0, "a denied connection forwards nothing");
  return !c.closed;
}

test("ECH narrowing: the outer SNI a pod's HTTPS answer named narrows a shared IP to that name (twin allowed); a faked public name or one from another name's answer is judged on every name (denied)", () =>
  withWorld(ECH_POLICY, async (w) => {
    for (const bbb of [false, true]) {
      const before = w.control.events.length;
      assert.equal(await allowed(w, "front.example", SHARED, bbb), true, "benign twin: front.example was named for api.example.com");
      assert.equal(await allowed(w, "Front.Example", SHARED, bbb), true, "the public name compares case-insensitively");
      assert.equal(await allowed(w, "evil-front.example", SHARED, bbb), false, "attack: a public name the pod never got from DNS");
      assert.equal(await allowed(w, "api.example.com", SHARED, bbb), false, "attack: an outer SNI naming an allowed name is not a public name");
      assert.equal(await allowed(w, "front.example", OTHER_ONLY, bbb), false, "attack: the IP was never resolved from a name whose answer named it");
      const ev = await w.events(before + 5);
      assert.deepEqual(ev.slice(before).map((e) => [e.verdict, e.reason, e.rule, e.names.join(",")]), [
        ["allow", "allowed", "browsers", "api.example.com"],
        ["allow", "allowed", "browsers", "api.example.com"],
        ["deny", "sni-unverified", "browsers", "other.example.com,api.example.com"],
        ["deny", "sni-unverified", "browsers", "other.example.com,api.example.com"],
        ["deny", "sni-unverified", "browsers", "other.example.com"],
      ]);
    }
    assert.equal(w.metric("egret_ech_narrowed"), 4);
  }));

test("ECH narrowing (attack): a public name from the answer for a name without the opt-in narrows to that name and is denied", () =>
  withWorld(ECH_POLICY, async (w) => {
    for (const bbb of [false, true]) assert.equal(await allowed(w, "other-front.example", SHARED, bbb), false);
    const ev = await w.events(2);
    assert.deepEqual(ev.map((e) => [e.verdict, e.reason]), [["deny", "sni-unverified"], ["deny", "sni-unverified"]]);
    assert.equal(w.metric("egret_ech_narrowed"), 0);
  }, { "api.example.com": ["front.example"], "other.example.com": ["other-front.example"] }));

test("ECH narrowing needs the opt-in: without encryptedClientHello: Allow a narrowed ECH hello stays unverifiable", () =>
  withWorld(NO_OPT_IN, async (w) => {
    for (const bbb of [false, true]) assert.equal(await allowed(w, "front.example", SHARED, bbb), false);
    const ev = await w.events(2);
    assert.deepEqual(ev.map((e) => [e.verdict, e.reason]), [["deny", "sni-unverified"], ["deny", "sni-unverified"]]);
    assert.equal(w.metric("egret_ech_narrowed"), 0);
  }));

test("ECH narrowing follows Watch: an HTTPS answer pushed as a delta narrows the next connection; its removal widens it again", () =>
  withWorld(ECH_POLICY, async (w) => {
    assert.equal(await allowed(w, "front.example", SHARED, false), false, "no HTTPS answer yet: every name is judged");
    w.control.setEchPublicNames("api.example.com", ["front.example"], true);
    await eventually(async () => { await w.tick(1); return allowed(w, "front.example", SHARED, false); }, "the delta narrows");
    w.control.setEchPublicNames("api.example.com", [], true);
    await eventually(async () => { await w.tick(1); return !(await allowed(w, "front.example", SHARED, false)); }, "the expired answer no longer narrows");
  }, {}));
