// `egret learn --pcap FILE --pods FILE [--policy FILES…] [--audit-log FILE] [--min-siblings N]
// [--mode Monitor|Enforce] [--allow-unattributed-cidrs]`: one EgressPolicy per workload that allows
// what was observed, by the names the pods resolved; policies on standard output, a summary of what
// was learnt and what was left out (and why) on standard error.
import { readFileSync } from "node:fs";
import { UsageError, parseFlags, type CliCommand } from "../command.js";
import { createLogger } from "../../common/log.js";
import { CaptureFormatError } from "../../pcap/index.js";
import { SimulateInputError } from "../../simulate/replay.js";
import { learn } from "../../learn/learn.js";

const USAGE = `usage: egret learn --pcap FILE --pods FILE [--policy FILE…] [--audit-log FILE]
                   [--min-siblings N] [--mode Monitor|Enforce] [--allow-unattributed-cidrs]

Replays the capture through the same DNS observer, protocol detector and filter as egret simulate
(and/or reads control's verdict audit log) and proposes one EgressPolicy per workload (pods of a
namespace with the same stable labels) allowing what it saw: the names the pods resolved (never an
SNI/Host/CONNECT claim the DNS evidence did not support), the detected protocol and the ports.
--policy         existing policies: only what they do not already allow is proposed
--audit-log      control's audit log (JSON lines), e.g. from a Monitor-mode rollout
--min-siblings   collapse names into *. / **. only with at least N distinct siblings (default 3),
                 never above a registrable domain (public suffix list)
--mode           mode of the proposed policies (default Monitor)
--allow-unattributed-cidrs   turn connections to never-resolved addresses into /32 (/128) rules`;

export const command: CliCommand = {
  name: "learn",
  summary: "propose one policy per workload from observed traffic (capture and/or audit log), by verified names",
  async run(argv) {
    const parsed = parseFlags({ args: argv, allowPositionals: true, options: {
      pcap: { type: "string" }, pods: { type: "string" }, policy: { type: "string", multiple: true, variadic: true },
      "audit-log": { type: "string" }, "min-siblings": { type: "string" }, mode: { type: "string" },
      "allow-unattributed-cidrs": { type: "boolean" }, wasm: { type: "string" }, help: { type: "boolean", short: "h" },
    } }, USAGE);
    const v = parsed.values;
    if (v.help) { process.stdout.write(`${USAGE}\n`); return 0; }
    // `--policy a.yaml b.yaml` leaves b.yaml as a positional: more policy files.
    const policyFiles = [...(v.policy ?? []), ...parsed.positionals];
    if (!v.pods) throw new UsageError(`--pods is required\n\n${USAGE}`);
    if (!v.pcap && !v["audit-log"]) throw new UsageError(`give --pcap (and/or --audit-log)\n\n${USAGE}`);
    const minSiblings = v["min-siblings"] === undefined ? 3 : Number(v["min-siblings"]);
    if (!Number.isInteger(minSiblings) || minSiblings < 2) throw new UsageError(`--min-siblings "${v["min-siblings"]}": an integer ≥ 2`);
    const mode = v.mode ?? "Monitor";
    if (mode !== "Monitor" && mode !== "Enforce") throw new UsageError(`--mode "${mode}": Monitor or Enforce`);
    let pcap: Uint8Array | undefined;
    if (v.pcap) {
      try { pcap = readFileSync(v.pcap); } catch (e) { throw new UsageError(`cannot read --pcap ${v.pcap}: ${(e as Error).message}`); }
    }
    process.stdout.on("error", (e: NodeJS.ErrnoException) => { if (e.code === "EPIPE") process.exit(0); });
    try {
      const r = await learn({
        ...(pcap ? { pcap } : {}), podsFile: v.pods, policyFiles, ...(v["audit-log"] ? { auditLog: v["audit-log"] } : {}),
        minSiblings, mode, allowUnattributedCidrs: !!v["allow-unattributed-cidrs"],
        log: createLogger("learn", process.env.EGRET_LOG_LEVEL ?? "error"), ...(v.wasm ? { wasm: v.wasm } : {}),
      });
      process.stdout.write(r.yaml);
      process.stderr.write(r.summary);
      return 0;
    } catch (e) {
      if (e instanceof SimulateInputError) { process.stderr.write(`egret learn: ${e.message}\n`); return 1; }
      if (e instanceof CaptureFormatError) { process.stderr.write(`egret learn: ${v.pcap}: ${e.message}\n`); return 1; }
      throw e;
    }
  },
};
