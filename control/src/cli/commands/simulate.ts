// `egret simulate --policy FILES… --pods PODS.yaml --pcap FILE [--json]`: replays a capture's DNS
// answers and TCP connections, in time order, through the agent's DNS observer, the control
// service (file mode) and egret.wasm in the Node proxy-wasm host, and prints the filter's verdict
// for every TCP connection.
import { readFileSync } from "node:fs";
import { Command, CommanderError } from "commander";
import { CaptureFormatError } from "../../pcap/index.js";
import { createLogger } from "../../common/log.js";
import { simulateCapture, SimulateInputError, type SimulatedConnection } from "../../simulate/replay.js";
import { UsageError, type CliCommand } from "../command.js";

const HELP_AFTER = `
PODS.yaml lists the pods and namespace labels (the same file \`egret control --pods\` reads):
  namespaces:
    - {name: shop, labels: {team: payments}}
  pods:
    - {name: web-0, namespace: shop, ip: 10.1.0.7, labels: {app: web}}

Output: one line per TCP connection of the capture with its FINAL verdict (a later request on a
keep-alive or proxy connection can revise the first one; such lines say "revised"). With --json,
one object per connection, with every decision on it:
  {"client":"ip:port","server":"ip:port","pod":"ns/name","names":[…],"protocol":…,"sni":…,
   "verdict":"allow|deny|alert","reason":…,"policy":…,"rule":…,
   "decisions":[{"time":s,"verdict":…,"reason":…,"policy":…,"rule":…,"names":[…],"protocol":…,"sni":…,"host":…},…]}
The replay uses the filter's configuration defaults (detection deadline 2 s) and fires its timer
ticks at the capture times a sidecar would.
Servers that receive CONNECT or absolute-URI requests are treated as declared forward proxies (the
request's target is what the policy judges) unless --forward-proxy lists them explicitly or
--no-detect-proxies is given. Connections from addresses that are not pods are listed with pod null, verdict allow, reason
not-a-pod (no sidecar decides them). A Monitor-mode deny is verdict allow, reason would-deny.`;

function format(c: SimulatedConnection): string {
  const names = c.names.length ? ` names=${c.names.join(",")}` : "";
  const rule = c.policy ? ` policy=${c.policy}${c.rule ? ` rule=${c.rule}` : ""}` : "";
  const revised = c.decisions.length > 1 ? ` revised(${c.decisions.map((d) => d.verdict).join("→")})` : "";
  return `${c.verdict.toUpperCase().padEnd(5)} ${c.client} -> ${c.server} pod=${c.pod ?? "-"} protocol=${c.protocol}${c.sni ? ` sni=${c.sni}` : ""}${names} reason=${c.reason}${rule}${revised}`;
}

export const command: CliCommand = {
  name: "simulate",
  summary: "replay a capture's DNS and TCP through the real filter and print each connection's verdict",
  async run(argv) {
    const program = new Command("egret simulate")
      .description("Replays a capture through the DNS observer, egret control and egret.wasm; prints one verdict per TCP connection.")
      .requiredOption("--policy <files...>", "policy files or folders (YAML/JSON, multi-document)")
      .requiredOption("--pods <file>", "pods and namespaces (YAML)")
      .requiredOption("--pcap <file>", "capture file (pcap or pcapng)")
      .option("--json", "one JSON object per connection", false)
      .option("--trusted-resolver <ip...>", "believe only answers from these resolvers (default: any server answering a pod's query)")
      .option("--forward-proxy <ip:port...>", "declared HTTP forward proxies: their CONNECT target is evaluated")
      .option("--no-detect-proxies", "without --forward-proxy, do not treat servers that receive CONNECT / absolute-URI requests as declared proxies")
      .option("--wasm <file>", "egret.wasm to run (default: the built one)")
      .addHelpText("after", HELP_AFTER)
      .exitOverride()
      // Errors become a UsageError (printed once by the dispatcher, exit 2); help goes to stdout.
      .configureOutput({ writeOut: (s) => process.stdout.write(s), writeErr: (s) => process.stderr.write(s), outputError: () => undefined });
    // `egret simulate … | head` closes stdout early: stop quietly instead of dying on EPIPE.
    process.stdout.on("error", (e: NodeJS.ErrnoException) => { if (e.code === "EPIPE") process.exit(0); });
    try {
      program.parse(argv, { from: "user" });
    } catch (e) {
      if (e instanceof CommanderError) {
        if (e.code === "commander.helpDisplayed" || e.code === "commander.help") return 0;
        throw new UsageError(e.message.replace(/^error: /, ""));
      }
      throw e;
    }
    const opts = program.opts<{ policy: string[]; pods: string; pcap: string; json: boolean; trustedResolver?: string[]; forwardProxy?: string[]; detectProxies: boolean; wasm?: string }>();
    let capture: Uint8Array;
    try {
      capture = readFileSync(opts.pcap);
    } catch (e) {
      throw new UsageError(`cannot read --pcap ${opts.pcap}: ${(e as Error).message}`);
    }
    let results: SimulatedConnection[];
    try {
      results = await simulateCapture({
        policyPaths: opts.policy, podsFile: opts.pods, capture, trustedResolvers: opts.trustedResolver ?? null,
        wasm: opts.wasm, log: createLogger("simulate", process.env.EGRET_LOG_LEVEL ?? "error"),
        filterConfig: opts.forwardProxy ? { forwardProxies: opts.forwardProxy } : undefined,
        detectProxies: opts.detectProxies,
      });
    } catch (e) {
      if (e instanceof SimulateInputError) {
        process.stderr.write(`egret simulate: ${e.message}\n`);
        return 1;
      }
      if (e instanceof CaptureFormatError) {
        process.stderr.write(`egret simulate: ${opts.pcap}: ${e.message}\n`);
        return 1;
      }
      throw e;
    }
    for (const c of results) {
      if (opts.json) {
        const { client, server, pod, names, protocol, sni, verdict, reason, policy, rule, decisions } = c;
        const extra = c.mode ? { mode: c.mode, detail: c.detail } : {};
        process.stdout.write(JSON.stringify({ client, server, pod, names, protocol, sni, verdict, reason, policy, rule, ...extra, decisions }) + "\n");
      } else {
        process.stdout.write(format(c) + "\n");
      }
    }
    const counts = results.reduce<Record<string, number>>((m, c) => ((m[c.verdict] = (m[c.verdict] ?? 0) + 1), m), {});
    process.stderr.write(`egret simulate: ${results.length} TCP connections: ${Object.entries(counts).map(([k, v]) => `${v} ${k}`).join(", ") || "none"}\n`);
    return 0;
  },
};
