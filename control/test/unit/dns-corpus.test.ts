// Test that `egret dns` (the agent's observer over a capture) agrees with tshark's decoding of every
// well-formed DNS response in ../shared/corpus/dns that answers a query present in the capture.
//
// Documented, intended differences (see control/src/dns/README.md):
// - names are compared case-insensitively; tshark's "<Root>" is our ".";
// - rcode: tshark shows the 4 header bits, we the full EDNS0-extended code (compared masked);
// - a TTL >= 2^31 is 0 for us (RFC 2181 §8), tshark prints the unsigned value;
// - only records rooted at the question (qname and its CNAME chain) are evidence; tshark lists all;
// - data is rendered for A, AAAA, CNAME, NS, PTR, DNAME, SOA (MNAME), MX, SRV, TXT/SPF; null otherwise.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { analyzeCapture } from "../../src/dns/offline.js";
import type { DnsObservation, RejectReason } from "../../src/dns/observer.js";
import { typeName } from "../../src/dns/wire.js";

const CORPUS = join(process.cwd(), "..", "shared", "corpus", "dns");

interface TruthAnswer { name: string | null; type: string; type_code: number; ttl: number; data?: unknown }
interface TruthResponse {
  frame: number; transport: "udp" | "tcp"; src: string; dst: string; sport: number; dport: number; id: number;
  qname: string | null; qtype: string | null; rcode: number; truncated: boolean; answers: TruthAnswer[];
  malformed?: boolean; dissector?: string; opcode: number;
}

function tsharkName(n: string | null): string {
  if (n === null) return "";
  return n === "<Root>" ? "." : n.toLowerCase();
}

const utf8 = new TextDecoder("utf-8", { fatal: false });

/**
 * Our presentation-format name as tshark's JSON shows it: tshark escapes control bytes and space as
 * \DDD but prints other bytes raw (so bytes >= 0x80 arrive as UTF-8, or U+FFFD when invalid).
 */
function asTshark(name: string): string {
  const bytes: number[] = [];
  let out = "";
  const flush = () => {
    out += utf8.decode(Uint8Array.from(bytes));
    bytes.length = 0;
  };
  for (let i = 0; i < name.length; i++) {
    let b: number;
    if (name[i] === "\\" && /^\d{3}$/.test(name.slice(i + 1, i + 4))) {
      b = Number(name.slice(i + 1, i + 4));
      i += 3;
    } else if (name[i] === "\\") {
      b = name.charCodeAt(++i);
    } else b = name.charCodeAt(i);
    if (b <= 0x20 || b === 0x7f) {
      flush();
      out += "\\" + String(b).padStart(3, "0");
    } else bytes.push(b);
  }
  flush();
  return out.toLowerCase();
}

/**
 * Name equality with tshark. Where tshark's output lost bytes (invalid UTF-8 became U+FFFD, how
 * many per byte depends on the decoder), each run of U+FFFD matches one or more characters.
 */
