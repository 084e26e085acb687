// What every outside service gets to start itself, and what it hands back.
import { join } from "node:path";
import { mkdirSync, chownSync } from "node:fs";
import { run, runSync } from "../exec.js";
import { ManagedProcess } from "../process.js";
import type { MeshNetwork } from "../netns.js";
import type { World, WorldService } from "../world.js";

export interface ServiceContext {
  net: MeshNetwork;
  world: World;
  /** Private scratch directory for data, configuration and logs (removed with the mesh). */
  workDir: string;
}

export interface RunningService {
  name: string;
  kind: WorldService["kind"] | "dns";
  /** host:port lines for messages, e.g. "198.19.1.10:5432". */
  endpoints: string[];
  processes: ManagedProcess[];
  stop(): Promise<void>;
}

/** Starts `cmd` inside the outside namespace, logging to <workDir>/<name>.log. */
export function startOutside(ctx: ServiceContext, name: string, cmd: string, args: string[], env?: NodeJS.ProcessEnv): ManagedProcess {
  return ManagedProcess.start({
    name,
    cmd: "ip",
    args: ["netns", "exec", ctx.net.outsideNs, cmd, ...args],
    logFile: join(ctx.workDir, `${name}.log`),
    env,
  });
}

/** True once something accepts TCP connections on ip:port, checked from inside the namespace. */
export async function tcpOpen(ns: string, ip: string, port: number): Promise<boolean> {
  const r = await run("ip", ["netns", "exec", ns, "bash", "-c", `exec 3<>/dev/tcp/${ip}/${port}`], { timeoutMs: 3_000 });
  return r.code === 0;
}

/** A directory owned by a system user (database servers refuse to run as root). */
export function userDir(ctx: ServiceContext, name: string, user: string): string {
  const dir = join(ctx.workDir, name);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const ids = systemUser(user);
  chownSync(dir, ids.uid, ids.gid);
  return dir;
}

export function systemUser(user: string): { uid: number; gid: number } {
  const out = runSync("id", ["-u", user]).stdout.trim();
  const gid = runSync("id", ["-g", user]).stdout.trim();
  if (!/^\d+$/.test(out) || !/^\d+$/.test(gid)) {
    throw new Error(`system user "${user}" does not exist; install the server package that creates it (see scripts/apt-packages.txt)`);
  }
  return { uid: Number(out), gid: Number(gid) };
}

/** `setpriv` arguments that drop to a system user before running a server. */
export function asUser(user: string): string[] {
  return ["setpriv", `--reuid=${user}`, `--regid=${user}`, "--init-groups"];
}

export async function stopAll(processes: ManagedProcess[]): Promise<void> {
  await Promise.all(processes.map((p) => p.stop()));
}
