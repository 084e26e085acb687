// The web service (HTTP on 80, HTTPS on 443 with one self-signed certificate naming every record
// that points at it) and the HTTP forward proxy (tinyproxy: CONNECT and absolute-URI requests,
// resolving names itself through the cluster DNS, as a corporate squid would).
import { writeFileSync, chmodSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { mustRun } from "../exec.js";
import { findProgram } from "./programs.js";
import { startOutside, stopAll, tcpOpen, type RunningService, type ServiceContext } from "./context.js";
import { namesServedBy, type WorldService } from "../world.js";

/** The certificate clients must trust to reach the web service over TLS (PEM). */
export function webCaPath(ctx: ServiceContext): string {
  return join(ctx.workDir, "web-cert.pem");
}

export async function startWeb(ctx: ServiceContext, svc: WorldService): Promise<RunningService> {
  const names = namesServedBy(ctx.world, svc.addresses);
  const cert = webCaPath(ctx);
  const key = join(ctx.workDir, "web-key.pem");
  const san = ["DNS:egret-mesh-web", ...names.map((n) => `DNS:${n}`), ...svc.addresses.map((a) => `IP:${a}`)].join(",");
  await mustRun(findProgram("openssl", "openssl"), [
    "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
    "-subj", "/CN=egret-mesh-web", "-addext", `subjectAltName=${san}`, "-keyout", key, "-out", cert,
  ]);
  chmodSync(cert, 0o644);
  const script = fileURLToPath(new URL("../servers/web-server.js", import.meta.url));
  const listen = svc.addresses.flatMap((a) => ["--http", `${a}:80`, "--https", `${a}:443`]);
  const p = startOutside(ctx, svc.name, process.execPath, [script, ...listen, "--cert", cert, "--key", key]);
  await p.waitReady(async () => (await tcpOpen(ctx.net.outsideNs, svc.addresses.at(-1)!, 443)) && tcpOpen(ctx.net.outsideNs, svc.addresses.at(-1)!, 80), 30_000, "listening");
  return { name: svc.name, kind: svc.kind, endpoints: svc.addresses.flatMap((a) => [`${a}:80`, `${a}:443`]), processes: [p], stop: () => stopAll([p]) };
}

export async function startForwardProxy(ctx: ServiceContext, svc: WorldService): Promise<RunningService> {
  const tinyproxy = findProgram("tinyproxy", "tinyproxy");
  const conf = join(ctx.workDir, "tinyproxy.conf");
  writeFileSync(conf, [
    "User nobody",
    "Group nogroup",
    `Port ${svc.port}`,
    `Listen ${svc.addresses[0]}`,
    "Timeout 30",
    "MaxClients 64",
    "LogLevel Info",
    "DisableViaHeader Yes",
    "ConnectPort 443",
    "ConnectPort 80",
    "",
  ].join("\n"));
  const p = startOutside(ctx, svc.name, tinyproxy, ["-d", "-c", conf]);
  await p.waitReady(() => tcpOpen(ctx.net.outsideNs, svc.addresses[0]!, svc.port), 30_000, "accepting connections");
  return { name: svc.name, kind: svc.kind, endpoints: [`${svc.addresses[0]}:${svc.port}`], processes: [p], stop: () => stopAll([p]) };
}
