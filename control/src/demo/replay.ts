// `npm start` without root: the demo's story replayed from a capture the project's mesh recorded
// (`egret demo --record`, ./record.ts; committed in corpus/demo/). The capture goes through the
// path `egret simulate` uses — the agent's DNS observer, egret control (file mode) and egret.wasm
// in the Node proxy-wasm host — so every verdict printed is the real filter's decision.
import { readFileSync, existsSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createLogger } from "../common/log.js";
import { simulateCapture, type SimulatedConnection } from "../simulate/replay.js";
import { DEMO_WORLD } from "./story.js";
import type { DemoTruth, RecordedAction } from "./record.js";
import { formatRow, header, type DemoRow } from "./table.js";

/** The recording `npm start` replays (relative to the repository root). */
export const DEMO_RECORDING = "corpus/demo";

export function recordingDir(): string {
  return join(fileURLToPath(new URL(".", import.meta.url)), "../../../..", DEMO_RECORDING);
}

export interface ReplayedAction {
  action: RecordedAction;
  /** The filter's verdict for the action's connection; undefined when the capture lacks it. */
  result: SimulatedConnection | undefined;
}

/** Replays the recording in `dir`; one entry per action of its truth file, in story order. */
export async function replayDemo(dir = recordingDir()): Promise<{ truth: DemoTruth; replayed: ReplayedAction[] }> {
  for (const f of ["capture.pcap", "pods.yaml", "policies.yaml", "truth.json"]) {
    if (!existsSync(join(dir, f))) throw new Error(`the demo recording lacks ${join(dir, f)} (re-record it as root: egret demo --record ${dir})`);
  }
  const truth = JSON.parse(readFileSync(join(dir, "truth.json"), "utf8")) as DemoTruth;
  const results = await simulateCapture({
    policyPaths: [join(dir, "policies.yaml")],
    podsFile: join(dir, "pods.yaml"),
    capture: readFileSync(join(dir, "capture.pcap")),
    trustedResolvers: [DEMO_WORLD.resolver],
    log: createLogger("demo-replay", process.env.EGRET_LOG_LEVEL ?? "error"),
  });
  const byClient = new Map(results.map((r) => [r.client, r]));
  const replayed = truth.actions.map((action) => ({ action, result: action.client ? byClient.get(action.client) : undefined }));
  return { truth, replayed };
}

/** The live table's row for a replayed action: a Monitor-mode deny shows as would-deny. */
export function rowOf(r: ReplayedAction): DemoRow {
  const res = r.result;
  const monitor = res?.mode === "monitor";
  const reason = monitor ? (res?.detail ?? "").replace(/^Enforce would deny: /, "") : res?.reason;
  return {
    time: new Date((res?.time ?? 0) * 1000),
    pod: r.action.pod,
    what: r.action.what,
    // Recorded without a sidecar: what the app saw is only what it would see where Egret lets it through.
    appSaw: res && res.verdict !== "deny" ? r.action.appSaw : "—",
    entry: res ? { verdict: monitor ? "would-deny" : res.verdict, reason, policy: res.policy ?? undefined, rule: res.rule ?? undefined, raw: {} } : undefined,
  };
}

const INTRO = (truth: DemoTruth, why: string) => [
  `REPLAY — not live${why}. This is the demo's story`,
  `recorded in the project's mesh (${DEMO_RECORDING}/capture.pcap, ${truth.recordedAt.slice(0, 10)}), replayed through the`,
  "same path as `egret simulate`: the agent's DNS observer, egret control and egret.wasm (the",
  "module Envoy loads). The verdicts are the real filter's; \"app saw\" is what the app got when",
  "the traffic was recorded (shown only where Egret lets the connection through).",
  "  shop/checkout: may reach api.example.test and *.googleapis.test over TLS on 443; evil.example.net is denied",
  "  lab/notebook:  policy in Monitor mode — would-deny is reported, nothing is blocked",
].join("\n");

const LIVE_HINT = `To see it live (real pods, sidecars, control and agent on this machine), as root:
  sudo scripts/setup && sudo npm start
The same replay for any capture: egret simulate --policy ${DEMO_RECORDING}/policies.yaml --pods ${DEMO_RECORDING}/pods.yaml --pcap ${DEMO_RECORDING}/capture.pcap`;

/** Prints the replay as the live demo's table; resolves to the exit code. */
export async function printDemoReplay(out: NodeJS.WritableStream, liveUnavailable: boolean): Promise<number> {
  const { truth, replayed } = await replayDemo();
  out.write(`${INTRO(truth, liveUnavailable ? ": this machine cannot run the live mesh (see above)" : "")}\n\n${header()}\n`);
  const counts: Record<string, number> = {};
  for (const r of replayed) {
    const row = rowOf(r);
    out.write(`${formatRow(row, false)}\n`);
    const v = row.entry?.verdict ?? "(none)";
    counts[v] = (counts[v] ?? 0) + 1;
  }
  out.write(`\n${Object.entries(counts).map(([v, n]) => `${n} ${v}`).join(", ")} (replayed).\n\n${LIVE_HINT}\n`);
  return replayed.every((r) => r.result) ? 0 : 1;
}
