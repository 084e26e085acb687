// Loads a filter/build/test/<name>.wasm unit-test harness (pure AssemblyScript, no proxy-wasm ABI)
// with the few imports the abort redirection needs, failing loudly on a trap.
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

export interface Harness {
  exports: Record<string, any>;
  memory: WebAssembly.Memory;
  u8(): Uint8Array;
  write(ptr: number, bytes: Uint8Array): void;
  read(ptr: number, len: number): Uint8Array;
  logs: string[];
}

export function loadHarness(name: string): Harness {
  const path = fileURLToPath(new URL(`../../../../filter/build/test/${name}.wasm`, import.meta.url));
  const mod = new WebAssembly.Module(readFileSync(path));
  const logs: string[] = [];
  let memory: WebAssembly.Memory | undefined;
  const imports: Record<string, Record<string, (...a: any[]) => unknown>> = {};
  for (const imp of WebAssembly.Module.imports(mod)) {
    if (imp.kind !== "function") continue;
    let fn: (...a: any[]) => unknown = () => 0;
    if (imp.name === "proxy_log") {
      fn = (_level: number, ptr: number, len: number) => {
        logs.push(Buffer.from(new Uint8Array(memory!.buffer, ptr, len)).toString("utf8"));
        return 0;
      };
    }
    (imports[imp.module] ??= {})[imp.name] = fn;
  }
  const inst = new WebAssembly.Instance(mod, imports as WebAssembly.Imports);
  const exports = inst.exports as Record<string, any>;
  memory = exports.memory as WebAssembly.Memory;
  if (typeof exports._start === "function") exports._start();
  const m = memory;
  return {
    exports,
    memory: m,
    logs,
    u8: () => new Uint8Array(m.buffer),
    write(ptr, bytes) {
      new Uint8Array(m.buffer).set(bytes, ptr);
    },
    read(ptr, len) {
      return new Uint8Array(m.buffer).slice(ptr, ptr + len);
    },
  };
}
