// Scenario steps as commands in a test pod (kubectl exec), with the same success criteria as
// the mesh-in-a-box (control/src/mesh/clients.ts): a client "connected" only when the real
// service answered, because a sidecar that denies accepts the TCP connection and then closes it.
import { isIPv4 } from "node:net";
import type { ConnectStep, ResolveStep, AuditExpectation } from "../../../control/src/mesh/scenario.js";
import { CA_PATH } from "./objects.js";

const MARKER = "egret-mesh-ok";

export interface StepCommand {
  argv: string[];
  /** Bytes for the client's stdin (openssl waits for it). */
  input?: string;
  succeeded(code: number, stdout: string, stderr: string): boolean;
}

export function connectCommand(step: ConnectStep): StepCommand {
  const port = step.port ?? defaultPort(step);
  // Matched as strings: a client the scenario format gains later fails loudly here.
  switch (step.client as string) {
    case "psql":
      return { argv: ["env", "PGCONNECT_TIMEOUT=10", "PGSSLMODE=disable", "psql", "-h", step.to, "-p", String(port), "-U", "postgres", "-d", "postgres", "-w", "-tA", "-c", `select '${MARKER}'`],
        succeeded: (c, o) => c === 0 && o.includes(MARKER) };
    case "mariadb":
      return { argv: ["mariadb", "--no-defaults", "-h", step.to, "-P", String(port), "-u", "root", "--connect-timeout=10", "--skip-ssl", "-N", "-e", `select '${MARKER}'`],
        succeeded: (c, o) => c === 0 && o.includes(MARKER) };
    case "redis-cli":
      return { argv: ["redis-cli", "-h", step.to, "-p", String(port), "ECHO", MARKER], succeeded: (c, o) => c === 0 && o.includes(MARKER) };
    case "curl": {
      const scheme = step.scheme ?? (port === 443 ? "https" : "http");
      const argv = ["curl", "-sS", "--max-time", "15", "--cacert", CA_PATH, "-o", "-", `${scheme}://${step.to}:${port}${step.path ?? "/"}`];
      if (step.host) argv.push("-H", `Host: ${step.host}`);
      if (step.proxy) argv.push("--proxy", `http://${step.proxy}`);
      return { argv, succeeded: (c, o) => c === 0 && o.startsWith("egret-mesh-web") };
    }
    case "openssl": {
      const argv = ["openssl", "s_client", "-connect", `${step.to}:${port}`, "-CAfile", CA_PATH, "-verify_return_error", "-brief"];
      const sni = step.sni ?? (isIPv4(step.to) ? undefined : step.to);
      if (sni) argv.push("-servername", sni);
      return { argv, input: "", succeeded: (c, o, e) => c === 0 && /Verification: OK|Verify return code: 0/.test(o + e) };
    }
    case "tcp":
      return { argv: ["node", "/opt/egret-world/tcp-probe.js", step.to, String(port), Buffer.from(step.send ?? "", "utf8").toString("base64")],
        succeeded: (c, o) => c === 0 && o.includes('"connected":true') };
    default:
      throw new Error(`client "${step.client}" is not supported by the real-cluster runner yet`);
  }
}

function defaultPort(step: ConnectStep): number {
  switch (step.client) {
    case "psql": return 5432;
    case "mariadb": return 3306;
    case "redis-cli": return 6379;
    case "curl": return (step.scheme ?? "https") === "https" ? 443 : 80;
    default: return 443;
  }
}

