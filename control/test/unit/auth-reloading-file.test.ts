// The credentials files (agent and operator tokens) are re-read when they change; a broken edit or a
// file missing for a moment keeps what was in force.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ReloadingFile, tokenDigest, type ReloadOutcome } from "../../src/auth/reloading-file.js";

function parseLines(file: string): string[] {
  const text = readFileSync(file, "utf8");
  if (text.includes("broken")) throw new Error(`${file}: broken`);
  return text.split("\n").filter(Boolean);
}

test("re-read on change; a broken edit and a missing file keep the previous content; a bad start throws", (t) => {
  const dir = mkdtempSync(join(tmpdir(), "egret-reload-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, "tokens");
  writeFileSync(file, "a\n");
  const outcomes: ReloadOutcome<string[]>[] = [];
  const f = new ReloadingFile(file, parseLines, (o) => outcomes.push(o));
  assert.deepEqual(f.value, ["a"]);
  assert.equal(outcomes.length, 0, "an unchanged file is not re-read");

  writeFileSync(join(dir, "next"), "a\nbb\n");
  renameSync(join(dir, "next"), file);
  assert.deepEqual(f.value, ["a", "bb"]);
  assert.ok("value" in outcomes.at(-1)!);

  writeFileSync(file, "broken edit\n");
  assert.deepEqual(f.value, ["a", "bb"], "a broken edit keeps the previous tokens");
  assert.ok("error" in outcomes.at(-1)!);

  rmSync(file);
  assert.deepEqual(f.value, ["a", "bb"], "a file gone for a moment keeps the previous tokens");
  writeFileSync(file, "ccc\n");
  assert.deepEqual(f.value, ["ccc"], "it comes back");

  assert.throws(() => new ReloadingFile(join(dir, "absent"), parseLines), /ENOENT/);
});

test("tokens are kept by SHA-256 digest", () => {
  assert.equal(tokenDigest("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
});
