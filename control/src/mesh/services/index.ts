// Starts the world's services in the outside namespace, in parallel, and stops them.
import type { World, WorldService } from "../world.js";
import type { RunningService, ServiceContext } from "./context.js";
import { startDns } from "./dns.js";
import { startMariadb, startMemcached, startPostgres, startRedis } from "./databases.js";
import { startAmqp, startMqtt } from "./brokers.js";
import { startLdap } from "./directory.js";
import { startSmtp } from "./mail.js";
import { startSsh } from "./shell.js";
import { startForwardProxy, startWeb } from "./web.js";
import { missingPrograms } from "./programs.js";

export type { RunningService, ServiceContext } from "./context.js";
export { webCaPath } from "./web.js";
export { serviceCertPath } from "./certificate.js";
export { sshClientKeyPath } from "./shell.js";
export { amqpUrl } from "./brokers.js";
export { LDAP_ROOT_DN, LDAP_ROOT_PASSWORD, LDAP_SUFFIX } from "./directory.js";
export { MissingProgramError, findProgram, missingPrograms } from "./programs.js";

const STARTERS: Record<WorldService["kind"], (ctx: ServiceContext, svc: WorldService) => Promise<RunningService>> = {
  postgresql: startPostgres,
  mariadb: startMariadb,
  redis: startRedis,
  web: startWeb,
  "forward-proxy": startForwardProxy,
  ssh: startSsh,
  smtp: startSmtp,
  ldap: startLdap,
  mqtt: startMqtt,
  amqp: startAmqp,
  memcached: startMemcached,
};

/** Server programs per service kind, with their Debian packages. */
export const SERVER_PROGRAMS: Record<WorldService["kind"] | "dns", [string, string][]> = {
  dns: [["unbound", "unbound"], ["dig", "dnsutils"]],
  postgresql: [["initdb", "postgresql"], ["postgres", "postgresql"]],
  mariadb: [["mariadb-install-db", "mariadb-server"], ["mariadbd", "mariadb-server"]],
  redis: [["redis-server", "redis-server"]],
  web: [["openssl", "openssl"]],
  "forward-proxy": [["tinyproxy", "tinyproxy"]],
  ssh: [["sshd", "openssh-server"], ["ssh-keygen", "openssh-client"]],
  smtp: [["exim4", "exim4-daemon-light"]],
  ldap: [["slapd", "slapd"]],
  mqtt: [["mosquitto", "mosquitto"]],
  amqp: [["rabbitmq-server", "rabbitmq-server"], ["epmd", "erlang-base"]],
  memcached: [["memcached", "memcached"]],
};

/** "program (package)" for each server program of `kinds` that is not installed. */
export function missingServerPrograms(kinds: readonly (WorldService["kind"] | "dns")[]): string[] {
  return missingPrograms([...new Set(kinds)].flatMap((k) => SERVER_PROGRAMS[k]));
}

/**
 * Starts cluster DNS and the named services (all of the world's when `only` is omitted). On any
 * failure, stops what did start and rethrows the first error.
 */
export async function startServices(ctx: ServiceContext, world: World, only?: readonly string[]): Promise<RunningService[]> {
  const wanted = world.services.filter((s) => !only || only.includes(s.name));
  const results = await Promise.allSettled([startDns(ctx), ...wanted.map((s) => STARTERS[s.kind](ctx, s))]);
  const started = results.flatMap((r) => (r.status === "fulfilled" ? [r.value] : []));
  const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
  if (failed) {
    await stopServices(started);
    throw failed.reason;
  }
  return started;
}

export async function stopServices(services: RunningService[]): Promise<void> {
  await Promise.all(services.map((s) => s.stop()));
}
