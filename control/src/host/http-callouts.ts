// HTTP callouts (proxy_http_call) on the root context (reference/proxy-wasm.md §5 last bullet,
// §2.2): plain cluster name (must exist), :method/:path/:authority required, token ≡ 0 mod 4,
// answer = proxy_on_http_call_response(root, token, headers, body size, trailers) with the body in
// buffer 4 and headers/trailers in maps 6/7; failure = 0 headers and get_status BrokenConnection.
import http from "node:http";
import { CalloutType, MapType, Status } from "./abi.js";
import type { WasmVm } from "./vm.js";
import { tryParseHostPort } from "../common/host-port.js";

export interface HttpCallRequest { cluster: string; headers: [Buffer, Buffer][]; body: Buffer; timeoutMs: number }

export function startHttpCall(vm: WasmVm, req: HttpCallRequest): { status: number; token?: number } {
  const header = (name: string): string | undefined => req.headers.find(([k]) => k.toString() === name)?.[1].toString();
  const method = header(":method"), path = header(":path"), authority = header(":authority");
  if (!method || !path || !authority) return { status: Status.BadArgument };
  const endpoint = vm.services.grpc.pick(req.cluster);
  if (!endpoint) return { status: Status.BadArgument };
  const target = tryParseHostPort(endpoint.address);
  if (!target) { endpoint.release(); return { status: Status.BadArgument }; }
  const token = vm.nextCalloutToken(CalloutType.HttpCall);
  const rootId = vm.activeRootId();
  const headers: Record<string, string> = { host: authority };
  for (const [k, v] of req.headers) { const key = k.toString(); if (!key.startsWith(":")) headers[key] = v.toString(); }
  let done = false;
  const finish = (fn: () => void): void => {
    if (done) return;
    done = true;
    vm.callouts.delete(token);
    endpoint.release();
    setImmediate(() => { if (!vm.failed && vm.hasRoot(rootId)) vm.defer(fn); });
  };
  const failure = (message: string): void => finish(() => {
    vm.status = { code: Status.BrokenConnection, message };
    vm.call("proxy_on_http_call_response", rootId, rootId, token, 0, 0, 0);
  });
  const request = http.request({ host: target.host, port: target.port, method, path, headers, timeout: req.timeoutMs > 0 ? req.timeoutMs : undefined }, (res) => {
    const chunks: Buffer[] = [];
    res.on("data", (d: Buffer) => chunks.push(d));
    res.on("error", (e) => failure(e.message));
    res.on("end", () => finish(() => {
      const body = Buffer.concat(chunks);
      const hdrs: [Buffer, Buffer][] = [[Buffer.from(":status"), Buffer.from(String(res.statusCode ?? 0))]];
      for (let i = 0; i < res.rawHeaders.length; i += 2) hdrs.push([Buffer.from(res.rawHeaders[i].toLowerCase()), Buffer.from(res.rawHeaders[i + 1])]);
      const trailers: [Buffer, Buffer][] = [];
      for (let i = 0; i < res.rawTrailers.length; i += 2) trailers.push([Buffer.from(res.rawTrailers[i].toLowerCase()), Buffer.from(res.rawTrailers[i + 1])]);
      vm.status = { code: Status.Ok, message: "" };
      vm.httpResponse = { body, headers: hdrs, trailers };
      try {
        vm.call("proxy_on_http_call_response", rootId, rootId, token, hdrs.length, body.length, trailers.length);
      } finally { vm.httpResponse = undefined; }
    }));
  });
  request.on("timeout", () => { request.destroy(); failure("timeout"); });
  request.on("error", (e) => failure(e.message));
  request.end(req.body);
  vm.callouts.set(token, { kind: "call", rootId, cancel: () => { done = true; request.destroy(); } });
  return { status: Status.Ok, token };
}

/** Maps 6/7 during proxy_on_http_call_response. */
export function httpResponseMap(vm: WasmVm, type: number): [Buffer, Buffer][] | undefined {
  if (!vm.httpResponse) return undefined;
  if (type === MapType.HttpCallResponseHeaders) return vm.httpResponse.headers;
  if (type === MapType.HttpCallResponseTrailers) return vm.httpResponse.trailers;
  return undefined;
}
