// A self-signed certificate for one outside service, naming every DNS record that points at it:
// the STARTTLS servers (SMTP, LDAP) present it, their clients trust exactly this file.
import { chmodSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { mustRun } from "../exec.js";
import { findProgram } from "./programs.js";
import type { ServiceContext } from "./context.js";
import { namesServedBy, type WorldService } from "../world.js";

/** The PEM certificate a client of `svc` trusts (written when the service starts). */
export function serviceCertPath(ctx: Pick<ServiceContext, "workDir">, svc: Pick<WorldService, "name">): string {
  return join(ctx.workDir, "tls", `${svc.name}-cert.pem`);
}

/** Creates the certificate and its key; the key is readable by the service's own user. */
export async function makeServiceCertificate(ctx: ServiceContext, svc: WorldService): Promise<{ cert: string; key: string }> {
  mkdirSync(join(ctx.workDir, "tls"), { recursive: true });
  const cert = serviceCertPath(ctx, svc);
  const key = join(ctx.workDir, "tls", `${svc.name}-key.pem`);
  const names = namesServedBy(ctx.world, svc.addresses);
  const san = [`DNS:egret-mesh-${svc.name}`, ...names.map((n) => `DNS:${n}`), ...svc.addresses.map((a) => `IP:${a}`)].join(",");
  await mustRun(findProgram("openssl", "openssl"), [
    "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
    "-subj", `/CN=egret-mesh-${svc.name}`, "-addext", `subjectAltName=${san}`, "-keyout", key, "-out", cert,
  ]);
  // Servers drop to their own system user before reading the key; it is a throwaway test key.
  chmodSync(cert, 0o644);
  chmodSync(key, 0o644);
  return { cert, key };
}
