// Measures the resolution store's memory per entry (for the benchmark and the report):
// fills a store with `n` entries and reports the growth of V8 heap + ArrayBuffer memory.
//
// Workload (stated so the figure can be compared): pods of 1,000 entries each (n/1000 pods,
// IPv4 pod addresses 10.x.y.z), each entry a distinct destination IPv4 address with one name
// and, for one entry in four, a one-element CNAME chain; names are drawn from a pool of
// n × nameRatio distinct names (default 0.1: many pods resolve the same names; 1 = every entry
// a different name, the worst case), chains from a pool of n/100.
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { ResolutionStore } from "./store.js";

export interface StoreMemoryResult {
  entries: number;
  bytes: number;
  bytesPerEntry: number;
  pods: number;
  distinctNames: number;
}

function collect(): void {
  const g = (globalThis as { gc?: () => void }).gc;
  if (g) return g();
  setFlagsFromString("--expose-gc");
  (runInNewContext("gc") as () => void)();
}

function used(): number {
  collect();
  collect();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

export function measureStoreMemory(n: number, options: { nameRatio?: number } = {}): StoreMemoryResult {
  const perPod = 1000;
  const nameCount = Math.max(1, Math.floor(n * (options.nameRatio ?? 0.1)));
  const chainCount = Math.max(1, Math.floor(n / 100));
  // Names are built before the baseline so only the store's own copies count.
  // Flat strings (as decoded from protobuf), so V8 flattening ropes during the run cannot shrink
  // the baseline and hide the store's own cost.
  const names = JSON.parse(JSON.stringify(Array.from({ length: nameCount }, (_, i) => `svc-${i}.api${i % 97}.example.com`))) as string[];
  const chains = JSON.parse(JSON.stringify(Array.from({ length: chainCount }, (_, i) => [`edge-${i}.cdn.example.net`]))) as string[][];
  const ttl = 300;
  const before = used();
  const store = new ResolutionStore({
    limits: { maxEntriesPerPod: perPod, maxEntriesTotal: n + 1, maxTtlSeconds: 3600 },
  });
  const podIp = new Uint8Array(4);
  const answer = { ip: new Uint8Array(4), ttlSeconds: ttl };
  const obs = { queryName: "", cnameChain: [] as string[], answers: [answer], observedUnixMs: Date.now() };
  const noChain: string[] = [];
  for (let i = 0; i < n; i++) {
    const pod = Math.floor(i / perPod);
    podIp[0] = 10;
    podIp[1] = (pod >> 16) & 0xff;
    podIp[2] = (pod >> 8) & 0xff;
    podIp[3] = pod & 0xff;
    const dest = i + 1;
    answer.ip[0] = 100 + ((dest >>> 24) & 0x1f);
    answer.ip[1] = (dest >>> 16) & 0xff;
    answer.ip[2] = (dest >>> 8) & 0xff;
    answer.ip[3] = dest & 0xff;
    obs.queryName = names[(i * 7919) % nameCount];
    obs.cnameChain = i % 4 === 0 ? chains[i % chainCount] : noChain;
    store.record(podIp, obs);
  }
  const after = used();
  const size = store.size;
  if (size.entries !== n) throw new Error(`measureStoreMemory: stored ${size.entries} of ${n} entries`);
  const bytes = after - before;
  // Keep the store reachable until after the measurement.
  void store.size;
  return { entries: size.entries, bytes, bytesPerEntry: bytes / size.entries, pods: size.pods, distinctNames: size.names };
}
