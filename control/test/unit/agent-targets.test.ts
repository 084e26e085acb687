// Unit tests of the control replica list: fixed addresses, a headless Service re-resolved, and a
// failed resolution keeping the current replicas.
import { test } from "node:test";
import assert from "node:assert/strict";
import { ControlTargets } from "../../src/agent/control-targets.js";
import { parseHostPort } from "../../src/common/host-port.js";
import { silentLogger } from "../../src/common/log.js";

test("resolves a headless Service to every replica and follows changes", async () => {
  let answer: string[] | Error = ["10.0.0.1", "10.0.0.2"];
  const changes: string[][] = [];
  const t = new ControlTargets({
    addresses: ["192.0.2.9:9090"], service: "egret-control.egret-system.svc:9090", resolveEveryMs: 60_000, log: silentLogger(),
    onChange: (a) => changes.push(a),
    resolve: async () => { if (answer instanceof Error) throw answer; return answer; },
  });
  await t.start();
  t.stop();
  assert.deepEqual(changes, [["10.0.0.1:9090", "10.0.0.2:9090", "192.0.2.9:9090"]]);
  answer = ["10.0.0.2", "fd00::3"];
  await t.refresh();
  assert.deepEqual(changes.at(-1), ["10.0.0.2:9090", "192.0.2.9:9090", "[fd00::3]:9090"]);
  answer = new Error("SERVFAIL");
  await t.refresh();
  assert.equal(changes.length, 2, "a failed resolution changes nothing");
  await t.refresh();
  answer = ["10.0.0.2", "fd00::3"];
  await t.refresh();
  assert.equal(changes.length, 2, "same set, no change reported");
});

test("rejects malformed addresses with the flag named", () => {
  assert.deepEqual(parseHostPort("[fd00::1]:9090", "x"), { host: "fd00::1", port: 9090 });
  assert.throws(() => parseHostPort("egret-control", "control address"), /control address: "egret-control" is not host:port/);
  assert.throws(() => parseHostPort("h:70000", "control address"), /not host:port/);
  assert.throws(() => new ControlTargets({ addresses: [], resolveEveryMs: 1000, log: silentLogger(), onChange: () => {} }), /no control replica/);
});
