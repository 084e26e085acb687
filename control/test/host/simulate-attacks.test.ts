// `egret simulate` on the committed attack captures of issue #14 (control/test/fixtures/attacks/):
// each attack's connection must end denied and its benign twin's allowed, as a sidecar judges them
// (the filter's 2 s detection deadline, ticks at real capture times, the final verdict of each
// connection). The committed files must be exactly what scripts/make-attack-captures.mjs writes.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { simulateCapture } from "../../src/simulate/replay.js";
import { silentLogger } from "../../src/common/log.js";
import { attackCaptures, ATTACK_POLICY, ATTACK_PODS } from "./attack-captures.js";

const REPO = fileURLToPath(new URL("../../../../", import.meta.url));
const DIR = join(REPO, "control", "test", "fixtures", "attacks");
const BIN = join(REPO, "bin", "egret.js");

test("attack captures: the committed files are what scripts/make-attack-captures.mjs builds", () => {
  assert.equal(readFileSync(join(DIR, "policy.yaml"), "utf8"), ATTACK_POLICY);
  assert.equal(readFileSync(join(DIR, "pods.yaml"), "utf8"), ATTACK_PODS.trimStart());
  const expected = JSON.parse(readFileSync(join(DIR, "expected.json"), "utf8")) as Array<{ file: string; expect: string[] }>;
  const built = attackCaptures();
  assert.deepEqual(expected.map((e) => [e.file, e.expect]), built.map((c) => [`${c.name}.pcap`, c.expect]));
  for (const c of built) assert.ok(Buffer.from(readFileSync(join(DIR, `${c.name}.pcap`))).equals(Buffer.from(c.pcap)), `${c.name}.pcap is stale: run node scripts/make-attack-captures.mjs`);
});

for (const c of attackCaptures()) {
  test(`simulate ${c.name}: ${c.what} — the attack is denied, its twin allowed`, async () => {
    const r = await simulateCapture({
      policyPaths: [join(DIR, "policy.yaml")], podsFile: join(DIR, "pods.yaml"), capture: readFileSync(join(DIR, `${c.name}.pcap`)),
      log: silentLogger(),
    });
    assert.deepEqual(r.map((x) => x.verdict), c.expect, JSON.stringify(r.map((x) => [x.server, x.verdict, x.reason, x.decisions.map((d) => d.verdict)])));
  });
}

test("egret simulate --json prints every decision of a connection; the text line shows the final verdict", () => {
  const args = [BIN, "simulate", "--policy", join(DIR, "policy.yaml"), "--pods", join(DIR, "pods.yaml"), "--pcap", join(DIR, "f6-keepalive-second-host.pcap")];
  const json = spawnSync(process.execPath, [...args, "--json"], { encoding: "utf8" });
  assert.equal(json.status, 0, json.stderr);
  const lines = json.stdout.trim().split("\n").map((l) => JSON.parse(l) as { verdict: string; decisions: Array<{ verdict: string; host: string | null }> });
  assert.deepEqual(lines.map((l) => [l.verdict, l.decisions.map((d) => [d.verdict, d.host])]), [
    ["deny", [["allow", "api.example.com"], ["deny", "evil.example.net"]]],
    ["allow", [["allow", "api.example.com"]]],
  ]);
  const textOut = spawnSync(process.execPath, args, { encoding: "utf8" });
  assert.equal(textOut.status, 0, textOut.stderr);
  assert.match(textOut.stdout.split("\n")[0]!, /^DENY .* revised\(allow→deny\)$/);
});
