// scripts/record-corpus on this machine: the corpus recorder starts every real server of the
// corpus world (PostgreSQL … RabbitMQ, memcached) in the mesh, runs every client once and writes
// a capture whose detected protocols agree with what each client spoke — so a fresh machine set
// up by scripts/setup can re-record corpus/protocols, and a package missing from
// scripts/apt-packages.txt fails here with its name instead of only when someone re-records.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { recordCorpus } from "../../src/corpus/record.js";
import { loadWorld } from "../../src/mesh/world.js";
import { meshUnavailableReason } from "../../src/mesh/netns.js";
import { detectCapture } from "../../src/detect/capture-detect.js";
import { DetectorEngine } from "../../src/detect/wasm-detector.js";

const world = loadWorld(fileURLToPath(new URL("../../../../corpus/protocols/world.yaml", import.meta.url)));
const skip = await meshUnavailableReason("egR");
if (skip) console.log(`# corpus-record: skipped — ${skip}`);

test("corpus recorder: every client reaches its real server, and each recorded connection is detected as what its client spoke", { skip, timeout: 400_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), "egret-corpus-record-"));
  try {
    const truth = await recordCorpus(dir, world, () => {});
    const committed = JSON.parse(readFileSync(fileURLToPath(new URL("../../../../corpus/protocols/truth.json", import.meta.url)), "utf8")) as typeof truth;
    assert.deepEqual(truth.connects.map((c) => `${c.client} ${c.server} ${c.protocol}`), committed.connects.map((c) => `${c.client} ${c.server} ${c.protocol}`), "the same clients as the committed corpus");
    const result = detectCapture(readFileSync(join(dir, "capture.pcap")), new DetectorEngine());
    for (const c of truth.connects) {
      const found = result.connections.filter((d) => d.server === c.server && d.client.startsWith(`${truth.podIp}:`));
      assert.equal(found.length, 1, `${c.command}: one connection to ${c.server}`);
      assert.equal(found[0]!.protocol, c.protocol, `${c.command} (${c.variant ?? ""})`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
