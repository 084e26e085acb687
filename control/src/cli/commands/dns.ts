// `egret dns --pcap FILE`: runs the node agent's DNS observer over a capture file, with the capture's
// own clock, and prints the answers it would have accepted as evidence.
import { readFileSync } from "node:fs";
import { CaptureFormatError } from "../../pcap/index.js";
import { DnsObserver, REJECT_REASONS, type DnsObservation } from "../../dns/observer.js";
import { analyzeCapture, type OfflineResult } from "../../dns/offline.js";
import { typeName } from "../../dns/wire.js";
import { parseFlags, UsageError, type CliCommand } from "../command.js";

const HELP = `usage: egret dns --pcap FILE [--json] [--trusted-resolver IP|CIDR]... [options]

Runs the DNS observer of \`egret agent\` over a capture file (pcap or pcapng; Ethernet, Linux cooked
v1/v2, raw IP; IPv4 and IPv6; DNS over UDP and TCP) and prints every answer it accepts as evidence,
one per line (JSON objects with --json). Counts of rejected packets by reason go to stderr.

Matching rules are the agent's: an answer counts only if it answers a query seen in the capture
(transaction id, both addresses and ports, question) and is the first answer to it.

Output (--json), one object per accepted answer:
  {"time": seconds since the epoch (capture clock), "client", "server", "transport": "udp"|"tcp",
   "id", "qname", "qtype", "rcode" (with EDNS0 extended bits), "truncated", "negative"
   (NXDOMAIN or NODATA), "cnameChain", "answers": [{"name", "type", "ttl", "data"}]}
Names are lowercase without the trailing dot ("." is the root). "answers" holds the records owned
by the question or a name of its CNAME chain (the evidence). "ttl" is the effective TTL (values
>= 2^31 count as 0, then --min-ttl/--max-ttl). "data": A/AAAA address, CNAME/NS/PTR/DNAME/MX/SRV
target, SOA primary server, TXT/SPF string (list if several); null for other types.

  --pcap FILE               capture to read (required)
  --json                    one JSON object per accepted answer on stdout, summary as JSON on stderr
  --trusted-resolver IP     believe only answers from this address or CIDR (repeatable). Without it
                            the command runs in offline-analysis mode: any server that answers a
                            matching query is believed.
  --pod-cidr CIDR           only these addresses send queries; a "response" from one is rejected
                            as sent-by-pod (repeatable)
  --dns-port N              server port carrying DNS (repeatable; default 53)
  --min-ttl S, --max-ttl S  clamp answer TTLs (default: no clamp; TTLs >= 2^31 count as 0)
  --query-timeout-ms MS     forget unanswered queries after this long (default 30000)
`;

function intFlag(value: string | undefined, name: string, fallback: number | undefined): number | undefined {
  if (value === undefined) return fallback;
  if (!/^\d+$/.test(value)) throw new UsageError(`--${name} must be a non-negative integer, got "${value}"`);
  return Number(value);
}

/** Seconds since the epoch, microsecond precision (the capture's own clock). */
function seconds(ms: number): number {
  return Math.round(ms * 1000) / 1e6;
}

function toJson(o: DnsObservation) {
  return {
    time: seconds(o.time),
    client: o.podIp,
    server: o.resolver,
    transport: o.transport,
    id: o.id,
    qname: o.qname,
    qtype: typeName(o.qtype),
    rcode: o.rcode,
    truncated: o.truncated,
    negative: o.negative,
    cnameChain: o.cnameChain,
    answers: o.answers.map((a) => ({ name: a.name, type: a.type, ttl: a.ttl, data: a.data })),
  };
}

function toText(o: DnsObservation): string {
  const answers = o.answers.map((a) => `${a.name} ${a.ttl} ${a.type} ${Array.isArray(a.data) ? a.data.join(" ") : a.data ?? "-"}`);
  const flags = [o.negative ? "negative" : "", o.truncated ? "truncated" : ""].filter(Boolean).join(",");
  return `${new Date(o.time).toISOString()} ${o.transport} ${o.podIp} <- ${o.resolver} ${o.qname} ${typeName(o.qtype)} rcode=${o.rcode}${flags ? ` (${flags})` : ""}` +
    (answers.length ? `\n  ${answers.join("\n  ")}` : "");
}

