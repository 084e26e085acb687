// Checks a module the way proxy-wasm-cpp-host + V8 do before running it (reference §1.1, §9.1):
// ABI marker, exact import names and signatures for that ABI, no imported globals, callback
// signatures, and an allocator export. Errors carry Envoy's wording so they are recognisable.
import { readSignatures, type WasmImport } from "./wasm-binary.js";
import { ENV_FUNCTIONS, WASI_FUNCTIONS, WASI_MODULES, EXPORT_SIGNATURES, abiHostFunctions, type AbiVersion } from "./signatures.js";

export class LinkError extends Error {}

export interface LinkInfo { abi: AbiVersion; imports: WasmImport[]; exports: Set<string> }

const ABI_MARKERS: [string, AbiVersion][] = [["proxy_abi_version_0_1_0", "0.1.0"], ["proxy_abi_version_0_2_0", "0.2.0"], ["proxy_abi_version_0_2_1", "0.2.1"]];

export function linkCheck(bytes: Uint8Array): LinkInfo {
  const { imports, exports } = readSignatures(bytes);
  const byName = new Map(exports.map((e) => [e.name, e]));
  const marker = exports.find((e) => e.kind === "function" && ABI_MARKERS.some(([m]) => m === e.name));
  if (!marker) throw new LinkError("Missing or unknown Proxy-Wasm ABI version (export proxy_abi_version_0_2_1)");
  const abi = ABI_MARKERS.find(([m]) => m === marker.name)![1];
  if (abi === "0.1.0") throw new LinkError("Proxy-Wasm ABI 0.1.0 modules are not supported by this host (build for 0.2.1)");
  const envAllowed = abiHostFunctions(abi);
  for (const imp of imports) {
    const where = `${imp.module}.${imp.name}`;
    if (imp.kind === "global") throw new LinkError(`Failed to load Wasm module due to an imported global: ${where} (imported globals are not supported)`);
    if (imp.kind !== "function") continue;
    let want: string | undefined;
    if (imp.module === "env" && envAllowed.has(imp.name)) want = ENV_FUNCTIONS[imp.name];
    else if ((WASI_MODULES as readonly string[]).includes(imp.module)) want = WASI_FUNCTIONS[imp.name];
    if (want === undefined) throw new LinkError(`Failed to load Wasm module due to a missing import: ${where}`);
    if (want !== imp.signature) throw new LinkError(`Failed to load Wasm module due to an import type mismatch: ${where} is (${imp.signature}), the host provides (${want})`);
  }
  for (const [name, want] of Object.entries(EXPORT_SIGNATURES)) {
    const e = byName.get(name);
    if (e && e.kind === "function" && e.signature !== want) throw new LinkError(`Bad function signature for: ${name} (${e.signature}, expected ${want})`);
  }
  if (!byName.has("malloc") && !byName.has("proxy_on_memory_allocate")) throw new LinkError("Wasm module is missing malloc function (export malloc or proxy_on_memory_allocate)");
  if (byName.get("memory")?.kind !== "memory") throw new LinkError("Wasm module does not export its memory");
  return { abi, imports, exports: new Set(byName.keys()) };
}
