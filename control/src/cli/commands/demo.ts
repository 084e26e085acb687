// `egret demo` (npm start): the mesh in a box with a live table of connections and verdicts
// (control/src/demo/). Where it cannot run (not root, no network namespaces), it says what it
// needs and replays the same story from a capture the project's mesh recorded, through the real
// observer, control and egret.wasm (control/src/demo/replay.ts).
import { readFlags } from "../../common/flags.js";
import type { CliCommand } from "../command.js";
import { UsageError } from "../command.js";

const USAGE = `usage: egret demo [--duration 20s] [--interval 1s] | --replay | --record DIR

Builds a small mesh on this machine (root: network namespaces, iptables, packet capture): two pods
behind their egret sidecars, cluster DNS and a web service outside, egret control and egret agent
on the node; apps connect in a loop and a live table shows each connection and Egret's verdict.
Stops after --duration or on Ctrl-C and removes everything it created.
Without root or network namespaces: explains what it needs and replays the story from
corpus/demo/capture.pcap (recorded by this mesh) through the real DNS observer, egret control and
egret.wasm — the path \`egret simulate\` uses — clearly labelled as a replay.
  --replay      the replay, even where the live mesh could run
  --record DIR  (root) run the story once in a mesh without sidecars, capture it with tcpdump and
                write DIR/{capture.pcap,pods.yaml,policies.yaml,truth.json} (what --replay reads)`;

function duration(text: string, flag: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(text);
  if (!m) throw new UsageError(`${flag} "${text}" must be a duration such as 20s, 500ms or 2m\n${USAGE}`);
  const n = Number(m[1]);
  return Math.round(m[2] === "ms" ? n : m[2] === "m" ? n * 60_000 : n * 1000);
}

export const command: CliCommand = {
  name: "demo",
  summary: "a mesh in a box with a live table of connections and verdicts (npm start)",
  async run(argv) {
    let values;
    try {
      ({ values } = readFlags({ args: argv, options: {
        duration: { type: "string" }, interval: { type: "string" }, replay: { type: "boolean" }, record: { type: "string" }, help: { type: "boolean", short: "h" },
      } }));
    } catch (e) {
      throw new UsageError(`${(e as Error).message}\n${USAGE}`);
    }
    if (values.help) { process.stdout.write(`${USAGE}\n`); return 0; }
    const durationMs = duration(values.duration ?? "20s", "--duration");
    const intervalMs = duration(values.interval ?? "1s", "--interval");
    if (values.record !== undefined) {
      const { recordDemo } = await import("../../demo/record.js");
      process.stdout.write(`recording the demo story into ${values.record} …\n`);
      await recordDemo(values.record, (s) => process.stdout.write(`${s}\n`));
      process.stdout.write(`written: ${values.record}/{capture.pcap,pods.yaml,policies.yaml,truth.json}\n`);
      return 0;
    }
    const { printDemoReplay } = await import("../../demo/replay.js");
    if (values.replay) return printDemoReplay(process.stdout, false);
    const { demoUnavailable, runDemo } = await import("../../demo/index.js");
    const why = await demoUnavailable();
    if (why) {
      process.stdout.write(`${why}\n\n`);
      return printDemoReplay(process.stdout, true);
    }
    return runDemo({ durationMs, intervalMs, out: process.stdout });
  },
};
