// Shared helpers for the host tests: probe module paths, polling, a throwaway gRPC server, and a
// tiny wasm assembler for link-failure cases.
import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import { EnvoyHost, type Connection, type ConnectionOptions, type EnvoyHostOptions } from "../../src/host/index.js";

const root = fileURLToPath(new URL("../../../../", import.meta.url));
export const REPO_ROOT = root;
export const probePath = (name: string): string => `${root}filter/build/test/${name}.wasm`;
export const EGRET_WASM = `${root}filter/build/egret.wasm`;

/** Polls `check` until it returns a truthy value (or stops throwing); generous timeout. */
export async function eventually<T>(check: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 10_000, what = "condition"): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v) return v;
    } catch (e) { last = e; }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ""}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Creates a host on the probe module with `config` words; always closed by the caller's finally. */
export async function probeHost(config: string, extra: Partial<EnvoyHostOptions> = {}): Promise<EnvoyHost> {
  return EnvoyHost.create({ wasm: probePath("host_probe"), pluginConfig: config, concurrency: 2, ...extra });
}

/**
 * Opens a connection and waits for tcp_proxy's upstream connect, which completes on a later
 * event-loop turn as under Envoy (its connection-pool callback): the filter sees client bytes only
 * from then on. Resolves early if the connection closes instead (e.g. denied in new_connection).
 */
export async function openConnected(host: EnvoyHost, options: ConnectionOptions): Promise<Connection> {
  const c = host.openConnection(options);
  await Promise.race([c.whenUpstreamConnected, c.whenClosed]);
  return c;
}

/** Log messages of one VM that start with `prefix`. */
export function lines(host: EnvoyHost, prefix: string, vm?: string): string[] {
  return host.logs().filter((e) => (!vm || e.vm === vm) && e.message.startsWith(prefix)).map((e) => e.message);
}

// --- a raw-bytes gRPC test server ---------------------------------------------------------------

export type UnaryHandler = (msg: Buffer, md: grpc.Metadata) => { reply?: Buffer; error?: { code: number; details: string } };
export type StreamHandler = (call: grpc.ServerDuplexStream<Buffer, Buffer>) => void;

export async function startGrpcServer(handlers: { check?: UnaryHandler; watch?: StreamHandler }): Promise<{ address: string; server: grpc.Server; seen: { method: string; authority?: string; md: grpc.Metadata; msg?: Buffer }[] }> {
  const server = new grpc.Server();
  const ident = { requestSerialize: (b: Buffer) => b, requestDeserialize: (b: Buffer) => b, responseSerialize: (b: Buffer) => b, responseDeserialize: (b: Buffer) => b };
  const seen: { method: string; authority?: string; md: grpc.Metadata; msg?: Buffer }[] = [];
  server.addService({
    Check: { path: "/egret.test.Probe/Check", requestStream: false, responseStream: false, ...ident },
    Watch: { path: "/egret.test.Probe/Watch", requestStream: true, responseStream: true, ...ident },
  } as grpc.ServiceDefinition, {
    Check: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      seen.push({ method: "Check", authority: call.getHost(), md: call.metadata, msg: call.request });
      const r = handlers.check ? handlers.check(call.request, call.metadata) : { reply: Buffer.from("allow") };
      if (r.error) cb({ code: r.error.code, details: r.error.details } as grpc.ServiceError); else cb(null, r.reply);
    },
    Watch: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
      seen.push({ method: "Watch", authority: call.getHost(), md: call.metadata });
      if (handlers.watch) handlers.watch(call); else call.end();
    },
  });
  const port = await new Promise<number>((resolve, reject) => server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  return { address: `127.0.0.1:${port}`, server, seen };
}

// --- tiny wasm assembler (link tests) -----------------------------------------------------------

type Val = "i32" | "i64";
export interface ModuleSpec {
  imports?: { module: string; name: string; params: Val[]; results: Val[] }[];
  importGlobal?: { module: string; name: string };
  /** Exported functions; without `code` the body returns 0 (or nothing). `code` = raw instructions incl. the final 0x0b. */
  funcs?: { name: string; params: Val[]; results: Val[]; code?: number[] }[];
  exportMemory?: boolean;
}

const uleb = (n: number): number[] => { const out: number[] = []; do { let b = n & 0x7f; n >>>= 7; if (n) b |= 0x80; out.push(b); } while (n); return out; };
const str = (s: string): number[] => { const b = [...Buffer.from(s)]; return [...uleb(b.length), ...b]; };
const vt = (v: Val): number => (v === "i32" ? 0x7f : 0x7e);
const section = (id: number, body: number[]): number[] => [id, ...uleb(body.length), ...body];
const vec = (items: number[][]): number[] => [...uleb(items.length), ...items.flat()];

export function assemble(spec: ModuleSpec): Uint8Array {
  const types: number[][] = [];
  const typeOf = (p: Val[], r: Val[]): number => { types.push([0x60, ...uleb(p.length), ...p.map(vt), ...uleb(r.length), ...r.map(vt)]); return types.length - 1; };
  const imports = (spec.imports ?? []).map((i) => [...str(i.module), ...str(i.name), 0x00, ...uleb(typeOf(i.params, i.results))]);
  if (spec.importGlobal) imports.push([...str(spec.importGlobal.module), ...str(spec.importGlobal.name), 0x03, 0x7f, 0x00]);
  const funcs = spec.funcs ?? [];
  const funcTypes = funcs.map((f) => uleb(typeOf(f.params, f.results)));
  const nImportedFuncs = (spec.imports ?? []).length;
  const exports = funcs.map((f, i) => [...str(f.name), 0x00, ...uleb(nImportedFuncs + i)]);
  if (spec.exportMemory !== false) exports.push([...str("memory"), 0x02, 0x00]);
  const bodies = funcs.map((f) => {
    const code = f.code ?? (f.results.length ? [f.results[0] === "i32" ? 0x41 : 0x42, 0x00, 0x0b] : [0x0b]);
    const body = [0x00, ...code];
    return [...uleb(body.length), ...body];
  });
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, vec(types)),
    ...(imports.length ? section(2, vec(imports)) : []),
    ...section(3, vec(funcTypes)),
    ...section(5, vec([[0x00, 0x01]])),
    ...section(7, vec(exports)),
    ...section(10, vec(bodies)),
  ]);
}
