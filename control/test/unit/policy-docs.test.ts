// docs/policy.md is executable documentation: every ```yaml example must validate cleanly (no
// errors, no warnings), and the first example's `egret validate` / `egret explain` transcript must
// be exactly what the commands print.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { tmpdir } from "node:os";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { formatDiagnostic, loadPolicyText } from "../../src/policy/index.js";

const DOC = fileURLToPath(new URL("../../../../docs/policy.md", import.meta.url));
const BIN = fileURLToPath(new URL("../../../../bin/egret.js", import.meta.url));
const text = readFileSync(DOC, "utf8");
const yamlBlocks = [...text.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1]!);
const textBlocks = [...text.matchAll(/```text\n([\s\S]*?)```/g)].map((m) => m[1]!);

test("docs/policy.md has examples", () => {
  assert.ok(yamlBlocks.length >= 6, `${yamlBlocks.length} yaml examples`);
});

yamlBlocks.forEach((block, i) => {
  const title = /^(?:# (.*)\n)?[\s\S]*?\n {2}name: (\S+)/.exec(block);
  test(`docs example ${i + 1} (${title?.[2] ?? "?"}) is a valid policy with no warnings`, () => {
    const r = loadPolicyText(block, `docs/policy.md example ${i + 1}`);
    assert.deepEqual(r.diagnostics.map(formatDiagnostic), []);
    assert.equal(r.policies.length, 1);
  });
});

test("the transcript of the first example is what egret prints", () => {
  const transcript = textBlocks.find((b) => b.includes("$ egret explain"));
  assert.ok(transcript, "a text block with an egret explain transcript");
  const dir = mkdtempSync(join(tmpdir(), "egret-docs-"));
  try {
    writeFileSync(join(dir, "web-egress.yaml"), yamlBlocks[0]!);
    // Split into (command, expected output) pairs.
    const parts = transcript.split(/^\$ /m).filter(Boolean);
    assert.equal(parts.length, 2);
    for (const part of parts) {
      const [command, ...output] = part.split("\n");
      const args = command!.trim().split(/\s+/);
      assert.equal(args.shift(), "egret");
      const r = spawnSync(process.execPath, [BIN, ...args], { cwd: dir, encoding: "utf8" });
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stdout.trimEnd(), output.join("\n").trimEnd(), `output of: ${command}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
