// `npm start` without root: the demo's story replayed from corpus/demo (recorded by the project's
// mesh with `egret demo --record`) through simulate's path — DNS observer, control, egret.wasm.
// Each action must get the verdict the live demo shows for it.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { replayDemo } from "../../src/demo/replay.js";
import { REPO_ROOT } from "./helpers.js";

/** The live demo's verdicts (README), keyed by the action's words in control/src/demo/story.ts. */
const EXPECTED: Record<string, { verdict: string; reason: string; rule: string | null }> = {
  "HTTPS api.example.test": { verdict: "allow", reason: "allowed", rule: "partner-api" },
  "HTTPS storage.googleapis.test": { verdict: "allow", reason: "allowed", rule: "google-apis" },
  "HTTP evil.example.net": { verdict: "deny", reason: "denied-by-rule", rule: "no-evil" },
  "TLS evil.example.net + SNI api.example.test": { verdict: "deny", reason: "sni-unverified", rule: "partner-api" },
  "HTTP 198.19.2.60 (address never resolved)": { verdict: "deny", reason: "unattributed", rule: null },
  "plain HTTP api.example.test:80": { verdict: "deny", reason: "default-deny", rule: null },
  "HTTPS www.example.test": { verdict: "allow", reason: "would-deny", rule: null },
  "HTTPS bigquery.googleapis.test": { verdict: "allow", reason: "allowed", rule: "google-apis" },
};

test("the recorded demo replays to the live demo's verdicts, action by action", async () => {
  const { truth, replayed } = await replayDemo();
  assert.deepEqual(truth.actions.map((a) => a.what).sort(), Object.keys(EXPECTED).sort(), "the recording covers every action of the story");
  for (const { action, result } of replayed) {
    assert.ok(action.client, `${action.what}: the recorder saw the app connect`);
    assert.ok(result, `${action.what}: the capture holds the connection from ${action.client}`);
    const want = EXPECTED[action.what]!;
    assert.deepEqual({ verdict: result.verdict, reason: result.reason, rule: result.rule }, want, action.what);
    assert.equal(result.pod, action.pod);
  }
  const monitor = replayed.find((r) => r.action.what === "HTTPS www.example.test")!.result!;
  assert.equal(monitor.mode, "monitor");
  assert.equal(monitor.detail, "Enforce would deny: default-deny");
});

test("egret demo --replay prints the verdicts, labelled as a replay, and how to see it live", () => {
  const r = spawnSync(process.execPath, [`${REPO_ROOT}bin/egret.js`, "demo", "--replay"], { encoding: "utf8", timeout: 120_000 });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^REPLAY — not live/m);
  for (const reason of ["allowed", "denied-by-rule", "sni-unverified", "unattributed", "default-deny"]) assert.match(r.stdout, new RegExp(` ${reason} `));
  assert.match(r.stdout, / would-deny /);
  assert.match(r.stdout, /sudo scripts\/setup && sudo npm start/);
});

const NOBODY = 65534;
/** Why the non-root run cannot be tried here, or false. */
function nonRootSkip(): string | false {
  if (process.getuid?.() !== 0) return "needs root to switch to an unprivileged user (the test above covers the replay)";
  const probe = spawnSync(process.execPath, ["-e", `require("fs").accessSync(${JSON.stringify(`${REPO_ROOT}dist/control/src/cli/main.js`)})`], { uid: NOBODY, gid: NOBODY });
  return probe.status === 0 ? false : `uid ${NOBODY} cannot read this checkout (${REPO_ROOT}), so it cannot run egret from it`;
}

// As a user who is not root, `egret demo` cannot build the mesh: it says why, then replays.
test("egret demo as a non-root user explains and replays", { skip: nonRootSkip() }, () => {
  const r = spawnSync(process.execPath, [`${REPO_ROOT}bin/egret.js`, "demo"], { encoding: "utf8", timeout: 120_000, uid: NOBODY, gid: NOBODY });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /You are not root\./);
  assert.match(r.stdout, /REPLAY — not live: this machine cannot run the live mesh/);
  assert.match(r.stdout, / sni-unverified /);
});
