// Reads the import and export signatures of a wasm binary: WebAssembly.Module.imports/exports in
// Node 20 do not report function types, and exact linking (reference/proxy-wasm.md §1.1) needs them.

export interface WasmImport { module: string; name: string; kind: "function" | "table" | "memory" | "global" | "tag"; signature?: string }
export interface WasmExport { name: string; kind: "function" | "table" | "memory" | "global" | "tag"; signature?: string }
export interface WasmSignatures { imports: WasmImport[]; exports: WasmExport[] }

const KINDS = ["function", "table", "memory", "global", "tag"] as const;
const VALTYPE: Record<number, string> = { 0x7f: "i", 0x7e: "I", 0x7d: "f", 0x7c: "F", 0x7b: "v", 0x70: "r", 0x6f: "x" };

/** Signatures are encoded as in signatures.ts: params ">" results (i32 = i, i64 = I). */
export function readSignatures(bytes: Uint8Array): WasmSignatures {
  if (bytes.length < 8 || bytes[0] !== 0 || bytes[1] !== 0x61 || bytes[2] !== 0x73 || bytes[3] !== 0x6d) {
    throw new Error("not a WebAssembly binary (bad magic number)");
  }
  let p = 8;
  const u32 = (): number => {
    let r = 0, s = 0, b: number;
    do {
      if (p >= bytes.length) throw new Error("truncated WebAssembly binary");
      b = bytes[p++]; r |= (b & 0x7f) << s; s += 7;
    } while (b & 0x80);
    return r >>> 0;
  };
  const name = (): string => { const n = u32(); const s = Buffer.from(bytes.subarray(p, p + n)).toString("utf8"); p += n; return s; };
  const limits = (): void => { const flags = u32(); u32(); if (flags & 1) u32(); };
  const types: string[] = [];
  const funcTypes: number[] = []; // function index space: imports first, then defined functions
  const imports: WasmImport[] = [];
  const rawExports: { name: string; kind: number; index: number }[] = [];
  while (p < bytes.length) {
    const id = bytes[p++];
    const size = u32();
    const end = p + size;
    if (id === 1) {
      for (let n = u32(); n--; ) {
        if (bytes[p++] !== 0x60) throw new Error("unsupported type form in type section");
        let params = "", results = "";
        for (let k = u32(); k--; ) params += VALTYPE[bytes[p++]] ?? "?";
        for (let k = u32(); k--; ) results += VALTYPE[bytes[p++]] ?? "?";
        types.push(`${params}>${results}`);
      }
    } else if (id === 2) {
      for (let n = u32(); n--; ) {
        const module = name(), field = name(), kind = bytes[p++];
        if (kind === 0) { const t = u32(); funcTypes.push(t); imports.push({ module, name: field, kind: "function", signature: types[t] }); }
        else if (kind === 1) { p++; limits(); imports.push({ module, name: field, kind: "table" }); }
        else if (kind === 2) { limits(); imports.push({ module, name: field, kind: "memory" }); }
        else if (kind === 3) { p += 2; imports.push({ module, name: field, kind: "global" }); }
        else { u32(); u32(); imports.push({ module, name: field, kind: "tag" }); }
      }
    } else if (id === 3) {
      for (let n = u32(); n--; ) funcTypes.push(u32());
    } else if (id === 7) {
      for (let n = u32(); n--; ) { const nm = name(); const kind = bytes[p++]; rawExports.push({ name: nm, kind, index: u32() }); }
    }
    p = end;
  }
  const exports = rawExports.map((e): WasmExport => ({
    name: e.name, kind: KINDS[e.kind] ?? "tag", signature: e.kind === 0 ? types[funcTypes[e.index]] : undefined,
  }));
  return { imports, exports };
}
