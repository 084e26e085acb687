// Serves the filter module over HTTP for istio-agent, which downloads it when the EnvoyFilter's
// ECDS config names a remote module (manifests/mesh/envoyfilter.yaml), checks its sha256 and
// hands Envoy a local file. Mount on the control service's HTTP port:
//   GET|HEAD /wasm/egret.wasm[?sha256=HEX]  the module (application/wasm)
//   GET|HEAD /wasm/egret.wasm.sha256        "HEX  egret.wasm\n" (sha256sum format) of the current one
//   GET      /wasm/modules                  {"current": HEX, "modules": [HEX, …]} (current first)
// Control serves its own module and the previous release's beside it, so an EnvoyFilter that
// still names the previous sha256 keeps working while control rolls out. A sha256 it does not
// hold answers 503 with Retry-After, never 404: istio-agent retries only 5xx (pkg/wasm/
// httpfetcher.go `retryable`), and a 404 is final — on Istio ≥ 1.25 it puts a deny-all RBAC
// filter in the module's place.
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import type { IncomingMessage, ServerResponse } from "node:http";

export const WASM_PATH = "/wasm/egret.wasm";
export const WASM_SHA256_PATH = "/wasm/egret.wasm.sha256";
export const WASM_INDEX_PATH = "/wasm/modules";
/** Seconds a client is asked to wait before asking again for a module this replica lacks. */
export const UNKNOWN_MODULE_RETRY_AFTER_SECONDS = 5;

export interface WasmModule {
  bytes: Buffer;
  sha256: string;
}

/** The modules one control replica serves: its own (current) and at most one earlier release. */
export interface WasmModuleSet {
  current: WasmModule;
  previous?: WasmModule;
}

const WASM_MAGIC = Buffer.from([0x00, 0x61, 0x73, 0x6d]);

/** Checks the bytes are a module and computes their digest; `origin` names them in errors. */
export function wasmModuleFromBytes(bytes: Buffer, origin: string): WasmModule {
  if (bytes.length < 8 || !bytes.subarray(0, 4).equals(WASM_MAGIC)) {
    throw new Error(`${origin} is not a WebAssembly module (no \\0asm header)`);
  }
  return { bytes, sha256: createHash("sha256").update(bytes).digest("hex") };
}

/** Reads and checks the module once; serving never touches the disk again. */
export function loadWasmModule(path: string): WasmModule {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (err) {
    throw new Error(`cannot read the filter module ${path}: ${(err as Error).message} (build it with \`npm run build\` or pass its path)`);
  }
  return wasmModuleFromBytes(bytes, path);
}

function servedModules(set: WasmModuleSet): WasmModule[] {
  return set.previous && set.previous.sha256 !== set.current.sha256 ? [set.current, set.previous] : [set.current];
}

function sendText(req: IncomingMessage, res: ServerResponse, status: number, body: string, headers: Record<string, string | number> = {}): void {
  res.writeHead(status, { "content-type": "text/plain; charset=utf-8", "content-length": Buffer.byteLength(body), ...headers });
  res.end(req.method === "HEAD" ? undefined : body);
}

function sendModule(req: IncomingMessage, res: ServerResponse, module: WasmModule, digestInUrl: boolean): void {
  const etag = `"${module.sha256}"`;
  if (req.headers["if-none-match"] === etag) {
    res.writeHead(304, { etag });
    res.end();
    return;
  }
  res.writeHead(200, {
    "content-type": "application/wasm",
    "content-length": module.bytes.length,
    etag,
    // The URL carries the digest, so a given URL always means the same bytes.
    "cache-control": digestInUrl ? "public, max-age=31536000, immutable" : "no-cache",
  });
  res.end(req.method === "HEAD" ? undefined : module.bytes);
}

/**
 * Returns a request handler that answers the module paths and returns false for any other
 * request, so the caller can chain it before its own routes (/metrics, /healthz, …).
 */
