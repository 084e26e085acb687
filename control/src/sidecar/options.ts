// `egret sidecar` flags → validated options. Every mistake names the flag and what to do.
import { readFlags } from "../common/flags.js";
import { readFileSync } from "node:fs";
import { isIP } from "node:net";
import { fileURLToPath } from "node:url";
import { UsageError } from "../cli/command.js";
import type { NodeIdentity } from "../host/index.js";
import type { DestinationMode, ServiceRoute } from "./proxy.js";
import { parseHostPort } from "../common/host-port.js";
import { failureForIstio, type DownloadFailure } from "./ecds.js";

export const DEFAULT_WASM = fileURLToPath(new URL("../../../../filter/build/egret.wasm", import.meta.url));

export interface SidecarConfig {
  wasm: string;
  pluginConfig: string;
  vmConfig: string;
  vmId: string;
  rootId: string;
  node: NodeIdentity;
  grpcClusters: Record<string, string>;
  listen: { host: string; port: number };
  admin?: { host: string; port: number };
  mode: DestinationMode;
  concurrency: number;
  failurePolicy: "FAIL_CLOSED" | "FAIL_OPEN" | "FAIL_RELOAD";
  logLevel: string;
  connectTimeoutMs: number;
  routes: ServiceRoute[];
  /** The module comes through ECDS pushes, downloaded like istio-agent (ecds.ts); `--wasm` is then unused. */
  ecds?: { url?: string; sha256?: string; failure: DownloadFailure };
}

export const SIDECAR_USAGE = `usage: egret sidecar [options]

Runs the proxy-wasm filter in a local TCP proxy, where Envoy's outbound listener (15001) sits.

  --wasm PATH               filter module (default filter/build/egret.wasm)
  --plugin-config JSON|@FILE  plugin configuration (what proxy_on_configure reads)
  --vm-config TEXT|@FILE    VM configuration
  --vm-id ID                shared-data scope (default "")     --root-id ID (default egret)
  --pod-name NAME --pod-namespace NS --pod-label k=v… --pod-ip IP…   xds.node metadata
  --grpc-cluster NAME=HOST:PORT…   where the filter's gRPC clusters are
  --listen HOST:PORT        (default 127.0.0.1:15001)
  --target HOST:PORT        forward everything to one upstream (no iptables needed)
  --service-route VIP:PORT=CLUSTER=HOST:PORT…   a ServiceEntry address routed like Envoy does: its
                            connections get xds.cluster_name CLUSTER (e.g. outbound|443||api.example.com)
                            and go to the endpoint HOST:PORT; other destinations are PassthroughCluster
  --proxy-protocol          read the destination from a PROXY v1 header
                            (default: original destination from iptables REDIRECT, SO_ORIGINAL_DST)
  --admin HOST:PORT         metrics/admin HTTP (/stats/prometheus, /ready, /vms); off by default
  --concurrency N           worker VMs (default 2)
  --failure-policy FAIL_CLOSED|FAIL_OPEN|FAIL_RELOAD   when a VM fails (default FAIL_CLOSED)
  --connect-timeout-ms MS   upstream connect timeout (default 10000)
  --log-level LEVEL         trace|debug|info|warn|error (default info)
module delivery like Istio's ECDS (mesh in a box; see control/src/sidecar/ecds.ts)
  --ecds                    start with no filter (a sidecar from before the EnvoyFilter); istiod's
                            pushes arrive as POST /ecds {"url","sha256"} on --admin
  --wasm-url URL --wasm-sha256 HEX   the pushed resource at start (implies --ecds): the listener waits
                            for the download, like a new pod's
  --istio-version 1.MINOR   what a failed download does: 1.20-1.24 NACK (the previous filter stays),
                            1.25+ deny-all RBAC fallback (default 1.25)
`;

