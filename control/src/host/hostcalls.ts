// The host functions a VM imports, implemented like Envoy for a network filter
// (reference/proxy-wasm.md §1.2–§1.3, §3.6, §4, §5, §6, §8). Only the functions the module
// imports are built; linking has already checked names and signatures (link.ts).
import { BufferType, Errno, LOG_LEVEL_NAMES, Status, StreamType } from "./abi.js";
import { decodePairs } from "./pairs.js";
import { lookup, serialize, splitPath } from "./properties.js";
import { MemoryFault, RestrictedCallback, type WasmVm } from "./vm.js";
import type { WasmImport } from "./wasm-binary.js";
import { startGrpcCall, startGrpcStream, grpcSend, grpcClose, grpcCancel } from "./grpc-callouts.js";
import { startHttpCall, httpResponseMap } from "./http-callouts.js";
import { randomFillSync } from "node:crypto";

type HostFn = (...a: (number | bigint)[]) => number | void;

/** Hostcalls allowed while _start/_initialize run (CPPH WasmBase::startVm, §1.5). */
const ALLOWED_IN_START = new Set(["env.proxy_log", "env.emscripten_notify_memory_growth"]);
/** Hostcalls allowed while the host calls malloc (CPPH allocMemory). */
const ALLOWED_IN_MALLOC = new Set(["env.proxy_log", "wasi.fd_write", "wasi.clock_time_get", "wasi.poll_oneoff"]);

const n = (v: number | bigint): number => Number(v) >>> 0;

export function buildImports(vm: WasmVm, imports: WasmImport[]): WebAssembly.Imports {
  const env = envFunctions(vm);
  const wasi = wasiFunctions(vm);
  const out: Record<string, Record<string, unknown>> = {};
  for (const imp of imports) {
    if (imp.kind === "memory") {
      (out[imp.module] ??= {})[imp.name] = new WebAssembly.Memory({ initial: 2 });
      continue;
    }
    if (imp.kind !== "function") continue; // rejected earlier by link.ts
    const isWasi = imp.module !== "env";
    const impl = isWasi ? wasi[imp.name] : env[imp.name];
    const key = `${isWasi ? "wasi" : "env"}.${imp.name}`;
    const restrictedName = `${imp.module}.${imp.name}`;
    (out[imp.module] ??= {})[imp.name] = (...args: (number | bigint)[]) => {
      if (vm.phase === "start" && !isWasi && !ALLOWED_IN_START.has(key)) throw new RestrictedCallback(`restricted_callback: ${restrictedName} during _start`);
      if (vm.phase === "malloc" && !ALLOWED_IN_MALLOC.has(key)) throw new RestrictedCallback(`restricted_callback: ${restrictedName} during malloc`);
      if (!impl) return isWasi ? (/^(path|sock)_/.test(imp.name) ? Errno.Notsup : Errno.Nosys) : Status.Unimplemented;
      try {
        return impl(...args);
      } catch (e) {
        if (e instanceof MemoryFault) return isWasi ? Errno.Fault : Status.InvalidMemoryAccess;
        throw e;
      }
    };
  }
  return out as WebAssembly.Imports;
}