export function resolveCommand(step: ResolveStep): { argv: string[]; parse(code: number, stdout: string): { rcode: string; addresses: string[] } } {
  // DNS over TCP: `tcp: true` on a dig step (older files: `with: dig-tcp`).
  const tcp = (step as { tcp?: unknown }).tcp === true || (step.with as string) === "dig-tcp";
  // Matched as strings: a resolver the scenario format gains later fails loudly here.
  switch (step.with as string) {
    case "dig":
    case "dig-tcp":
      return { argv: ["dig", ...(tcp ? ["+tcp"] : []), "+time=2", "+tries=2", step.name, "A"], parse: (code, out) => ({
        rcode: /status: ([A-Z]+)/.exec(out)?.[1] ?? (code === 0 ? "NOERROR" : "TIMEOUT"),
        addresses: [...(out.split(";; ANSWER SECTION:")[1]?.split("\n\n")[0] ?? "").matchAll(/\sIN\s+A\s+(\d+\.\d+\.\d+\.\d+)/g)].map((m) => m[1]!),
      }) };
    case "getent":
      return { argv: ["getent", "ahostsv4", step.name], parse: (code, out) => ({
        rcode: code === 0 ? "NOERROR" : code === 2 ? "NXDOMAIN" : `exit ${code}`,
        addresses: [...new Set(out.split("\n").map((l) => l.split(/\s+/)[0]!).filter((a) => isIPv4(a)))],
      }) };
    case "node":
      return { argv: ["node", "-e", 'require("dns").promises.lookup(process.argv[1],{all:true,family:4}).then(a=>console.log(JSON.stringify({rcode:"NOERROR",addresses:a.map(x=>x.address)})),e=>console.log(JSON.stringify({rcode:e.code==="ENOTFOUND"?"NXDOMAIN":e.code,addresses:[]})))', step.name],
        parse: (code, out) => { try { return JSON.parse(out.trim()) as { rcode: string; addresses: string[] }; } catch { return { rcode: `exit ${code}`, addresses: [] }; } } };
    default:
      throw new Error(`resolver "${step.with}" is not supported by the real-cluster runner yet`);
  }
}

/** "VERDICT_WOULD_DENY", "would_deny" and "would-deny" compare equal, as do proto enum names. */
function normalize(v: unknown): string {
  return String(v).toLowerCase().replace(/^(verdict|reason)_/, "").replace(/_/g, "-");
}

/** Deep search: does any string value in the object equal one of `values`? */
function mentions(node: unknown, values: string[]): boolean {
  if (typeof node === "string") return values.includes(node);
  if (Array.isArray(node)) return node.some((n) => mentions(n, values));
  if (node && typeof node === "object") return Object.values(node).some((v) => mentions(v, values));
  return false;
}

/** First value found under `key` anywhere in the object (breadth-first). */
function field(node: unknown, key: string): unknown {
  const queue: unknown[] = [node];
  while (queue.length > 0) {
    const n = queue.shift();
    if (n && typeof n === "object" && !Array.isArray(n)) {
      const rec = n as Record<string, unknown>;
      if (key in rec) return rec[key];
      queue.push(...Object.values(rec));
    }
  }
  return undefined;
}

/**
 * Finds the audit line for a connection (JSON lines from the control service's log): one that
 * names the pod and the destination address, and checks verdict/reason/policy/rule.
 * Returns undefined when no line for the connection exists yet (the caller polls).
 */
export function auditVerdict(lines: string[], pod: { namespace: string; name: string }, dst: { ip?: string; port: number }, expect: AuditExpectation):
  { ok: boolean; line: string; mismatches: string[] } | undefined {
  const podNames = [pod.name, `${pod.namespace}/${pod.name}`];
  const dsts = dst.ip ? [dst.ip, `${dst.ip}:${dst.port}`] : [];
  for (const line of lines.slice().reverse()) {
    let j: unknown;
    try { j = JSON.parse(line); } catch { continue; }
    if (field(j, "verdict") === undefined || !mentions(j, podNames) || (dsts.length > 0 && !mentions(j, dsts))) continue;
    const mismatches: string[] = [];
    for (const k of ["verdict", "reason", "policy", "rule"] as const) {
      if (expect[k] === undefined) continue;
      const got = field(j, k);
      if (normalize(got) !== normalize(expect[k])) mismatches.push(`${k}: expected ${String(expect[k])}, got ${String(got)}`);
    }
    return { ok: mismatches.length === 0, line, mismatches };
  }
  return undefined;
}