function sameName(ours: string, truth: string | null): boolean {
  const t = tsharkName(truth);
  const o = asTshark(ours);
  if (!t.includes("\ufffd")) return o === t;
  const pattern = t.split(/\ufffd+/u).map((p) => p.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join(".+?");
  return new RegExp(`^${pattern}$`, "su").test(o);
}

/** tshark's markers of names it could not decode: the response is not well-formed. */
function tsharkSawBadName(t: TruthResponse): boolean {
  return /<Name too long>|<Unknown extended label>|<Bad|<Name contains a pointer that loops>/.test(JSON.stringify(t));
}

function tsharkData(a: TruthAnswer): unknown {
  if (a.data === undefined || a.data === null) return null;
  if (typeof a.data === "string") return ["A", "AAAA", "TXT", "SPF"].includes(a.type) ? a.data : tsharkName(a.data);
  return a.data;
}

/** Returns the differences between our observation and tshark's response (empty = agree). */
function compare(obs: DnsObservation, t: TruthResponse): string[] {
  const diffs: string[] = [];
  if (!sameName(obs.qname, t.qname)) diffs.push(`qname ${obs.qname} != ${t.qname}`);
  if (typeName(obs.qtype) !== t.qtype) diffs.push(`qtype ${typeName(obs.qtype)} != ${t.qtype}`);
  if ((obs.rcode & 0xf) !== t.rcode) diffs.push(`rcode ${obs.rcode} != ${t.rcode}`);
  if (obs.truncated !== t.truncated) diffs.push(`truncated ${obs.truncated} != ${t.truncated}`);
  const rooted = new Set([obs.qname, ...obs.cnameChain]);
  const expected = t.answers.filter((a) => a.type !== "OPT" && [...rooted].some((r) => sameName(r, a.name)));
  if (expected.length !== obs.answers.length) diffs.push(`${obs.answers.length} answers != ${expected.length}`);
  expected.forEach((a, i) => {
    const o = obs.answers[i];
    if (!o) return;
    if (!sameName(o.name, a.name)) diffs.push(`answer ${i} name ${o.name} != ${a.name}`);
    if (o.typeCode !== a.type_code) diffs.push(`answer ${i} type ${o.typeCode} != ${a.type_code}`);
    const ttl = a.ttl >= 2 ** 31 ? 0 : a.ttl;
    if (o.ttl !== ttl) diffs.push(`answer ${i} ttl ${o.ttl} != ${a.ttl}`);
    const data = tsharkData(a);
    if (data !== null && o.data !== null && JSON.stringify(o.data) !== JSON.stringify(data)) {
      diffs.push(`answer ${i} data ${JSON.stringify(o.data)} != ${JSON.stringify(data)}`);
    }
    if ((data === null) !== (o.data === null) && ["A", "AAAA", "CNAME", "NS", "PTR", "MX"].includes(a.type)) {
      diffs.push(`answer ${i} data ${JSON.stringify(o.data)} vs ${JSON.stringify(data)}`);
    }
  });
  return diffs;
}

const available = existsSync(CORPUS);

test("egret dns agrees with tshark on every well-formed answered response of the corpus", { skip: available ? false : `corpus not found at ${CORPUS}` }, () => {
  let skipped = 0, compared = 0, agreed = 0, unanswered = 0, rejectedOther = 0, notDns = 0, offRoot = 0;
  const failures: string[] = [];
  const reasons = new Map<string, number>();
  for (const file of readdirSync(CORPUS).filter((f) => f.endsWith(".truth.json")).sort()) {
    const truth = JSON.parse(readFileSync(join(CORPUS, file), "utf8")) as { pcap: string; responses: TruthResponse[] };
    const observations = new Map<number, DnsObservation>();
    const rejects = new Map<number, RejectReason>();
    analyzeCapture(readFileSync(join(CORPUS, truth.pcap)), {
      trustedResolvers: null,
      dnsPorts: [53, 8053],
      onObservation: (o) => observations.set(o.frame!, o),
      onReject: (r, meta) => rejects.set(meta.frame!, r),
    });
    for (const t of truth.responses) {
      if (t.malformed || t.dissector || t.qname === null || t.opcode !== 0 || tsharkSawBadName(t)) { skipped++; continue; }
      const obs = observations.get(t.frame);
      if (obs) {
        compared++;
        const d = compare(obs, t);
        if (d.length === 0) agreed++;
        else failures.push(`${truth.pcap} frame ${t.frame}: ${d.join("; ")}`);
        offRoot += t.answers.filter((a) => a.type !== "OPT").length - obs.answers.length;
        continue;
      }
      const reason = rejects.get(t.frame);
      if (!reason) { notDns++; continue; }
      reasons.set(reason, (reasons.get(reason) ?? 0) + 1);
      // tshark parsed this response; a well-formed answer may be rejected only for lack of a query.
      // (mismatched-*: the capture holds a query, but a different one — fuzzed or forged.)
      if (["unsolicited", "duplicate", "mismatched-id", "mismatched-port", "mismatched-question"].includes(reason)) unanswered++;
      else { rejectedOther++; failures.push(`${truth.pcap} frame ${t.frame}: rejected as ${reason}`); }
    }
  }
  const summary = `skipped ${skipped} malformed/mDNS; compared ${compared}, agreed ${agreed}; no query in capture ${unanswered}; other rejections ${rejectedOther}; ` +
    `not DNS to us ${notDns}; records off the question's chain ${offRoot}; reasons ${JSON.stringify(Object.fromEntries(reasons))}`;
  console.log(summary);
  assert.ok(compared > 300, `too few responses compared: ${summary}`);
  assert.deepEqual(failures, [], summary);
});
