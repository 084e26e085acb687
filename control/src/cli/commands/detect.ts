// `egret detect --pcap FILE [--json]`: the application protocol (and SNI / ALPN / Host / CONNECT
// target claims) of every TCP connection in a capture, decided by the detector compiled into
// egret.wasm — what the filter would decide for the same bytes.
import { readFileSync } from "node:fs";
import { readFlags } from "../../common/flags.js";
import { UsageError, type CliCommand } from "../command.js";
import { CaptureFormatError } from "../../pcap/index.js";
import { detectCapture, detectionJson, type CaptureDetection, type ConnectionDetection } from "../../detect/capture-detect.js";

const HELP = `usage: egret detect --pcap FILE [--json]

Reassembles every TCP connection of a capture (pcap or pcapng; Ethernet, VLAN, Linux cooked v1/v2,
raw IP, loopback, PPP; IPv4 and IPv6) and feeds both directions, in capture order, to the protocol
detector of egret.wasm.

  --pcap FILE   the capture to read
  --json        one JSON object per connection:
                {"client","server","protocol","sni","alpn","http_host","connect_target"}
                (null where absent; IPv6 as [addr]:port)
  -h, --help    this text

Exit status: 0 done, 1 unreadable or damaged capture (what could be read is still printed), 2 bad flags.
`;

export const command: CliCommand = {
  name: "detect",
  summary: "detect the application protocol of every TCP connection in a capture",
  async run(argv) {
    let values: { pcap?: string; json?: boolean; help?: boolean };
    try {
      ({ values } = readFlags({
        args: argv,
        options: { pcap: { type: "string" }, json: { type: "boolean" }, help: { type: "boolean", short: "h" } },
        strict: true,
        allowPositionals: false,
      }));
    } catch (e) {
      throw new UsageError(`${(e as Error).message}\n\n${HELP}`);
    }
    if (values.help) {
      process.stdout.write(HELP);
      return 0;
    }
    if (!values.pcap) throw new UsageError(`--pcap FILE is required\n\n${HELP}`);
    let bytes: Buffer;
    try {
      bytes = readFileSync(values.pcap);
    } catch (e) {
      process.stderr.write(`egret detect: cannot read ${values.pcap}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}\n`);
      return 1;
    }
    let result: CaptureDetection;
    try {
      result = detectCapture(bytes);
    } catch (e) {
      if (e instanceof CaptureFormatError) {
        process.stderr.write(`egret detect: ${values.pcap}: ${e.message}\n`);
        return 1;
      }
      throw e;
    }
    const out = values.json ? result.connections.map((c) => JSON.stringify(detectionJson(c))).join("\n") : table(result.connections);
    if (out.length > 0) process.stdout.write(out + "\n");
    if (result.captureErrors > 0) {
      process.stderr.write(`egret detect: ${values.pcap} is damaged (${result.captureLastError}); connections after the damage are missing\n`);
      return 1;
    }
    if (!values.json) {
      const n = result.connections.length;
      process.stderr.write(`${n} TCP connection${n === 1 ? "" : "s"}\n`);
    }
    return 0;
  },
};

function table(conns: ConnectionDetection[]): string {
  const rows = conns.map((c) => {
    const j = detectionJson(c);
    const details: string[] = [];
    if (j.sni !== null) details.push(`sni=${String(j.sni)}`);
    if (Array.isArray(j.alpn)) details.push(`alpn=${j.alpn.join(",")}`);
    if (j.http_host !== null) details.push(`host=${String(j.http_host)}`);
    if (j.connect_target !== null) details.push(`${c.claims.proxyForm === "connect" ? "connect" : "proxy"}=${String(j.connect_target)}`);
    if (c.claims.ech) details.push("ech");
    return [c.client, c.server, c.protocol, details.join(" ")];
  });
  const header = ["CLIENT", "SERVER", "PROTOCOL", "DETAILS"];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const fmt = (r: string[]) => r.map((v, i) => (i === r.length - 1 ? v : v.padEnd(widths[i]!))).join("  ").trimEnd();
  return [fmt(header), ...rows.map(fmt)].join("\n");
}
