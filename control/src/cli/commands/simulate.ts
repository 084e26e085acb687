// `egret simulate --policy FILES… --pods PODS.yaml --pcap FILE [--json]`: replays a capture's DNS
// answers and TCP connections, in time order, through the agent's DNS observer, the control
// service (file mode) and egret.wasm in the Node proxy-wasm host, and prints the filter's verdict
// for every TCP connection.
import { readFileSync } from "node:fs";
import { CaptureFormatError } from "../../pcap/index.js";
import { createLogger } from "../../common/log.js";
import { simulateCapture, SimulateInputError, type SimulatedConnection } from "../../simulate/replay.js";
import { UsageError, parseFlags, type CliCommand } from "../command.js";

const USAGE = `Usage: egret simulate --policy FILES… --pods PODS.yaml --pcap FILE [options]

Replays a capture through the DNS observer, egret control and egret.wasm; prints one verdict per TCP connection.

Options:
  --policy FILES…              policy files or folders (YAML/JSON, multi-document) (required)
  --pods FILE                  pods and namespaces (YAML) (required)
  --pcap FILE                  capture file (pcap or pcapng) (required)
  --json                       one JSON object per connection
  --trusted-resolver IP…       believe only answers from these resolvers (default: any server answering a pod's query)
  --forward-proxy IP:PORT…     declared HTTP forward proxies: their CONNECT target is evaluated
  --no-detect-proxies          without --forward-proxy, do not treat servers that receive CONNECT / absolute-URI requests as declared proxies
  --wasm FILE                  egret.wasm to run (default: the built one)
  -h, --help                   this text

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
   "decisions":[{"time":s,"verdict":…,"reason":…,"policy":…,"rule":…,"names":[…],"protocol":…,"sni":…,"host":…,"matchedName":…},…]}
The replay uses the filter's configuration defaults (detection deadline 2 s) and fires its timer
ticks at the capture times a sidecar would.
Servers that receive CONNECT or absolute-URI requests are treated as declared forward proxies (the
request's target is what the policy judges) unless --forward-proxy lists them explicitly or
--no-detect-proxies is given. Connections from addresses that are not pods are listed with pod null, verdict allow, reason
not-a-pod (no sidecar decides them). A Monitor-mode deny is verdict allow, reason would-deny.
`;

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
    const { values: v } = parseFlags({ args: argv, options: {
      policy: { type: "string", multiple: true, variadic: true }, pods: { type: "string" }, pcap: { type: "string" },
      json: { type: "boolean", default: false }, "trusted-resolver": { type: "string", multiple: true, variadic: true },
      "forward-proxy": { type: "string", multiple: true, variadic: true }, "no-detect-proxies": { type: "boolean" },
      wasm: { type: "string" }, help: { type: "boolean", short: "h" },
    } }, USAGE);
    if (v.help) { process.stdout.write(USAGE); return 0; }
    for (const flag of ["policy", "pods", "pcap"] as const) if (!v[flag]) throw new UsageError(`--${flag} is required\n\n${USAGE}`);
    const opts = {
      policy: v.policy!, pods: v.pods!, pcap: v.pcap!, json: v.json === true, trustedResolver: v["trusted-resolver"],
      forwardProxy: v["forward-proxy"], detectProxies: !v["no-detect-proxies"], wasm: v.wasm,
    };
    // `egret simulate … | head` closes stdout early: stop quietly instead of dying on EPIPE.
    process.stdout.on("error", (e: NodeJS.ErrnoException) => { if (e.code === "EPIPE") process.exit(0); });
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
