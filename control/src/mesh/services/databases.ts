// PostgreSQL, MariaDB, Redis and memcached, each initialised into the mesh's scratch directory and run as
// its own system user inside the outside namespace. Authentication is open (trust / no grant
// tables): these are targets for connection tests, never reachable from outside the machine.
import { appendFileSync, mkdirSync, chmodSync } from "node:fs";
import { join } from "node:path";
import { mustRun } from "../exec.js";
import { findProgram } from "./programs.js";
import { asUser, startOutside, stopAll, tcpOpen, userDir, type RunningService, type ServiceContext } from "./context.js";
import type { WorldService } from "../world.js";

export async function startPostgres(ctx: ServiceContext, svc: WorldService): Promise<RunningService> {
  const initdb = findProgram("initdb", "postgresql");
  const postgres = findProgram("postgres", "postgresql");
  const data = join(userDir(ctx, "postgresql", "postgres"), "data");
  const sockets = userDir(ctx, "postgresql-run", "postgres");
  await mustRun("setpriv", [...asUser("postgres").slice(1), initdb, "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"], { timeoutMs: 60_000 });
  appendFileSync(join(data, "pg_hba.conf"), "host all all 0.0.0.0/0 trust\n");
  const p = startOutside(ctx, svc.name, asUser("postgres")[0]!, [
    ...asUser("postgres").slice(1), postgres, "-D", data, "-k", sockets, "-p", String(svc.port),
    "-c", `listen_addresses=${svc.addresses.join(",")}`, "-c", "fsync=off", "-c", "synchronous_commit=off",
    "-c", "full_page_writes=off", "-c", "shared_buffers=16MB", "-c", "max_connections=50",
  ]);
  await p.waitReady(() => tcpOpen(ctx.net.outsideNs, svc.addresses[0]!, svc.port), 60_000, "accepting connections");
  return { name: svc.name, kind: svc.kind, endpoints: svc.addresses.map((a) => `${a}:${svc.port}`), processes: [p], stop: () => stopAll([p]) };
}

export async function startMariadb(ctx: ServiceContext, svc: WorldService): Promise<RunningService> {
  const install = findProgram("mariadb-install-db", "mariadb-server");
  const mariadbd = findProgram("mariadbd", "mariadb-server");
  const base = userDir(ctx, "mariadb", "mysql");
  const data = join(base, "data");
  // A temporary directory of this mesh's own: at start-up mariadbd deletes every "#sql*" file in its
  // tmpdir (mysql_rm_tmp_tables), so servers sharing /tmp — another mesh on the machine starting
  // at the same moment — delete each other's temporary tables and the bootstrap aborts.
  const tmp = userDir(ctx, "mariadb-tmp", "mysql");
  await mustRun(install, ["--no-defaults", `--datadir=${data}`, `--tmpdir=${tmp}`, "--user=mysql", "--auth-root-authentication-method=normal", "--skip-test-db", "--skip-name-resolve"], { timeoutMs: 120_000 });
  // One address per server: bind-address takes a single value before MariaDB 10.11's list form.
  const p = startOutside(ctx, svc.name, mariadbd, [
    "--no-defaults", `--datadir=${data}`, `--tmpdir=${tmp}`, `--socket=${join(base, "mariadb.sock")}`, `--pid-file=${join(base, "mariadb.pid")}`,
    `--bind-address=${svc.addresses[0]}`, `--port=${svc.port}`, "--user=mysql", "--skip-grant-tables", "--skip-name-resolve",
    "--innodb-buffer-pool-size=16M", "--skip-log-bin", "--max-connections=50",
  ]);
  await p.waitReady(() => tcpOpen(ctx.net.outsideNs, svc.addresses[0]!, svc.port), 90_000, "accepting connections");
  return { name: svc.name, kind: svc.kind, endpoints: [`${svc.addresses[0]}:${svc.port}`], processes: [p], stop: () => stopAll([p]) };
}

export async function startRedis(ctx: ServiceContext, svc: WorldService): Promise<RunningService> {
  const redis = findProgram("redis-server", "redis-server");
  const dir = join(ctx.workDir, "redis");
  mkdirSync(dir, { recursive: true });
  chmodSync(dir, 0o700);
  const p = startOutside(ctx, svc.name, redis, [
    "--bind", ...svc.addresses, "--port", String(svc.port), "--save", "", "--appendonly", "no",
    "--protected-mode", "no", "--daemonize", "no", "--dir", dir, "--loglevel", "warning",
  ]);
  await p.waitReady(() => tcpOpen(ctx.net.outsideNs, svc.addresses[0]!, svc.port), 30_000, "accepting connections");
  return { name: svc.name, kind: svc.kind, endpoints: svc.addresses.map((a) => `${a}:${svc.port}`), processes: [p], stop: () => stopAll([p]) };
}

export async function startMemcached(ctx: ServiceContext, svc: WorldService): Promise<RunningService> {
  const memcached = findProgram("memcached", "memcached");
  // TCP only (-U 0), on the service's addresses, as the memcache user, 16 MB.
  const p = startOutside(ctx, svc.name, memcached, ["-l", svc.addresses.join(","), "-p", String(svc.port), "-U", "0", "-u", "memcache", "-m", "16", "-c", "64"]);
  await p.waitReady(() => tcpOpen(ctx.net.outsideNs, svc.addresses[0]!, svc.port), 30_000, "accepting connections");
  return { name: svc.name, kind: svc.kind, endpoints: svc.addresses.map((a) => `${a}:${svc.port}`), processes: [p], stop: () => stopAll([p]) };
}
