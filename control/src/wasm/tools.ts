// Loads the built egret.wasm outside Envoy so the CLI and the control service run the very same
// compiled code as the filter (policy engine, detectors) through its pure "tool" exports
// (filter/assembly/tools/). Proxy-wasm imports are satisfied with inert stubs: tool exports never
// call them. The full Envoy emulation lives in ../host/.
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

export const EGRET_WASM = fileURLToPath(new URL("../../../../filter/build/egret.wasm", import.meta.url));
export const EGRET_DEBUG_WASM = fileURLToPath(new URL("../../../../filter/build/egret.debug.wasm", import.meta.url));

export interface ToolModule {
  readonly exports: Record<string, unknown>;
  readonly memory: WebAssembly.Memory;
  /** A fresh view of wasm memory (views detach when memory grows). */
  u8(): Uint8Array;
  /** Calls an exported function by name, failing clearly when the build lacks it. */
  fn<T extends (...a: never[]) => unknown>(name: string): T;
}

const moduleCache = new Map<string, WebAssembly.Module>();

export function compileEgretWasm(path = EGRET_WASM): WebAssembly.Module {
  let mod = moduleCache.get(path);
  if (!mod) {
    let bytes: Buffer;
    try {
      bytes = readFileSync(path);
    } catch {
      throw new Error(`cannot read ${path}: build the filter first (npm run build)`);
    }
    mod = new WebAssembly.Module(new Uint8Array(bytes));
    moduleCache.set(path, mod);
  }
  return mod;
}

/** Instantiates egret.wasm with stub imports; each call gives an independent instance. */
export function instantiateTools(path = EGRET_WASM): ToolModule {
  const mod = compileEgretWasm(path);
  const imports: Record<string, Record<string, (...a: unknown[]) => unknown>> = {};
  for (const imp of WebAssembly.Module.imports(mod)) {
    if (imp.kind !== "function") continue;
    (imports[imp.module] ??= {})[imp.name] = imp.name === "proxy_log" ? () => 0 : () => 12; // Unimplemented
  }
  const instance = new WebAssembly.Instance(mod, imports as WebAssembly.Imports);
  const exports = instance.exports as Record<string, unknown>;
  const memory = exports.memory as WebAssembly.Memory;
  if (typeof exports._start === "function") (exports._start as () => void)();
  return {
    exports,
    memory,
    u8: () => new Uint8Array(memory.buffer),
    fn<T>(name: string): T {
      const f = exports[name];
      if (typeof f !== "function") throw new Error(`egret.wasm has no export "${name}" (stale build? run npm run build)`);
      return f as T;
    },
  };
}
