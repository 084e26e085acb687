// Fuzz test: 1,000,000 mutated DNS messages through the parser and the observer. Deterministic
// (seeded PRNG), so a failure reproduces. Checks: nothing throws, every parse result is either a
// message or a known error code, and the observer's tables stay within their caps.
import { test } from "node:test";
import assert from "node:assert/strict";
import { parseDnsMessage } from "../../src/dns/message.js";
import { DnsObserver, REJECT_REASONS } from "../../src/dns/observer.js";
import { readName, renderRdata } from "../../src/dns/render.js";
import { dnsMessage, T } from "./dns-fixtures.js";

const ITERATIONS = 1_000_000;
const POD = "198.18.1.10";
const RESOLVER = "198.18.0.53";

/** xorshift32: small, fast, reproducible. */
function prng(seed: number) {
  let s = seed >>> 0 || 1;
  return (n: number) => {
    s ^= s << 13; s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5; s >>>= 0;
    return s % n;
  };
}

function seeds(): Uint8Array[] {
  const q = (name: string, type: number, id: number) => dnsMessage({ id, questions: [{ name, type }] });
  const chain = (id: number) => dnsMessage({
    id, response: true, edns: {}, questions: [{ name: "www.example.com", type: T.A }],
    answers: [
      { name: "www.example.com", type: T.CNAME, data: "edge.cdn.example.net" },
      { name: "edge.cdn.example.net", type: T.A, data: "198.18.2.1" },
      { name: "edge.cdn.example.net", type: T.A, data: "198.18.2.2" },
    ],
    authority: [{ name: "example.net", type: T.NS, data: "ns1.example.net" }],
    additional: [{ name: "ns1.example.net", type: T.AAAA, data: "2001:db8::53" }],
  });
  return [
    q("www.example.com", T.A, 1), chain(1),
    q("v6.example.org", T.AAAA, 2),
    dnsMessage({ id: 2, response: true, questions: [{ name: "v6.example.org", type: T.AAAA }], answers: [{ name: "v6.example.org", type: T.AAAA, data: "2001:db8::1" }] }),
    q("mail.example.org", T.MX, 3),
    dnsMessage({ id: 3, response: true, questions: [{ name: "mail.example.org", type: T.MX }], answers: [{ name: "mail.example.org", type: T.MX, data: "mx.example.org" }] }),
    q("txt.example", T.TXT, 4),
    dnsMessage({ id: 4, response: true, questions: [{ name: "txt.example", type: T.TXT }], answers: [{ name: "txt.example", type: T.TXT, data: Uint8Array.from([3, 97, 98, 99, 2, 100, 101]) }] }),
    dnsMessage({ id: 5, response: true, rcode: 3, questions: [{ name: "nx.example", type: T.A }], authority: [{ name: "example", type: T.SOA, data: Uint8Array.from([0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19]) }] }),
  ];
}

const INTERESTING = [0x00, 0xff, 0xc0, 0xc0 | 0x0c, 0x3f, 0x40, 0x80, 0x01, 0x7f];

test(`${ITERATIONS.toLocaleString("en")} mutated DNS messages: no throw, bounded state`, { timeout: 600_000 }, () => {
  const rand = prng(0x5eed);
  const base = seeds();
  let now = 1_700_000_000_000;
  const caps = { maxPendingPerPod: 64, maxPendingTotal: 256, maxAnsweredRemembered: 256 };
  let observations = 0;
  const observer = new DnsObserver({
    now: () => now, trustedResolvers: [RESOLVER], podCidrs: ["198.18.1.0/24"], ...caps,
    onObservation: (o) => {
      observations++;
      // Rendering every accepted record must work too.
      for (const a of o.answers) assert.equal(typeof a.name, "string");
    },
  });
  const scratch = new Uint8Array(1024);
  const knownErrors = new Set(["short-header", "truncated-name", "bad-label-type", "bad-pointer", "name-loop", "name-too-long", "truncated-record", "bad-rdata", "bad-edns", "too-many-records"]);
  const parseErrors = new Map<string, number>();
  let parsed = 0;
  const heapBefore = process.memoryUsage().heapUsed;

  for (let i = 0; i < ITERATIONS; i++) {
    const seed = base[rand(base.length)]!;
    let len = seed.length;
    scratch.set(seed);
    const mutations = 1 + rand(4);
    for (let m = 0; m < mutations; m++) {
      switch (rand(6)) {
        case 0: scratch[rand(len)] ^= 1 << rand(8); break;
        case 1: scratch[rand(len)] = INTERESTING[rand(INTERESTING.length)]!; break;
        case 2: len = Math.max(0, len - 1 - rand(8)); break;
        case 3: { // compression pointer to a random offset
          const at = 12 + rand(Math.max(1, len - 13));
          scratch[at] = 0xc0 | rand(2);
          scratch[at + 1] = rand(len + 4);
          break;
        }
        case 4: { // duplicate a chunk (grows the message)
          const from = rand(len), n = Math.min(rand(32), scratch.length - len, len - from);
          scratch.copyWithin(len, from, from + n);
          len += n;
          break;
        }
        default: { // random header counts
          const at = 4 + 2 * rand(4);
          scratch[at] = rand(3) === 0 ? rand(256) : 0;
          scratch[at + 1] = rand(8);
        }
      }
    }
    const bytes = scratch.subarray(0, len);
    const r = parseDnsMessage(bytes);
    if (r.ok) {
      parsed++;
      for (const rr of r.message.answers) {
        renderRdata(r.message, rr);
        readName(r.message.buf, rr.nameOffset);
      }
    } else {
      assert.ok(knownErrors.has(r.error), `unknown error code ${r.error}`);
      parseErrors.set(r.error, (parseErrors.get(r.error) ?? 0) + 1);
    }
    // Through the observer as a query from the pod or an answer to it, on a few ports so that
    // mutated answers meet pending queries.
    const port = 40000 + rand(4);
    const isQuery = (bytes.length > 2 && (bytes[2]! & 0x80) === 0);
    if (isQuery) observer.observe({ time: now, src: POD, dst: RESOLVER, srcPort: port, dstPort: 53, transport: "udp" }, bytes);
    else observer.observe({ time: now, src: RESOLVER, dst: POD, srcPort: 53, dstPort: port, transport: rand(8) === 0 ? "tcp" : "udp" }, bytes);
    if ((i & 1023) === 0) now += 1000;
    assert.ok(observer.pendingCount <= caps.maxPendingTotal);
  }

  const s = observer.stats;
  const heapGrowthMb = (process.memoryUsage().heapUsed - heapBefore) / 2 ** 20;
  console.log(`parsed ${parsed}, errors ${JSON.stringify(Object.fromEntries(parseErrors))}, accepted ${s.accepted}, ` +
    `rejected ${JSON.stringify(Object.fromEntries(REJECT_REASONS.map((r) => [r, s.rejected[r]])))}, evicted ${s.evictedQueries}, heap +${heapGrowthMb.toFixed(1)} MiB`);
  assert.equal(s.messages, ITERATIONS);
  assert.ok(parsed > 1000 && parseErrors.size >= 6, "the mutations reach both valid and invalid messages");
  assert.ok(observations > 0, "some mutated answers still match their queries");
  assert.ok(observer.pendingCount <= caps.maxPendingTotal);
  assert.ok(heapGrowthMb < 256, `heap grew by ${heapGrowthMb} MiB`);
});
