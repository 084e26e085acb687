// The sidecar's admin/metrics HTTP endpoint (Envoy's admin port and Istio's merged stats):
//   GET /stats/prometheus  wasmcustom stats (Envoy naming) + the sidecar's own counters
//   GET /ready             200 once the plugin is configured and listening (503 while an ECDS
//                          listener still waits for its module)
//   GET /vms               VM status as JSON (failed VMs and why)
//   GET /ecds, POST /ecds  with --ecds: the filter slot's state; a push {"url","sha256"} (istiod's
//                          ECDS update) answered when it was applied, NACKed or fell back
import http from "node:http";
import type { EnvoyHost } from "../host/index.js";
import type { SidecarStats } from "./proxy.js";
import type { EcdsFilter } from "./ecds.js";

const MAX_PUSH_BYTES = 4096;

export async function startAdmin(host: () => EnvoyHost | undefined, stats: SidecarStats, listenHost: string, port: number, ecds?: EcdsFilter): Promise<{ server: http.Server; address: string }> {
  const server = http.createServer((req, res) => {
    const url = (req.url ?? "/").split("?")[0];
    if (url === "/ecds" && ecds) { ecdsEndpoint(ecds, req, res); return; }
    if (req.method !== "GET") { res.writeHead(405).end(); return; }
    const h = host();
    if (url === "/stats/prometheus") {
      const own = [
        "# TYPE egret_sidecar_connections_accepted_total counter", `egret_sidecar_connections_accepted_total ${stats.accepted}`,
        "# TYPE egret_sidecar_connections_active gauge", `egret_sidecar_connections_active ${stats.active}`,
        "# TYPE egret_sidecar_connections_rejected_total counter", `egret_sidecar_connections_rejected_total ${stats.rejected}`,
        "# TYPE egret_sidecar_upstream_connect_failures_total counter", `egret_sidecar_upstream_connect_failures_total ${stats.upstreamConnectFailures}`,
        "# TYPE egret_sidecar_wasm_vms_failed gauge", `egret_sidecar_wasm_vms_failed ${h ? h.vmStatus().filter((v) => v.failed).length : 0}`,
        ...(ecds ? [
          "# TYPE egret_sidecar_connections_unfiltered_total counter", `egret_sidecar_connections_unfiltered_total ${stats.unfiltered}`,
          // Envoy's network RBAC stats live under <stat_prefix>.rbac. (Prometheus: envoy_ prefix, "-" and "." → "_").
          "# TYPE envoy_wasm_default_deny_rbac_denied counter", `envoy_wasm_default_deny_rbac_denied ${ecds.counts.rbacDenied}`,
        ] : []),
      ].join("\n");
      res.writeHead(200, { "content-type": "text/plain; version=0.0.4" }).end((h ? h.prometheus() : "") + own + "\n");
    } else if (url === "/ready") {
      if (ecds && !ecds.ready) res.writeHead(503).end("listener warming: waiting for the filter module\n");
      else res.writeHead(200).end("LIVE\n");
    } else if (url === "/vms") {
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(h ? h.vmStatus() : [], null, 2) + "\n");
    } else {
      res.writeHead(404, { "content-type": "text/plain" }).end("try /stats/prometheus, /ready or /vms\n");
    }
  });
  await new Promise<void>((resolve, reject) => { server.once("error", reject); server.listen(port, listenHost, () => { server.off("error", reject); resolve(); }); });
  const a = server.address() as { address: string; port: number; family: string };
  return { server, address: a.family === "IPv6" ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}` };
}

function json(res: http.ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body) + "\n");
}

function ecdsEndpoint(ecds: EcdsFilter, req: http.IncomingMessage, res: http.ServerResponse): void {
  if (req.method === "GET") { json(res, 200, ecds.status()); return; }
  if (req.method !== "POST") { res.writeHead(405).end(); return; }
  let body = "";
  req.setEncoding("utf8");
  req.on("data", (d: string) => { body += d; if (body.length > MAX_PUSH_BYTES) req.destroy(); });
  req.on("end", () => {
    let push: { url?: unknown; sha256?: unknown };
    try { push = JSON.parse(body) as typeof push; } catch { json(res, 400, { error: "body: expected JSON {\"url\": …, \"sha256\": …}" }); return; }
    if (typeof push.url !== "string" || !/^https?:\/\//.test(push.url)) { json(res, 400, { error: "url: expected an http(s) URL" }); return; }
    if (typeof push.sha256 !== "string" || !/^[0-9a-f]{64}$/i.test(push.sha256)) { json(res, 400, { error: "sha256: expected 64 hex digits" }); return; }
    ecds.push(push.url, push.sha256.toLowerCase()).then(
      (result) => json(res, 200, { result, ...ecds.status() }),
      (e) => json(res, 500, { error: (e as Error).message }));
  });
}
