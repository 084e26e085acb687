// Message brokers: MQTT (Eclipse Mosquitto, anonymous, no persistence) and AMQP 0-9-1 (RabbitMQ,
// the guest user allowed from any address). Both run as their own system users in the outside
// namespace with configuration and state in the mesh's scratch directory.
import { chownSync, existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { findProgram, MissingProgramError } from "./programs.js";
import { asUser, startOutside, stopAll, systemUser, tcpOpen, type RunningService, type ServiceContext } from "./context.js";
import type { WorldService } from "../world.js";

export async function startMqtt(ctx: ServiceContext, svc: WorldService): Promise<RunningService> {
  const mosquitto = findProgram("mosquitto", "mosquitto");
  const dir = join(ctx.workDir, svc.name);
  mkdirSync(dir, { recursive: true });
  const config = join(dir, "mosquitto.conf");
  // Started as root, mosquitto binds, then drops to its `mosquitto` user.
  writeFileSync(config, [
    ...svc.addresses.map((a) => `listener ${svc.port} ${a}`),
    "allow_anonymous true",
    "persistence false",
    "log_dest stdout",
    "",
  ].join("\n"));
  const p = startOutside(ctx, svc.name, mosquitto, ["-c", config]);
  await p.waitReady(() => tcpOpen(ctx.net.outsideNs, svc.addresses[0]!, svc.port), 30_000, "accepting connections");
  return { name: svc.name, kind: svc.kind, endpoints: svc.addresses.map((a) => `${a}:${svc.port}`), processes: [p], stop: () => stopAll([p]) };
}

/** The AMQP URL of `svc` for its clients (guest/guest, default vhost "/"). */
export function amqpUrl(host: string, port: number): string {
  return `amqp://guest:guest@${host}:${port}`;
}

const RABBITMQ_START = "/usr/lib/rabbitmq/bin/rabbitmq-server";

export async function startAmqp(ctx: ServiceContext, svc: WorldService): Promise<RunningService> {
  // The Debian wrapper (/usr/sbin/rabbitmq-server) insists on /var/lib/rabbitmq and its logs; the
  // real start script takes every path from the environment.
  const server = RABBITMQ_START;
  if (!existsSync(server)) throw new MissingProgramError(server, "rabbitmq-server");
  const epmd = findProgram("epmd", "erlang-base");
  const ids = systemUser("rabbitmq");
  const dir = join(ctx.workDir, svc.name);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chownSync(dir, ids.uid, ids.gid);
  const config = join(dir, "rabbitmq.conf");
  writeFileSync(config, [`listeners.tcp.default = ${svc.addresses[0]}:${svc.port}`, "loopback_users = none", ""].join("\n"));
  const plugins = join(dir, "enabled_plugins");
  writeFileSync(plugins, "[].\n");
  // Erlang's port mapper, run by us in the foreground: started by the node itself it would
  // daemonize and outlive the mesh.
  const mapper = startOutside(ctx, `${svc.name}-epmd`, asUser("rabbitmq")[0]!, [...asUser("rabbitmq").slice(1), epmd, "-address", "127.0.0.1"]);
  const env = {
    ...process.env, HOME: dir, RABBITMQ_NODENAME: `egret-${svc.name}@localhost`, RABBITMQ_MNESIA_BASE: join(dir, "mnesia"),
    RABBITMQ_LOG_BASE: join(dir, "log"), RABBITMQ_LOGS: "-", RABBITMQ_CONFIG_FILE: config, RABBITMQ_ENABLED_PLUGINS_FILE: plugins,
    RABBITMQ_PID_FILE: join(dir, "rabbitmq.pid"), ERL_EPMD_ADDRESS: "127.0.0.1",
  };
  const p = startOutside(ctx, svc.name, asUser("rabbitmq")[0]!, [...asUser("rabbitmq").slice(1), server], env);
  try {
    // The Erlang VM boots in seconds on an idle machine, far longer on a loaded one.
    await p.waitReady(() => tcpOpen(ctx.net.outsideNs, svc.addresses[0]!, svc.port), 120_000, "accepting AMQP connections");
  } catch (e) {
    await stopAll([p, mapper]);
    throw e;
  }
  return { name: svc.name, kind: svc.kind, endpoints: [`${svc.addresses[0]}:${svc.port}`], processes: [p, mapper], stop: async () => { await stopAll([p]); await stopAll([mapper]); } };
}
