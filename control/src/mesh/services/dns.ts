// Cluster DNS: unbound serving the world's records from one local root zone (authoritative data,
// recursion on top so CNAME chains are followed and TTLs count down in its cache, as a real
// resolver's do). Unknown names get NXDOMAIN at once instead of a timeout.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { findProgram } from "./programs.js";
import { startOutside, stopAll, type RunningService, type ServiceContext } from "./context.js";
import { zoneFile } from "../world.js";
import { run } from "../exec.js";

/** Which DNS server the mesh runs: unbound when installed, else the built-in one. */
export function dnsImplementation(): "unbound" | "built-in" {
  try { findProgram("unbound", "unbound"); return "unbound"; } catch { return "built-in"; }
}

export async function startDns(ctx: ServiceContext): Promise<RunningService> {
  return dnsImplementation() === "unbound" ? startUnbound(ctx) : startBuiltinDns(ctx);
}

/** The built-in server (servers/dns-server.ts), checked from inside the namespace with Node's resolver. */
async function startBuiltinDns(ctx: ServiceContext): Promise<RunningService> {
  const recordsPath = join(ctx.workDir, "records.json");
  writeFileSync(recordsPath, JSON.stringify([{ name: "ns.test", ttl: 3600, type: "A", value: ctx.world.resolver }, ...ctx.world.records]));
  const script = fileURLToPath(new URL("../servers/dns-server.js", import.meta.url));
  const p = startOutside(ctx, "dns", process.execPath, [script, "--listen", `${ctx.world.resolver}:53`, "--records", recordsPath]);
  const check = `const r=new (require("dns").promises.Resolver)();r.setServers(["${ctx.world.resolver}"]);r.resolve4("ns.test").then((a)=>process.exit(a[0]==="${ctx.world.resolver}"?0:1),()=>process.exit(1))`;
  await p.waitReady(async () => (await run("ip", ["netns", "exec", ctx.net.outsideNs, process.execPath, "-e", check], { timeoutMs: 3000 })).code === 0, 20_000, "answering DNS");
  return { name: "dns", kind: "dns", endpoints: [`${ctx.world.resolver}:53`], processes: [p], stop: () => stopAll([p]) };
}

async function startUnbound(ctx: ServiceContext): Promise<RunningService> {
  const unbound = findProgram("unbound", "unbound");
  const zonePath = join(ctx.workDir, "root.zone");
  writeFileSync(zonePath, zoneFile(ctx.world));
  const confPath = join(ctx.workDir, "unbound.conf");
  writeFileSync(confPath, [
    "server:",
    `  interface: ${ctx.world.resolver}`,
    "  port: 53",
    "  do-daemonize: no",
    '  username: ""',
    '  chroot: ""',
    `  directory: "${ctx.workDir}"`,
    '  pidfile: ""',
    "  use-syslog: no",
    '  logfile: ""',
    "  verbosity: 1",
    "  access-control: 0.0.0.0/0 allow",
    "  do-ip6: no",
    '  module-config: "iterator"',
    "  num-threads: 1",
    "  so-reuseport: no",
    "  minimal-responses: yes",
    // RFC 6761 makes unbound answer NXDOMAIN for .test unless told otherwise.
    '  local-zone: "test." nodefault',
    "auth-zone:",
    '  name: "."',
    `  zonefile: "${zonePath}"`,
    "  for-downstream: no",
    "  for-upstream: yes",
    "  fallback-enabled: no",
    "",
  ].join("\n"));
  const check = await run(findProgram("unbound-checkconf", "unbound"), [confPath]);
  if (check.code !== 0) throw new Error(`unbound configuration rejected: ${check.stderr || check.stdout}`);
  const p = startOutside(ctx, "unbound", unbound, ["-d", "-c", confPath]);
  const probe = async () => (await run("ip", ["netns", "exec", ctx.net.outsideNs, findProgram("dig", "dnsutils"), "+short", "+time=1", "+tries=1", `@${ctx.world.resolver}`, "ns.test"], { timeoutMs: 3000 })).stdout.trim() === ctx.world.resolver;
  await p.waitReady(probe, 20_000, "answering DNS");
  return { name: "dns", kind: "dns", endpoints: [`${ctx.world.resolver}:53`], processes: [p], stop: () => stopAll([p]) };
}
