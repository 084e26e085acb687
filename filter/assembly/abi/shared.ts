// Shared data and shared queues (reference/proxy-wasm.md §6.3, §6.4). Both are scoped by vm_id,
// which is "" for every Istio WasmPlugin: prefix keys and queue names.
import {
  proxy_get_shared_data, proxy_set_shared_data, proxy_register_shared_queue,
  proxy_resolve_shared_queue, proxy_enqueue_shared_queue, proxy_dequeue_shared_queue,
} from "./imports";
import { Status } from "./enums";
import { HostBytes, OUT_PTR, OUT_LEN, OUT_U32, toScratch, SCRATCH } from "./memory";

/** CAS of the value last read by getSharedData (pass it to setSharedData to update atomically). */
export let lastCas: u32 = 0;

/** Reads a shared value into `out`; NotFound when absent. Sets `lastCas`. */
export function getSharedData(key: string, out: HostBytes): Status {
  const n = toScratch(key);
  store<u32>(OUT_PTR, 0);
  store<u32>(OUT_LEN, 0);
  store<u32>(OUT_U32, 0);
  const st = <Status>proxy_get_shared_data(SCRATCH, n, OUT_PTR, OUT_LEN, OUT_U32);
  if (st == Status.Ok) { out.takeOut(); lastCas = load<u32>(OUT_U32); } else { out.release(); lastCas = 0; }
  return st;
}

/** Writes a shared value. cas 0 always writes; otherwise CasMismatch unless it is current. */
export function setSharedData(key: string, value: usize, valueLen: u32, cas: u32 = 0): Status {
  const n = toScratch(key);
  return <Status>proxy_set_shared_data(SCRATCH, n, value, valueLen, cas);
}

/** Registers (or re-registers) a queue; this VM's root then receives onQueueReady. 0 on failure. */
export function registerSharedQueue(name: string): u32 {
  const n = toScratch(name);
  return proxy_register_shared_queue(SCRATCH, n, OUT_U32) == Status.Ok ? load<u32>(OUT_U32) : 0;
}

/** Finds a queue registered by a VM with `vmId` ("" = own); 0 when it does not exist. */
export function resolveSharedQueue(vmId: string, name: string): u32 {
  const vm = String.UTF8.encode(vmId);
  const n = toScratch(name);
  return proxy_resolve_shared_queue(changetype<usize>(vm), vm.byteLength, SCRATCH, n, OUT_U32) == Status.Ok ? load<u32>(OUT_U32) : 0;
}

export function enqueueSharedQueue(token: u32, data: usize, len: u32): Status {
  return <Status>proxy_enqueue_shared_queue(token, data, len);
}

/** Takes the next item into `out`; Empty when there is none. */
export function dequeueSharedQueue(token: u32, out: HostBytes): Status {
  store<u32>(OUT_PTR, 0);
  store<u32>(OUT_LEN, 0);
  const st = <Status>proxy_dequeue_shared_queue(token, OUT_PTR, OUT_LEN);
  if (st == Status.Ok) out.takeOut(); else out.release();
  return st;
}
