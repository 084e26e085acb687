import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";

const bin = fileURLToPath(new URL("../../../../bin/egret.js", import.meta.url));

test("egret version prints the package version", () => {
  const r = spawnSync(process.execPath, [bin, "version"], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^egret \d+\.\d+\.\d+\n$/);
});

test("egret with an unknown command exits 2 and lists the commands", () => {
  const r = spawnSync(process.execPath, [bin, "no-such-command"], { encoding: "utf8" });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /unknown command "no-such-command"/);
  assert.match(r.stderr, /version/);
});
