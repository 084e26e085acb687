// LDAP (OpenLDAP's slapd): one empty MDB database (dc=example,dc=test) whose root DN can bind with
// a password, the root DSE readable anonymously, StartTLS with the service's own certificate.
import { chownSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { makeServiceCertificate } from "./certificate.js";
import { findProgram } from "./programs.js";
import { startOutside, stopAll, systemUser, tcpOpen, type RunningService, type ServiceContext } from "./context.js";
import type { WorldService } from "../world.js";

/** The directory's suffix, its root DN and that DN's password (a test directory, never exposed). */
export const LDAP_SUFFIX = "dc=example,dc=test";
export const LDAP_ROOT_DN = `cn=admin,${LDAP_SUFFIX}`;
export const LDAP_ROOT_PASSWORD = "egret-mesh";

export async function startLdap(ctx: ServiceContext, svc: WorldService): Promise<RunningService> {
  const slapd = findProgram("slapd", "slapd");
  const ids = systemUser("openldap");
  const dir = join(ctx.workDir, svc.name);
  const db = join(dir, "db");
  mkdirSync(db, { recursive: true, mode: 0o700 });
  chownSync(dir, ids.uid, ids.gid);
  chownSync(db, ids.uid, ids.gid);
  const { cert, key } = await makeServiceCertificate(ctx, svc);
  const config = join(dir, "slapd.conf");
  writeFileSync(config, [
    "include /etc/ldap/schema/core.schema",
    `pidfile ${join(dir, "slapd.pid")}`,
    `argsfile ${join(dir, "slapd.args")}`,
    "modulepath /usr/lib/ldap",
    "moduleload back_mdb",
    `TLSCertificateFile ${cert}`,
    `TLSCertificateKeyFile ${key}`,
    "database mdb",
    "maxsize 16777216",
    `suffix "${LDAP_SUFFIX}"`,
    `rootdn "${LDAP_ROOT_DN}"`,
    `rootpw ${LDAP_ROOT_PASSWORD}`,
    `directory ${db}`,
    "",
  ].join("\n"));
  // -d 0: stay in the foreground without debug output; -u/-g: drop to the openldap user.
  const urls = svc.addresses.map((a) => `ldap://${a}:${svc.port}/`).join(" ");
  const p = startOutside(ctx, svc.name, slapd, ["-d", "0", "-u", "openldap", "-g", "openldap", "-h", urls, "-f", config]);
  await p.waitReady(() => tcpOpen(ctx.net.outsideNs, svc.addresses[0]!, svc.port), 30_000, "accepting connections");
  return { name: svc.name, kind: svc.kind, endpoints: svc.addresses.map((a) => `${a}:${svc.port}`), processes: [p], stop: () => stopAll([p]) };
}