export function createWasmHandler(modules: WasmModuleSet | WasmModule): (req: IncomingMessage, res: ServerResponse) => boolean {
  const set: WasmModuleSet = "current" in modules ? modules : { current: modules };
  const served = servedModules(set);
  const sumText = `${set.current.sha256}  egret.wasm\n`;
  const indexText = JSON.stringify({ current: set.current.sha256, modules: served.map((m) => m.sha256) }) + "\n";
  return (req, res) => {
    const url = new URL(req.url ?? "/", "http://localhost");
    if (url.pathname !== WASM_PATH && url.pathname !== WASM_SHA256_PATH && url.pathname !== WASM_INDEX_PATH) return false;
    if (req.method !== "GET" && req.method !== "HEAD") {
      sendText(req, res, 405, "only GET and HEAD\n", { allow: "GET, HEAD" });
      return true;
    }
    if (url.pathname === WASM_SHA256_PATH) {
      sendText(req, res, 200, sumText, { "cache-control": "no-cache" });
      return true;
    }
    if (url.pathname === WASM_INDEX_PATH) {
      res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(indexText), "cache-control": "no-cache" });
      res.end(req.method === "HEAD" ? undefined : indexText);
      return true;
    }
    const wanted = url.searchParams.get("sha256")?.toLowerCase() ?? null;
    if (wanted === null) {
      sendModule(req, res, set.current, false);
      return true;
    }
    const module = served.find((m) => m.sha256 === wanted);
    if (module) {
      sendModule(req, res, module, true);
      return true;
    }
    // Retryable on purpose: during a rollout another replica (or this one, once upgraded) may
    // hold it; istio-agent gives up for good on any 4xx.
    sendText(req, res, 503,
      `this control replica serves egret.wasm with sha256 ${served.map((m) => m.sha256).join(" and ")}, not ${wanted}: ` +
      "retry shortly (a rollout may be under way); if it persists, the EnvoyFilter and the control image " +
      "come from different builds: apply the control phase of `egret manifests` for this image first, then the mesh phase\n",
      { "retry-after": UNKNOWN_MODULE_RETRY_AFTER_SECONDS, "cache-control": "no-store" });
    return true;
  };
}

export interface PeerFetchOptions {
  /** Base URL of the control Service's HTTP port, e.g. http://egret-control.egret-system:9091 */
  peerUrl: string;
  own: WasmModule;
  fetch?: typeof globalThis.fetch;
  /** Overall budget; a peer that cannot answer within it is treated as absent. */
  timeoutMs?: number;
}

export type PeerFetchResult =
  | { module: WasmModule; note: string }
  | { module?: undefined; note: string };

/**
 * Asks the replicas already running (through the control Service) for the module they serve,
 * so this replica can keep serving it beside its own. The previous release is the first module
 * a peer lists that is not ours: a peer still on the old release lists it first, an upgraded
 * peer lists it second. No peer (first install) or a peer error means no previous module; the
 * note says which, for the log.
 */
export async function fetchPreviousModule(options: PeerFetchOptions): Promise<PeerFetchResult> {
  const doFetch = options.fetch ?? globalThis.fetch;
  const signal = AbortSignal.timeout(options.timeoutMs ?? 10_000);
  const base = options.peerUrl.replace(/\/+$/, "");
  let index: { current?: unknown; modules?: unknown };
  try {
    const res = await doFetch(base + WASM_INDEX_PATH, { signal });
    if (res.status !== 200) return { note: `${base}${WASM_INDEX_PATH} answered ${res.status}: no previous module` };
    index = (await res.json()) as typeof index;
  } catch (err) {
    return { note: `no control replica answered at ${base} (${(err as Error).message}): no previous module (first install?)` };
  }
  const listed = Array.isArray(index.modules) ? index.modules.filter((s): s is string => typeof s === "string" && /^[0-9a-f]{64}$/.test(s)) : [];
  const wanted = listed.find((sha) => sha !== options.own.sha256);
  if (!wanted) return { note: `the running replicas serve only this release's module: no previous module` };
  try {
    const res = await doFetch(`${base}${WASM_PATH}?sha256=${wanted}`, { signal });
    if (res.status !== 200) return { note: `${base} answered ${res.status} for module ${wanted}: no previous module` };
    const module = wasmModuleFromBytes(Buffer.from(await res.arrayBuffer()), `${base}${WASM_PATH}?sha256=${wanted}`);
    if (module.sha256 !== wanted) return { note: `${base} sent bytes with sha256 ${module.sha256} for ${wanted}: ignored` };
    return { module, note: `serving the previous module ${wanted} beside ${options.own.sha256}` };
  } catch (err) {
    return { note: `fetching module ${wanted} from ${base} failed (${(err as Error).message}): no previous module` };
  }
}
