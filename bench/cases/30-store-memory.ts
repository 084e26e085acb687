// Control's resolution store: bytes per entry at 1,000,000 entries, beside a naive store of the
// same workload (Map per pod: IP text → [{name, chain, expiry}]), each measured in its own fresh
// process so neither sees the other's garbage.
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { type BenchCase, type Figure } from "../harness.js";

const self = fileURLToPath(import.meta.url);

interface Measured { bytesPerEntry: number; entries: number; distinctNames?: number }

function inChild(kind: "store" | "naive", n: number, nameRatio: number): Measured {
  const r = spawnSync(process.execPath, ["--expose-gc", "--max-old-space-size=4096", self, kind, String(n), String(nameRatio)], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`${kind} measurement failed: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split("\n").pop()!) as Measured;
}

function naiveBytesPerEntry(n: number, nameRatio: number): Measured {
  const gc = (globalThis as { gc?: () => void }).gc!;
  const perPod = 1000;
  const nameCount = Math.max(1, Math.floor(n * nameRatio));
  const names = JSON.parse(JSON.stringify(Array.from({ length: nameCount }, (_, i) => `svc-${i}.api${i % 97}.example.com`))) as string[];
  const chains = JSON.parse(JSON.stringify(Array.from({ length: Math.max(1, Math.floor(n / 100)) }, (_, i) => [`edge-${i}.cdn.example.net`]))) as string[][];
  gc(); gc();
  const before = process.memoryUsage().heapUsed;
  const pods = new Map<string, Map<string, Array<{ name: string; chain: string[]; expiresMs: number }>>>();
  const now = Date.now();
  for (let i = 0; i < n; i++) {
    const pod = Math.floor(i / perPod);
    const podKey = `10.${(pod >> 16) & 0xff}.${(pod >> 8) & 0xff}.${pod & 0xff}`;
    let m = pods.get(podKey);
    if (!m) pods.set(podKey, (m = new Map()));
    const dest = i + 1;
    const ip = `${100 + ((dest >>> 24) & 0x1f)}.${(dest >>> 16) & 0xff}.${(dest >>> 8) & 0xff}.${dest & 0xff}`;
    m.set(ip, [{ name: names[(i * 7919) % nameCount], chain: i % 4 === 0 ? chains[i % chains.length] : [], expiresMs: now + 300_000 }]);
  }
  gc(); gc();
  const bytes = process.memoryUsage().heapUsed - before;
  void pods.size;
  return { bytesPerEntry: bytes / n, entries: n };
}

if (process.argv[2] === "store" || process.argv[2] === "naive") {
  const [kind, n, ratio] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4])];
  if (kind === "store") {
    const { measureStoreMemory } = await import("../../control/src/control/store-memory.js");
    process.stdout.write(JSON.stringify(measureStoreMemory(n, { nameRatio: ratio })) + "\n");
  } else {
    process.stdout.write(JSON.stringify(naiveBytesPerEntry(n, ratio)) + "\n");
  }
}

export const benchCase: BenchCase = {
  name: "control memory per resolution entry",
  async run(ctx) {
    const n = ctx.scale >= 1 ? 1_000_000 : 100_000;
    const figures: Figure[] = [];
    for (const ratio of [0.1, 1]) {
      const store = inChild("store", n, ratio);
      const naive = inChild("naive", n, ratio);
      figures.push({
        name: `bytes per entry at ${n.toLocaleString("en")} entries (distinct names = ${ratio * 100}% of entries)`,
        value: store.bytesPerEntry, unit: "B",
        baseline: { name: "naive Map store, same workload", value: naive.bytesPerEntry, unit: "B" },
        target: "≤ 150 B", meetsTarget: store.bytesPerEntry <= 150,
      });
    }
    return figures;
  },
};