function envFunctions(vm: WasmVm): Record<string, HostFn> {
  const s = vm.services;
  const stream = () => vm.activeContext()?.connection;

  /** Source of a readable buffer for the active context (§3.6). */
  const bufferFor = (type: number): { status: number; data?: Buffer } => {
    if (type > 8) return { status: Status.BadArgument };
    switch (type) {
      case BufferType.DownstreamData:
      case BufferType.UpstreamData:
        return { status: Status.Ok, data: stream()?.liveBuffer(type) ?? Buffer.alloc(0) };
      case BufferType.HttpCallResponseBody:
        return vm.httpResponse ? { status: Status.Ok, data: vm.httpResponse.body } : { status: Status.NotFound };
      case BufferType.GrpcReceiveBuffer:
        return vm.grpcReceiveBuffer ? { status: Status.Ok, data: vm.grpcReceiveBuffer } : { status: Status.NotFound };
      case BufferType.VmConfiguration:
        return { status: Status.Ok, data: s.vmConfig };
      case BufferType.PluginConfiguration:
        return vm.pluginConfigReadable ? { status: Status.Ok, data: vm.pluginConfigReadable } : { status: Status.NotFound };
      default:
        return { status: Status.NotFound };
    }
  };

  const mapFor = (type: number): { status: number; pairs?: [Buffer, Buffer][] } => {
    if (type > 7) return { status: Status.BadArgument };
    if (type < 4) return { status: Status.BadArgument }; // no HTTP maps in a network filter
    if (vm.grpcMetadata && vm.grpcMetadata.type === type) return { status: Status.Ok, pairs: vm.grpcMetadata.pairs };
    const http = httpResponseMap(vm, type);
    if (http) return { status: Status.Ok, pairs: http };
    return { status: Status.Ok, pairs: [] }; // absent map → Ok, empty
  };

  return {
    proxy_log(level, ptr, len) {
      if (n(level) > 5) return Status.BadArgument;
      const message = vm.readString(n(ptr), n(len));
      if (n(level) >= s.logLevel) s.log({ vm: vm.name, level: n(level), message, contextId: vm.effectiveContextId || vm.currentContextId });
      return Status.Ok;
    },
    proxy_get_log_level(retPtr) { vm.writeU32(n(retPtr), s.logLevel); return Status.Ok; },
    proxy_get_status(codePtr, msgPtrPtr, msgLenPtr) {
      vm.writeU32(n(codePtr), vm.status.code);
      return vm.copyOut(Buffer.from(vm.status.message), n(msgPtrPtr), n(msgLenPtr));
    },
    proxy_get_current_time_nanoseconds(retPtr) { vm.writeU64(n(retPtr), s.clock.nowNs()); return Status.Ok; },
    proxy_set_tick_period_milliseconds(ms) { vm.setTickPeriod(n(ms)); return Status.Ok; },

    proxy_get_property(pathPtr, pathLen, valPtrPtr, valLenPtr) {
      const segments = splitPath(vm.read(n(pathPtr), n(pathLen)));
      const conn = stream();
      const fromConn = conn?.property(segments);
      if (fromConn !== undefined) return vm.copyOut(fromConn, n(valPtrPtr), n(valLenPtr));
      const v = lookup(s.rootProperties, segments);
      if (v === undefined) return Status.NotFound;
      return vm.copyOut(serialize(v), n(valPtrPtr), n(valLenPtr));
    },
    proxy_set_property(pathPtr, pathLen, valPtr, valLen) {
      const conn = stream();
      if (!conn) return Status.NotFound; // root contexts have no stream info
      const path = splitPath(vm.read(n(pathPtr), n(pathLen))).join(".");
      conn.setFilterState(path, vm.read(n(valPtr), n(valLen)));
      return Status.Ok;
    },

    proxy_get_buffer_status(type, lenPtr, flagsPtr) {
      const b = bufferFor(n(type));
      if (b.status !== Status.Ok) return b.status;
      vm.writeU32(n(lenPtr), b.data!.length);
      vm.writeU32(n(flagsPtr), 0); // Envoy never reports flags (§3.6)
      return Status.Ok;
    },
    proxy_get_buffer_bytes(type, start, maxLen, ptrPtr, lenPtr) {
      const b = bufferFor(n(type));
      if (b.status !== Status.Ok) return b.status;
      const data = b.data!;
      const from = Math.min(n(start), data.length);
      const to = Math.min(data.length, from + n(maxLen));
      return vm.copyOut(data.subarray(from, to), n(ptrPtr), n(lenPtr));
    },
    proxy_set_buffer_bytes(type, start, size, dataPtr, dataLen) {
      const t = n(type);
      if (t !== BufferType.DownstreamData && t !== BufferType.UpstreamData) return Status.BadArgument;
      const conn = stream();
      const cur = conn?.liveBuffer(t);
      if (!conn || !cur) return Status.BadArgument;
      const data = vm.read(n(dataPtr), n(dataLen));
      const st = n(start);
      if (st === 0) conn.replaceBuffer(t, Buffer.concat([data, cur.subarray(Math.min(n(size), cur.length))]));
      else if (st >= cur.length) conn.replaceBuffer(t, Buffer.concat([cur, data]));
      else return Status.BadArgument; // Envoy rejects edits in the middle (§3.6)
      return Status.Ok;
    },

    proxy_get_header_map_value(type, keyPtr, keyLen, valPtrPtr, valLenPtr) {
      const m = mapFor(n(type));
      if (m.status !== Status.Ok) return m.status;
      const key = vm.read(n(keyPtr), n(keyLen));
      const hit = m.pairs!.find(([k]) => k.equals(key));
      if (!hit) return Status.NotFound;
      return vm.copyOut(hit[1], n(valPtrPtr), n(valLenPtr));
    },
    proxy_get_header_map_pairs(type, ptrPtr, lenPtr) {
      const m = mapFor(n(type));
      if (m.status !== Status.Ok) return m.status;
      if (m.pairs!.length === 0) { vm.writeU32(n(ptrPtr), 0); vm.writeU32(n(lenPtr), 0); return Status.Ok; }
      const bytes = encodeRaw(m.pairs!);
      return vm.copyOut(bytes, n(ptrPtr), n(lenPtr));
    },
    proxy_get_header_map_size() { return Status.BadArgument; },
    proxy_add_header_map_value() { return Status.BadArgument; },
    proxy_replace_header_map_value() { return Status.BadArgument; },
    proxy_remove_header_map_value() { return Status.BadArgument; },
    proxy_set_header_map_pairs() { return Status.BadArgument; },
    proxy_send_local_response() { return Status.Ok; },

    proxy_continue_stream(type) {
      const t = n(type);
      if (t > 3) return Status.BadArgument;
      if (t === StreamType.Upstream) return Status.Unimplemented; // the write path has no resume (§3.5)
      if (t === StreamType.Downstream) {
        const conn = stream();
        if (conn) vm.defer(() => conn.requestContinue());
      }
      return Status.Ok;
    },
    proxy_close_stream(type) {
      const t = n(type);
      if (t > 3) return Status.BadArgument;
      const conn = stream();
      // Both network stream types close the downstream connection (§3.5).
      if (conn && t >= 2) vm.defer(() => conn.requestClose(t === 2 ? "wasm_downstream_close" : "wasm_upstream_close"));
      return Status.Ok;
    },
    proxy_set_effective_context(id) {
      if (!vm.contexts.has(n(id))) return Status.BadArgument;
      vm.effectiveContextId = n(id);
      return Status.Ok;
    },
    proxy_done() { return vm.rootDone(); },

    proxy_define_metric(type, namePtr, nameLen, idPtr) {
      const r = vm.metrics.define(n(type), vm.readString(n(namePtr), n(nameLen)));
      if (r.status === Status.Ok) vm.writeU32(n(idPtr), r.id!);
      return r.status;
    },
    proxy_increment_metric(id, delta) { return vm.metrics.increment(n(id), BigInt.asIntN(64, BigInt(delta))); },
    proxy_record_metric(id, value) { return vm.metrics.record(n(id), BigInt.asIntN(64, BigInt(value))); },
    proxy_get_metric(id, retPtr) {
      const r = vm.metrics.get(n(id));
      if (r.status === Status.Ok) vm.writeU64(n(retPtr), r.value!);
      return r.status;
    },

    proxy_get_shared_data(keyPtr, keyLen, valPtrPtr, valLenPtr, casPtr) {
      const e = s.sharedData.get(s.vmId, vm.readString(n(keyPtr), n(keyLen)));
      if (!e) return Status.NotFound;
      const st = vm.copyOut(e.value, n(valPtrPtr), n(valLenPtr));
      if (st === Status.Ok) vm.writeU32(n(casPtr), e.cas);
      return st;
    },
    proxy_set_shared_data(keyPtr, keyLen, valPtr, valLen, cas) {
      return s.sharedData.set(s.vmId, vm.readString(n(keyPtr), n(keyLen)), vm.read(n(valPtr), n(valLen)), n(cas));
    },
    proxy_register_shared_queue(namePtr, nameLen, tokenPtr) {
      const root = vm.activeRootId();
      const token = s.queues.register(s.vmId, vm.readString(n(namePtr), n(nameLen)), {
        alive: () => !vm.failed && vm.hasRoot(root),
        deliver: (t) => vm.defer(() => { vm.call("proxy_on_queue_ready", root, root, t); }),
      });
      vm.writeU32(n(tokenPtr), token);
      return Status.Ok;
    },
    proxy_resolve_shared_queue(vmIdPtr, vmIdLen, namePtr, nameLen, tokenPtr) {
      const vmId = vm.readString(n(vmIdPtr), n(vmIdLen)) || s.vmId;
      const token = s.queues.resolve(vmId, vm.readString(n(namePtr), n(nameLen)));
      if (token === undefined) return Status.NotFound;
      vm.writeU32(n(tokenPtr), token);
      return Status.Ok;
    },
    proxy_enqueue_shared_queue(token, dataPtr, dataLen) { return s.queues.enqueue(n(token), vm.read(n(dataPtr), n(dataLen))); },
    proxy_dequeue_shared_queue(token, ptrPtr, lenPtr) {
      const r = s.queues.dequeue(n(token));
      if (r.status !== Status.Ok) return r.status;
      return vm.copyOut(r.data!, n(ptrPtr), n(lenPtr));
    },

    proxy_grpc_call(upPtr, upLen, svcPtr, svcLen, mPtr, mLen, mdPtr, mdLen, msgPtr, msgLen, timeoutMs, tokenPtr) {
      const r = startGrpcCall(vm, {
        upstream: vm.read(n(upPtr), n(upLen)), service: vm.readString(n(svcPtr), n(svcLen)), method: vm.readString(n(mPtr), n(mLen)),
        metadata: decodePairs(vm.read(n(mdPtr), n(mdLen))), message: vm.read(n(msgPtr), n(msgLen)), timeoutMs: n(timeoutMs),
      });
      if (r.status === Status.Ok) vm.writeU32(n(tokenPtr), r.token!);
      return r.status;
    },
    proxy_grpc_stream(upPtr, upLen, svcPtr, svcLen, mPtr, mLen, mdPtr, mdLen, tokenPtr) {
      const r = startGrpcStream(vm, {
        upstream: vm.read(n(upPtr), n(upLen)), service: vm.readString(n(svcPtr), n(svcLen)), method: vm.readString(n(mPtr), n(mLen)),
        metadata: decodePairs(vm.read(n(mdPtr), n(mdLen))),
      });
      if (r.status === Status.Ok) vm.writeU32(n(tokenPtr), r.token!);
      return r.status;
    },
    proxy_grpc_send(token, msgPtr, msgLen, endStream) { return grpcSend(vm, n(token), vm.read(n(msgPtr), n(msgLen)), n(endStream) !== 0); },
    proxy_grpc_close(token) { return grpcClose(vm, n(token)); },
    proxy_grpc_cancel(token) { return grpcCancel(vm, n(token)); },

    proxy_http_call(upPtr, upLen, hdrPtr, hdrLen, bodyPtr, bodyLen, _trlPtr, _trlLen, timeoutMs, tokenPtr) {
      const r = startHttpCall(vm, {
        cluster: vm.readString(n(upPtr), n(upLen)), headers: decodePairs(vm.read(n(hdrPtr), n(hdrLen))),
        body: vm.read(n(bodyPtr), n(bodyLen)), timeoutMs: n(timeoutMs),
      });
      if (r.status === Status.Ok) vm.writeU32(n(tokenPtr), r.token!);
      return r.status;
    },
    proxy_call_foreign_function(namePtr, nameLen) {
      s.log({ vm: vm.name, level: 1, message: `foreign function ${vm.readString(n(namePtr), n(nameLen))} is not emulated`, host: true });
      return Status.NotFound;
    },
    envoy_resolve_dns() {
      s.log({ vm: vm.name, level: 3, message: "envoy_resolve_dns is not emulated by this host", host: true });
      return Status.Unimplemented;
    },
    pthread_equal(a, b) { return n(a) === n(b) ? 1 : 0; },
    emscripten_notify_memory_growth() { /* no-op, as in Envoy */ },
  };
}

