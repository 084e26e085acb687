// The sidecar's admin/metrics HTTP endpoint (Envoy's admin port and Istio's merged stats):
//   GET /stats/prometheus  wasmcustom stats (Envoy naming) + the sidecar's own counters
//   GET /ready             200 once the plugin is configured and listening
//   GET /vms               VM status as JSON (failed VMs and why)
import http from "node:http";
import type { EnvoyHost } from "../host/index.js";
import type { SidecarStats } from "./proxy.js";

export async function startAdmin(host: EnvoyHost, stats: SidecarStats, listenHost: string, port: number): Promise<{ server: http.Server; address: string }> {
  const server = http.createServer((req, res) => {
    const url = (req.url ?? "/").split("?")[0];
    if (req.method !== "GET") { res.writeHead(405).end(); return; }
    if (url === "/stats/prometheus") {
      const own = [
        "# TYPE egret_sidecar_connections_accepted_total counter", `egret_sidecar_connections_accepted_total ${stats.accepted}`,
        "# TYPE egret_sidecar_connections_active gauge", `egret_sidecar_connections_active ${stats.active}`,
        "# TYPE egret_sidecar_connections_rejected_total counter", `egret_sidecar_connections_rejected_total ${stats.rejected}`,
        "# TYPE egret_sidecar_upstream_connect_failures_total counter", `egret_sidecar_upstream_connect_failures_total ${stats.upstreamConnectFailures}`,
        "# TYPE egret_sidecar_wasm_vms_failed gauge", `egret_sidecar_wasm_vms_failed ${host.vmStatus().filter((v) => v.failed).length}`,
      ].join("\n");
      res.writeHead(200, { "content-type": "text/plain; version=0.0.4" }).end(host.prometheus() + own + "\n");
    } else if (url === "/ready") {
      res.writeHead(200).end("LIVE\n");
    } else if (url === "/vms") {
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(host.vmStatus(), null, 2) + "\n");
    } else {
      res.writeHead(404, { "content-type": "text/plain" }).end("try /stats/prometheus, /ready or /vms\n");
    }
  });
  await new Promise<void>((resolve, reject) => { server.once("error", reject); server.listen(port, listenHost, () => { server.off("error", reject); resolve(); }); });
  const a = server.address() as { address: string; port: number; family: string };
  return { server, address: a.family === "IPv6" ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}` };
}
