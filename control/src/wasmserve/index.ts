// Serves the filter module over HTTP for istio-agent, which downloads it when the EnvoyFilter's
// ECDS config names a remote module (manifests/mesh/envoyfilter.yaml), checks its sha256 and
// hands Envoy a local file. Mount on the control service's HTTP port:
//   GET|HEAD /wasm/egret.wasm[?sha256=HEX]  the module (application/wasm)
//   GET|HEAD /wasm/egret.wasm.sha256        "HEX  egret.wasm\n" (sha256sum format)
// A request naming a different sha256 gets 404 with both digests in the body, so a stale
// EnvoyFilter shows up in istio-agent's log as a clear error instead of a checksum mismatch.
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import type { IncomingMessage, ServerResponse } from "node:http";

export const WASM_PATH = "/wasm/egret.wasm";
export const WASM_SHA256_PATH = "/wasm/egret.wasm.sha256";

export interface WasmModule {
  bytes: Buffer;
  sha256: string;
}

const WASM_MAGIC = Buffer.from([0x00, 0x61, 0x73, 0x6d]);

/** Reads and checks the module once; serving never touches the disk again. */
export function loadWasmModule(path: string): WasmModule {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (err) {
    throw new Error(`cannot read the filter module ${path}: ${(err as Error).message} (build it with \`npm run build\` or pass its path)`);
  }
  if (bytes.length < 8 || !bytes.subarray(0, 4).equals(WASM_MAGIC)) {
    throw new Error(`${path} is not a WebAssembly module (no \\0asm header)`);
  }
  return { bytes, sha256: createHash("sha256").update(bytes).digest("hex") };
}

/**
 * Returns a request handler that answers the two module paths and returns false for any other
 * request, so the caller can chain it before its own routes (/metrics, /healthz, …).
 */
export function createWasmHandler(module: WasmModule): (req: IncomingMessage, res: ServerResponse) => boolean {
  const etag = `"${module.sha256}"`;
  const sumText = `${module.sha256}  egret.wasm\n`;
  return (req, res) => {
    const url = new URL(req.url ?? "/", "http://localhost");
    if (url.pathname !== WASM_PATH && url.pathname !== WASM_SHA256_PATH) return false;
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { allow: "GET, HEAD", "content-type": "text/plain; charset=utf-8" });
      res.end("only GET and HEAD\n");
      return true;
    }
    if (url.pathname === WASM_SHA256_PATH) {
      res.writeHead(200, { "content-type": "text/plain; charset=utf-8", "content-length": Buffer.byteLength(sumText), "cache-control": "no-cache" });
      res.end(req.method === "HEAD" ? undefined : sumText);
      return true;
    }
    const wanted = url.searchParams.get("sha256");
    if (wanted !== null && wanted.toLowerCase() !== module.sha256) {
      const body = `this control service serves egret.wasm with sha256 ${module.sha256}, not ${wanted}: ` +
        "the EnvoyFilter and the control image are from different builds; re-render the manifests for this image (egret manifests)\n";
      res.writeHead(404, { "content-type": "text/plain; charset=utf-8", "content-length": Buffer.byteLength(body) });
      res.end(req.method === "HEAD" ? undefined : body);
      return true;
    }
    if (req.headers["if-none-match"] === etag) {
      res.writeHead(304, { etag });
      res.end();
      return true;
    }
    res.writeHead(200, {
      "content-type": "application/wasm",
      "content-length": module.bytes.length,
      etag,
      // The URL carries the digest, so a given URL always means the same bytes.
      "cache-control": wanted !== null ? "public, max-age=31536000, immutable" : "no-cache",
    });
    res.end(req.method === "HEAD" ? undefined : module.bytes);
    return true;
  };
}