function hostPort(flag: string, v: string): { host: string; port: number } {
  try {
    return parseHostPort(v, `--${flag}`, { allowPortZero: true });
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

function textOrFile(flag: string, v: string | undefined): string {
  if (v === undefined) return "";
  if (!v.startsWith("@")) return v;
  try { return readFileSync(v.slice(1), "utf8"); } catch (e) {
    throw new UsageError(`--${flag} ${v}: cannot read ${v.slice(1)} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
}

export function parseSidecarArgs(argv: string[]): SidecarConfig | "help" {
  let parsed;
  try {
    parsed = readFlags({
      args: argv, strict: true, allowPositionals: false,
      options: {
        help: { type: "boolean", short: "h" },
        wasm: { type: "string" }, "plugin-config": { type: "string" }, "vm-config": { type: "string" },
        "vm-id": { type: "string" }, "root-id": { type: "string" },
        "pod-name": { type: "string" }, "pod-namespace": { type: "string" },
        "pod-label": { type: "string", multiple: true }, "pod-ip": { type: "string", multiple: true },
        "grpc-cluster": { type: "string", multiple: true },
        "service-route": { type: "string", multiple: true },
        listen: { type: "string" }, target: { type: "string" }, "proxy-protocol": { type: "boolean" },
        admin: { type: "string" }, concurrency: { type: "string" }, "failure-policy": { type: "string" },
        "connect-timeout-ms": { type: "string" }, "log-level": { type: "string" },
        ecds: { type: "boolean" }, "wasm-url": { type: "string" }, "wasm-sha256": { type: "string" }, "istio-version": { type: "string" },
      },
    });
  } catch (e) {
    throw new UsageError(`${(e as Error).message}\n\n${SIDECAR_USAGE}`);
  }
  const v = parsed.values;
  if (v.help) return "help";
  const pluginConfig = textOrFile("plugin-config", v["plugin-config"]);
  if (pluginConfig.trim().startsWith("{")) {
    try { JSON.parse(pluginConfig); } catch (e) { throw new UsageError(`--plugin-config: invalid JSON (${(e as Error).message})`); }
  }
  const labels: Record<string, string> = {};
  for (const l of v["pod-label"] ?? []) {
    const i = l.indexOf("=");
    if (i <= 0) throw new UsageError(`--pod-label ${JSON.stringify(l)}: expected key=value`);
    labels[l.slice(0, i)] = l.slice(i + 1);
  }
  for (const ip of v["pod-ip"] ?? []) if (!isIP(ip)) throw new UsageError(`--pod-ip ${JSON.stringify(ip)}: not an IP address`);
  const grpcClusters: Record<string, string> = {};
  for (const g of v["grpc-cluster"] ?? []) {
    const i = g.lastIndexOf("=");
    if (i <= 0) throw new UsageError(`--grpc-cluster ${JSON.stringify(g)}: expected NAME=HOST:PORT`);
    hostPort("grpc-cluster", g.slice(i + 1));
    grpcClusters[g.slice(0, i)] = g.slice(i + 1);
  }
  const routes: ServiceRoute[] = [];
  for (const r of v["service-route"] ?? []) {
    const first = r.indexOf("=");
    const last = r.lastIndexOf("=");
    if (first <= 0 || last === first || last === r.length - 1) throw new UsageError(`--service-route ${JSON.stringify(r)}: expected VIP:PORT=CLUSTER=HOST:PORT`);
    hostPort("service-route", r.slice(0, first));
    hostPort("service-route", r.slice(last + 1));
    routes.push({ address: r.slice(0, first), cluster: r.slice(first + 1, last), upstream: r.slice(last + 1) });
  }
  if (v.target && v["proxy-protocol"]) throw new UsageError("--target and --proxy-protocol exclude each other");
  const mode: DestinationMode = v.target ? { kind: "fixed", target: (hostPort("target", v.target), v.target) } : v["proxy-protocol"] ? { kind: "proxy-protocol" } : { kind: "original-dst" };
  const concurrency = Number(v.concurrency ?? "2");
  if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 64) throw new UsageError(`--concurrency ${v.concurrency}: expected an integer from 1 to 64`);
  const failurePolicy = (v["failure-policy"] ?? "FAIL_CLOSED").toUpperCase();
  if (failurePolicy !== "FAIL_CLOSED" && failurePolicy !== "FAIL_OPEN" && failurePolicy !== "FAIL_RELOAD") throw new UsageError(`--failure-policy ${v["failure-policy"]}: expected FAIL_CLOSED, FAIL_OPEN or FAIL_RELOAD`);
  const connectTimeoutMs = Number(v["connect-timeout-ms"] ?? "10000");
  if (!Number.isFinite(connectTimeoutMs) || connectTimeoutMs <= 0) throw new UsageError(`--connect-timeout-ms ${v["connect-timeout-ms"]}: expected a positive number`);
  const logLevel = v["log-level"] ?? "info";
  if (!["trace", "debug", "info", "warn", "error"].includes(logLevel)) throw new UsageError(`--log-level ${logLevel}: expected trace, debug, info, warn or error`);
  let ecds: SidecarConfig["ecds"];
  if (v.ecds || v["wasm-url"] !== undefined || v["wasm-sha256"] !== undefined || v["istio-version"] !== undefined) {
    if ((v["wasm-url"] === undefined) !== (v["wasm-sha256"] === undefined)) throw new UsageError("--wasm-url and --wasm-sha256 go together (istio-agent refuses a module without its sha256)");
    if (v["wasm-sha256"] !== undefined && !/^[0-9a-f]{64}$/i.test(v["wasm-sha256"])) throw new UsageError(`--wasm-sha256 ${JSON.stringify(v["wasm-sha256"])}: expected 64 hex digits`);
    if (v["wasm-url"] !== undefined && !/^https?:\/\//.test(v["wasm-url"])) throw new UsageError(`--wasm-url ${JSON.stringify(v["wasm-url"])}: expected an http:// or https:// URL`);
    if (v.wasm !== undefined) throw new UsageError("--wasm and --ecds/--wasm-url exclude each other: with ECDS the module is downloaded");
    let failure: DownloadFailure;
    try { failure = failureForIstio(v["istio-version"] ?? "1.25"); } catch (e) { throw new UsageError(`--istio-version: ${(e as Error).message}`); }
    if (!v.admin) throw new UsageError("--ecds needs --admin HOST:PORT (pushes arrive as POST /ecds)");
    ecds = { ...(v["wasm-url"] !== undefined ? { url: v["wasm-url"], sha256: v["wasm-sha256"]!.toLowerCase() } : {}), failure };
  }
  return {
    ...(ecds ? { ecds } : {}),
    wasm: v.wasm ?? DEFAULT_WASM,
    pluginConfig,
    vmConfig: textOrFile("vm-config", v["vm-config"]),
    routes,
    vmId: v["vm-id"] ?? "",
    rootId: v["root-id"] ?? "egret",
    node: { name: v["pod-name"], namespace: v["pod-namespace"], labels, instanceIps: v["pod-ip"] ?? [] },
    grpcClusters,
    listen: hostPort("listen", v.listen ?? "127.0.0.1:15001"),
    admin: v.admin ? hostPort("admin", v.admin) : undefined,
    mode,
    concurrency,
    failurePolicy,
    logLevel,
    connectTimeoutMs,
  };
}
