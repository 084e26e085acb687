// SSH (OpenSSH's sshd): a host key and one client key made for this mesh, public-key login as
// root only (no passwords, no PAM), listening on the service's addresses in the outside namespace.
import { copyFileSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { mustRun } from "../exec.js";
import { findProgram } from "./programs.js";
import { startOutside, stopAll, tcpOpen, type RunningService, type ServiceContext } from "./context.js";
import type { WorldService } from "../world.js";

/** The private key a client logs in to `svc` with (as root). */
export function sshClientKeyPath(ctx: Pick<ServiceContext, "workDir">, svc: Pick<WorldService, "name">): string {
  return join(ctx.workDir, svc.name, "client_key");
}

export async function startSsh(ctx: ServiceContext, svc: WorldService): Promise<RunningService> {
  const sshd = findProgram("sshd", "openssh-server");
  const keygen = findProgram("ssh-keygen", "openssh-client");
  const dir = join(ctx.workDir, svc.name);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const hostKey = join(dir, "host_key");
  const clientKey = sshClientKeyPath(ctx, svc);
  for (const k of [hostKey, clientKey]) await mustRun(keygen, ["-q", "-t", "ed25519", "-N", "", "-C", `egret-mesh-${svc.name}`, "-f", k]);
  copyFileSync(`${clientKey}.pub`, join(dir, "authorized_keys"));
  const config = join(dir, "sshd_config");
  writeFileSync(config, [
    ...svc.addresses.map((a) => `ListenAddress ${a}:${svc.port}`),
    `HostKey ${hostKey}`,
    `PidFile ${join(dir, "sshd.pid")}`,
    `AuthorizedKeysFile ${join(dir, "authorized_keys")}`,
    "StrictModes no", // the scratch directory is not root's home
    "PermitRootLogin prohibit-password",
    "PasswordAuthentication no",
    "KbdInteractiveAuthentication no",
    "UsePAM no",
    "",
  ].join("\n"));
  // sshd's privilege-separation directory (Debian's init script creates it the same way).
  mkdirSync("/run/sshd", { recursive: true, mode: 0o755 });
  const p = startOutside(ctx, svc.name, sshd, ["-D", "-e", "-f", config]);
  await p.waitReady(() => tcpOpen(ctx.net.outsideNs, svc.addresses[0]!, svc.port), 30_000, "accepting connections");
  return { name: svc.name, kind: svc.kind, endpoints: svc.addresses.map((a) => `${a}:${svc.port}`), processes: [p], stop: () => stopAll([p]) };
}
