// Child process for bench/cases/65-propagation: one filter's Watch stream per pod (pods named
// p<i> in NAMESPACE at FIRST_IP + i), in their own process so that decoding deltas does not load the
// control service being measured.
//   node watchers.js ADDRESS NAMESPACE FIRST_IP N
// IPC: → {ready: true} once every stream has its snapshot; ← {cmd: "report"} → {arrivals: number[]}
// (pairs: upserted address as a 32-bit number, arrival time in ms since the epoch, µs precision).
import { performance } from "node:perf_hooks";
import { createFilterClient, ipToBytes, type WatchResponse } from "../../control/src/proto/index.js";

const [address = "", namespace = "", firstIp = "", countText = ""] = process.argv.slice(2);
const base = firstIp.split(".").map(Number);
const podIp = (i: number) => `${base[0]}.${base[1]}.${base[2]}.${base[3]! + i}`;
const count = Number(countText);
const clients = Array.from({ length: Math.min(count, 4) }, () => createFilterClient(address));
const arrivals: number[] = [];
let snapshots = 0;
const cancels: (() => void)[] = [];
for (let i = 0; i < count; i++) {
  const call = clients[i % clients.length]!.Watch();
  call.on("data", (r: WatchResponse) => {
    const at = performance.timeOrigin + performance.now();
    if (r.type === "WATCH_RESPONSE_TYPE_SNAPSHOT" && ++snapshots === count) process.send!({ ready: true });
    for (const u of r.upserts) {
      if (u.ip.length === 4) arrivals.push(((u.ip[0]! << 24) | (u.ip[1]! << 16) | (u.ip[2]! << 8) | u.ip[3]!) >>> 0, at);
    }
    call.write({ type: "WATCH_REQUEST_TYPE_ACK", response_version: r.version, response_nonce: r.nonce });
  });
  call.on("error", () => undefined);
  call.write({ type: "WATCH_REQUEST_TYPE_SUBSCRIBE", pod_name: `p${i}`, pod_namespace: namespace, pod_ips: [ipToBytes(podIp(i))], instance_id: `bench-${i}`, resume_epoch: "", resume_version: 0 });
  cancels.push(() => call.cancel());
}
process.on("message", (m: { cmd: string }) => {
  if (m.cmd === "report") process.send!({ arrivals });
});
process.on("disconnect", () => {
  for (const c of cancels) c();
  for (const c of clients) c.close();
  process.exit(0);
});
