// The detector on real captures: every flow of ../shared/corpus/{ndpi,extra_l4} whose protocol is
// known from content (nDPI DPI verdicts, or the pcap's intended_protocol_hint) must get that label,
// and no flow may get a wrong in-scope label. Claims are checked against nDPI's SNI/ALPN.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { detectCapture, type ConnectionDetection } from "../../../src/detect/capture-detect.js";
import { DetectorEngine } from "../../../src/detect/wasm-detector.js";
import { CORPUS, corpusAvailable, IN_SCOPE, loadCorpusFlows, type CorpusFlow } from "./corpus-truth.js";

/** Flows we knowingly leave unknown, with the reason (keyed "dir/pcap client"). */
const KNOWN_MISSES: Record<string, string> = {
  "extra_l4/zeek__http__http_09.pcap 127.0.0.1:42968": 'request line "GET " + LF has no target: not HTTP under strict parsing',
};

test("corpus flows get their content-based label and never a wrong one", { skip: !corpusAvailable && "optional extra tier: ../shared/corpus is absent (the project's own corpus/ is tested in every clone)" }, (t) => {
  const engine = new DetectorEngine();
  const flows = loadCorpusFlows();
  const byPcap = new Map<string, CorpusFlow[]>();
  for (const f of flows) {
    const k = `${f.dir}/${f.pcap}`;
    byPcap.set(k, [...(byPcap.get(k) ?? []), f]);
  }
  let truePositives = 0;
  let misses = 0;
  let wrong = 0;
  let scored = 0;
  const problems: string[] = [];
  const claimProblems: string[] = [];
  const notScored: Record<string, number> = {};
  for (const [pcap, expected] of byPcap) {
    const result = detectCapture(readFileSync(CORPUS + pcap), engine);
    assert.equal(result.captureErrors, 0, `${pcap}: ${result.captureLastError}`);
    const found = new Map<string, ConnectionDetection[]>();
    for (const c of result.connections) {
      const key = [c.client, c.server].sort().join(" ");
      found.set(key, [...(found.get(key) ?? []), c]);
    }
    for (const f of expected) {
      const c = found.get([f.client, f.server].sort().join(" "))?.shift();
      // Not scored, and counted so the summary says how many and why.
      if (!c) { notScored["nDPI lists the connection more often than the capture holds it"] = (notScored["nDPI lists the connection more often than the capture holds it"] ?? 0) + 1; continue; }
      if (f.truth === undefined) { notScored["no trustworthy truth (nDPI guessed by port and no hint)"] = (notScored["no trustworthy truth (nDPI guessed by port and no hint)"] ?? 0) + 1; continue; }
      scored++;
      const where = `${pcap} ${f.client} ${f.server} (nDPI ${f.ndpi}, ${f.confidence}${f.hint ? `, hint "${f.hint}"` : ""})`;
      if (IN_SCOPE.has(f.truth)) {
        if (c.protocol === f.truth) {
          truePositives++;
          if (f.truth === "tls" && f.sni !== null && c.claims.sni !== f.sni.toLowerCase()) claimProblems.push(`${where}: sni ${c.claims.sni} != ${f.sni}`);
          if (f.truth === "tls" && f.alpns !== null && JSON.stringify(c.claims.alpn) !== JSON.stringify(f.alpns)) {
            claimProblems.push(`${where}: alpn ${JSON.stringify(c.claims.alpn)} != ${JSON.stringify(f.alpns)}`);
          }
        } else if (c.protocol === "unknown") {
          if (!f.required) continue;
          misses++;
          const known = KNOWN_MISSES[`${pcap} ${f.client}`];
          if (!known) problems.push(`MISS ${where}: expected ${f.truth}, got unknown`);
        } else {
          wrong++;
          problems.push(`WRONG ${where}: expected ${f.truth}, got ${c.protocol}`);
        }
      } else if (IN_SCOPE.has(c.protocol)) {
        wrong++;
        problems.push(`WRONG ${where}: expected no in-scope label, got ${c.protocol}`);
      }
    }
  }
  const precision = truePositives / Math.max(1, truePositives + wrong);
  const recall = truePositives / Math.max(1, truePositives + misses + wrong);
  for (const [why, n] of Object.entries(notScored)) t.diagnostic(`not scored: ${n} flows — ${why}`);
  t.diagnostic(`${scored} flows with trusted truth; precision ${precision.toFixed(4)}, recall ${recall.toFixed(4)} (${truePositives} right, ${misses} unknown, ${wrong} wrong)`);
  assert.deepEqual(problems, []);
  assert.deepEqual(claimProblems, []);
  assert.equal(wrong, 0);
  assert.ok(scored > 300, `only ${scored} flows scored: is the corpus complete?`);
  // The detector pool grew to the largest number of simultaneous connections; a second pass over
  // the corpus must reuse it without growing memory.
  const memoryAfterFirstPass = engine.memoryBytes;
  for (const pcap of byPcap.keys()) detectCapture(readFileSync(CORPUS + pcap), engine);
  assert.equal(engine.memoryBytes, memoryAfterFirstPass, "a second pass grew wasm memory");
});
