// Child process for bench/cases/65-propagation: one filter's Watch stream per pod (pods named
// p<i> in NAMESPACE at FIRST_IP + i), in their own process so that decoding deltas does not load the
// control service being measured. Each pod's stream reaches control from that pod's own address
// (SOURCE_FIRST + i, a loopback address the pods file gives the pod too), through a forwarder bound
// to it, as a sidecar connects from its pod: control binds every stream to its pod by address. (The
// forwarder is a userspace hop in this process that a sidecar does not have; grpc-js cannot bind a
// client's source address itself.)
//   node watchers.js ADDRESS NAMESPACE FIRST_IP N SOURCE_FIRST
// IPC: → {ready: true} once every stream has its snapshot; ← {cmd: "report"} → {arrivals: number[]}
// (pairs: upserted address as a 32-bit number, arrival time in ms since the epoch, µs precision).
import { performance } from "node:perf_hooks";
import { createFilterClient, ipToBytes, type WatchResponse } from "../../control/src/proto/index.js";
import { SourceBoundForwarder } from "../../control/src/host/upstream-bind.js";

const [address = "", namespace = "", firstIp = "", countText = "", sourceFirst = ""] = process.argv.slice(2);
const nth = (first: string, i: number) => {
  const b = first.split(".").map(Number);
  return `${b[0]}.${b[1]}.${b[2]}.${b[3]! + i}`;
};
const podIp = (i: number) => nth(firstIp, i);
const count = Number(countText);
// One connection per pod, from the pod's address (as many connections as sidecars).
const forwarders = await Promise.all(Array.from({ length: count }, (_, i) => SourceBoundForwarder.start(address, nth(sourceFirst, i))));
const clients = forwarders.map((f) => createFilterClient(f.address));
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
  for (const f of forwarders) f.close();
  process.exit(0);
});
