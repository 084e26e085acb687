// SMTP (Exim 4, Debian's default MTA): accepts any message for any recipient and discards it
// (a :blackhole: router), offers STARTTLS with the service's own certificate. Run in the
// foreground (-bdf) with a configuration of its own (-C; Exim then drops root for delivery).
import { chownSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { makeServiceCertificate } from "./certificate.js";
import { findProgram } from "./programs.js";
import { startOutside, stopAll, systemUser, tcpOpen, type RunningService, type ServiceContext } from "./context.js";
import type { WorldService } from "../world.js";

const EXIM_USER = "Debian-exim";

export async function startSmtp(ctx: ServiceContext, svc: WorldService): Promise<RunningService> {
  const exim = findProgram("exim4", "exim4-daemon-light");
  const ids = systemUser(EXIM_USER);
  const dir = join(ctx.workDir, svc.name);
  const spool = join(dir, "spool");
  mkdirSync(spool, { recursive: true, mode: 0o750 });
  chownSync(dir, ids.uid, ids.gid);
  chownSync(spool, ids.uid, ids.gid);
  const { cert, key } = await makeServiceCertificate(ctx, svc);
  const config = join(dir, "exim.conf");
  writeFileSync(config, [
    `primary_hostname = egret-mesh-${svc.name}`,
    `local_interfaces = ${svc.addresses.join(" : ")}`,
    `daemon_smtp_ports = ${svc.port}`,
    `spool_directory = ${spool}`,
    `log_file_path = ${join(dir, "%slog")}`,
    `exim_user = ${EXIM_USER}`,
    `exim_group = ${EXIM_USER}`,
    "acl_smtp_rcpt = accept",
    "tls_advertise_hosts = *",
    `tls_certificate = ${cert}`,
    `tls_privatekey = ${key}`,
    "begin routers",
    "discard:",
    "  driver = redirect",
    "  data = :blackhole:",
    "",
  ].join("\n"));
  const p = startOutside(ctx, svc.name, exim, ["-C", config, "-bdf", "-oP", join(dir, "exim.pid")]);
  await p.waitReady(() => tcpOpen(ctx.net.outsideNs, svc.addresses[0]!, svc.port), 30_000, "accepting connections");
  return { name: svc.name, kind: svc.kind, endpoints: svc.addresses.map((a) => `${a}:${svc.port}`), processes: [p], stop: () => stopAll([p]) };
}