export const command: CliCommand = {
  name: "dns",
  summary: "print the DNS answers the node agent would accept as evidence from a capture file",
  async run(argv) {
    const { values } = parseFlags({
        args: argv,
        options: {
          pcap: { type: "string" },
          json: { type: "boolean", default: false },
          "trusted-resolver": { type: "string", multiple: true },
          "pod-cidr": { type: "string", multiple: true },
          "dns-port": { type: "string", multiple: true },
          "min-ttl": { type: "string" },
          "max-ttl": { type: "string" },
          "query-timeout-ms": { type: "string" },
          help: { type: "boolean", short: "h", default: false },
        },
        strict: true,
        allowPositionals: false,
    }, HELP);
    if (values.help) {
      process.stdout.write(HELP);
      return 0;
    }
    if (!values.pcap) throw new UsageError(`--pcap FILE is required\n\n${HELP}`);
    const ports = (values["dns-port"] ?? ["53"]).map((p) => {
      const n = intFlag(p, "dns-port", undefined)!;
      if (n < 1 || n > 65535) throw new UsageError(`--dns-port must be 1..65535, got ${p}`);
      return n;
    });
    const minTtlSec = intFlag(values["min-ttl"], "min-ttl", 0)!;
    const maxTtlSec = intFlag(values["max-ttl"], "max-ttl", 0x7fffffff)!;
    if (maxTtlSec < minTtlSec) throw new UsageError(`--max-ttl (${maxTtlSec}) is below --min-ttl (${minTtlSec})`);

    const observerOptions = {
      trustedResolvers: values["trusted-resolver"] ?? null,
      podCidrs: values["pod-cidr"] ?? [],
      minTtlSec, maxTtlSec,
      queryTimeoutMs: intFlag(values["query-timeout-ms"], "query-timeout-ms", 30_000)!,
    };
    try {
      new DnsObserver({ ...observerOptions, now: () => 0 }); // validates the options before any I/O
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
    let bytes: Buffer;
    try {
      bytes = readFileSync(values.pcap);
    } catch (err) {
      throw new Error(`cannot read ${values.pcap}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    const out: string[] = [];
    const flushOut = () => {
      if (out.length) process.stdout.write(out.join("\n") + "\n");
      out.length = 0;
    };
    let result: OfflineResult;
    try {
      result = analyzeCapture(bytes, {
        dnsPorts: ports,
        ...observerOptions,
        onObservation: (o) => {
          out.push(values.json ? JSON.stringify(toJson(o)) : toText(o));
          if (out.length >= 256) flushOut();
        },
      });
    } catch (err) {
      if (err instanceof CaptureFormatError) throw new Error(`${values.pcap}: ${err.message}`);
      throw err;
    }
    flushOut();
    const { observer, pipeline } = result;
    const s = observer.stats;
    const rejected = Object.fromEntries(REJECT_REASONS.filter((r) => s.rejected[r] > 0).map((r) => [r, s.rejected[r]]));
    const summary = {
      accepted: s.accepted,
      negative: s.negative,
      rejected,
      malformed: s.malformedByError,
      queries: s.queries,
      repeatedQueries: s.duplicateQueries,
      unanswered: observer.pendingCount,
      expired: s.expiredQueries,
      evicted: s.evictedQueries,
      incompleteDatagrams: pipeline.incompleteDatagrams,
      tcpGaps: pipeline.tcpGaps,
      captureErrors: result.captureErrors,
      ...(result.captureError ? { captureError: result.captureError } : {}),
    };
    if (values.json) {
      process.stderr.write(JSON.stringify(summary) + "\n");
    } else {
      const lines = [
        `accepted ${s.accepted} answers (${s.negative} negative)`,
        `queries: ${s.queries} seen, ${s.duplicateQueries} repeated, ${s.expiredQueries} expired unanswered, ${observer.pendingCount} unanswered at the end`,
      ];
      for (const [r, n] of Object.entries(rejected)) lines.push(`rejected ${r}: ${n}`);
      for (const [e, n] of Object.entries(s.malformedByError)) lines.push(`  malformed ${e}: ${n}`);
      if (pipeline.incompleteDatagrams) lines.push(`incomplete datagrams (IP fragments / snap length): ${pipeline.incompleteDatagrams}`);
      if (pipeline.tcpGaps) lines.push(`TCP streams with capture gaps: ${pipeline.tcpGaps}`);
      if (result.captureError) lines.push(`capture damaged: ${result.captureError}`);
      process.stderr.write(lines.join("\n") + "\n");
    }
    return 0;
  },
};