function encodeRaw(pairs: [Buffer, Buffer][]): Buffer {
  const header = Buffer.alloc(4 + pairs.length * 8);
  header.writeUInt32LE(pairs.length, 0);
  const body: Buffer[] = [];
  pairs.forEach(([k, v], i) => { header.writeUInt32LE(k.length, 4 + i * 8); header.writeUInt32LE(v.length, 8 + i * 8); body.push(k, Buffer.of(0), v, Buffer.of(0)); });
  return Buffer.concat([header, ...body]);
}

/** WASI preview1 as Envoy implements it (§1.3): logging, clocks, random, environment; stubs else. */
function wasiFunctions(vm: WasmVm): Record<string, HostFn> {
  const s = vm.services;
  const env = Object.entries(s.environment).map(([k, v]) => Buffer.from(`${k}=${v}\0`));
  const fdWrite: HostFn = (fd, iovs, iovsLen, nwrittenPtr) => {
      const f = n(fd);
      if (f !== 1 && f !== 2) return Errno.Badf;
      const parts: Buffer[] = [];
      for (let i = 0; i < n(iovsLen); i++) {
        const iov = vm.read(n(iovs) + i * 8, 8);
        parts.push(vm.read(iov.readUInt32LE(0), iov.readUInt32LE(4)));
      }
      const all = Buffer.concat(parts);
      vm.writeU32(n(nwrittenPtr), all.length);
      const text = all.toString("utf8").replace(/\n$/, "");
      const level = f === 1 ? 2 : 4;
      if (level >= s.logLevel) s.log({ vm: vm.name, level, message: text, contextId: vm.currentContextId });
      return Errno.Success;
  };
  return {
    fd_write: fdWrite,
    fd_pwrite(fd, iovs, iovsLen, _offset, nwrittenPtr) { return fdWrite(fd, iovs, iovsLen, nwrittenPtr); },
    fd_read() { return Errno.Nosys; },
    fd_pread() { return Errno.Nosys; },
    fd_seek() { s.log({ vm: vm.name, level: 4, message: "wasi fd_seek is not supported", host: true }); return Errno.Success; },
    fd_close() { s.log({ vm: vm.name, level: 4, message: "wasi fd_close is not supported", host: true }); return Errno.Success; },
    fd_fdstat_get(fd, statPtr) {
      const f = n(fd);
      if (f !== 1 && f !== 2) return Errno.Badf;
      const st = Buffer.alloc(24);
      st.writeUInt8(2, 0); // character device
      vm.writeBytes(n(statPtr), st);
      return Errno.Success;
    },
    fd_fdstat_set_flags() { return Errno.Nosys; },
    fd_prestat_get() { return Errno.Badf; },
    fd_prestat_dir_name() { return Errno.Nosys; },
    fd_filestat_get() { return Errno.Badf; },
    path_open() { return Errno.Noent; },
    environ_sizes_get(countPtr, sizePtr) {
      vm.writeU32(n(countPtr), env.length);
      vm.writeU32(n(sizePtr), env.reduce((a, b) => a + b.length, 0));
      return Errno.Success;
    },
    environ_get(ptrsPtr, bufPtr) {
      let off = n(bufPtr);
      env.forEach((e, i) => { vm.writeU32(n(ptrsPtr) + i * 4, off); vm.writeBytes(off, e); off += e.length; });
      return Errno.Success;
    },
    args_sizes_get(countPtr, sizePtr) { vm.writeU32(n(countPtr), 0); vm.writeU32(n(sizePtr), 0); return Errno.Success; },
    args_get() { return Errno.Success; },
    clock_time_get(id, _precision, timePtr) {
      const c = n(id);
      if (c > 1) return Errno.Notsup;
      vm.writeU64(n(timePtr), c === 0 ? s.clock.nowNs() : s.clock.monotonicNs());
      return Errno.Success;
    },
    clock_res_get(_id, resPtr) { vm.writeU64(n(resPtr), 1n); return Errno.Success; },
    random_get(ptr, len) {
      if (n(len) > 65536) return Errno.Inval;
      const b = Buffer.alloc(n(len));
      randomFillSync(b);
      vm.writeBytes(n(ptr), b);
      return Errno.Success;
    },
    proc_exit() {
      // Envoy does not exit: it logs at trace level and returns (§1.3).
      s.log({ vm: vm.name, level: 0, message: "wasi_unstable proc_exit", host: true });
    },
    sched_yield() { return Errno.Success; },
    poll_oneoff(_in, _out, _nsubs, neventsPtr) { vm.writeU32(n(neventsPtr), 0); return Errno.Success; },
  };
}

export const logLevelName = (level: number): string => LOG_LEVEL_NAMES[level] ?? String(level);
