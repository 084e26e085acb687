#!/usr/bin/env node
// Writes the attack captures of issue #14 (and their policy and pods file) to
// control/test/fixtures/attacks/, from the built test helpers (npm run build:control first).
// simulate-attacks.test.ts fails when the committed files differ from what this writes.
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const { attackCaptures, ATTACK_POLICY, ATTACK_PODS } = await import(join(root, "dist", "control", "test", "host", "attack-captures.js"));
const dir = join(root, "control", "test", "fixtures", "attacks");
mkdirSync(dir, { recursive: true });
writeFileSync(join(dir, "policy.yaml"), ATTACK_POLICY);
writeFileSync(join(dir, "pods.yaml"), ATTACK_PODS.trimStart());
const index = [];
for (const c of attackCaptures()) {
  writeFileSync(join(dir, `${c.name}.pcap`), c.pcap);
  index.push({ file: `${c.name}.pcap`, what: c.what, expect: c.expect });
}
writeFileSync(join(dir, "expected.json"), JSON.stringify(index, null, 2) + "\n");
console.log(`wrote ${index.length} captures to ${dir}`);
