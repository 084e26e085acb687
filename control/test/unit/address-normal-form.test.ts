// One address, one meaning (issue #14): ::ffff:a.b.c.d is the IPv4 address a.b.c.d in the agent
// (the Observe form of an AAAA answer), control (store keys, Lookup), the filter (resolve/ip.ts,
// through its test harness) and the CLI (`egret explain --to`). Each is asked about the same
// inputs and all four must give the same normal form; look-alikes that are not IPv4-mapped
// (IPv4-translated, NAT64, IPv4-compatible) stay IPv6 everywhere.
import { test } from "node:test";
import assert from "node:assert/strict";
import { toProto } from "../../src/agent/replica-stream.js";
import { ResolutionStore } from "../../src/control/store.js";
import { bytesToIp, canonicalIpBytes, ipToBytes } from "../../src/proto/ip.js";
import { parseDestination } from "../../src/cli/commands/explain.js";
import type { DnsObservation } from "../../src/dns/observer.js";
import { loadHarness } from "./egress-harness.js";

/** [input text, the normal form every component must produce]. */
const CASES: [string, string][] = [
  ["198.18.5.10", "198.18.5.10"],
  ["::ffff:198.18.5.10", "198.18.5.10"],
  ["::FFFF:C612:50A", "198.18.5.10"],
  ["0:0:0:0:0:ffff:c612:050a", "198.18.5.10"],
  ["2001:db8::1", "2001:db8::1"],
  ["::ffff:0:198.18.5.10", "::ffff:0:c612:50a"], // IPv4-translated (RFC 2765): not mapped
  ["64:ff9b::198.18.5.10", "64:ff9b::c612:50a"], // NAT64 well-known prefix: not mapped
  ["::198.18.5.10", "::c612:50a"], // IPv4-compatible (deprecated): not mapped
];

/** 16 raw bytes of an IPv6 text, as a foreign agent might send them (no normalisation). */
function raw16(text: string): Uint8Array {
  const [l, r = ""] = text.includes("::") ? text.split("::") : [text, ""];
  const parts = (s: string) => s.split(":").filter(Boolean).flatMap((g) => (g.includes(".") ? (() => {
    const o = g.split(".").map(Number);
    return [((o[0]! << 8) | o[1]!).toString(16), ((o[2]! << 8) | o[3]!).toString(16)];
  })() : [g]));
  const left = parts(l!), right = parts(r);
  const groups = [...left, ...Array(8 - left.length - right.length).fill("0"), ...right];
  const out = new Uint8Array(16);
  groups.forEach((g, i) => { const v = parseInt(g, 16); out[2 * i] = v >> 8; out[2 * i + 1] = v & 0xff; });
  return out;
}

function agentForm(input: string): string {
  const obs: DnsObservation = {
    podIp: "198.18.0.7", podPort: 40000, qname: "api.example.com", qtype: input.includes(":") ? 28 : 1, rcode: 0, cnameChain: [],
    answers: [{ name: "api.example.com", type: input.includes(":") ? "AAAA" : "A", typeCode: input.includes(":") ? 28 : 1, ttl: 60, data: input }],
    negative: false, truncated: false, resolver: "198.18.0.10", resolverPort: 53, transport: "udp", time: 0, id: 1,
  };
  return bytesToIp(toProto(obs).answers![0]!.ip as Uint8Array)!;
}

function controlForm(input: string, normal: string): string {
  const store = new ResolutionStore({ now: () => 1_000_000 });
  const bytes = input.includes(":") ? raw16(input) : ipToBytes(input);
  assert.equal(store.record(ipToBytes("198.18.0.7"), { queryName: "api.example.com", cnameChain: [], answers: [{ ip: bytes, ttlSeconds: 60 }], observedUnixMs: 1_000_000 }), "stored");
  // Found by the form the filter sends in Lookup (4 bytes for IPv4) and by the 16-byte form.
  assert.ok(store.get("198.18.0.7", ipToBytes(normal)), `${input}: found by ${normal}`);
  assert.ok(store.get("198.18.0.7", bytes), `${input}: found by its own bytes`);
  const entries = store.entriesOf("198.18.0.7");
  assert.equal(entries.length, 1);
  return bytesToIp(entries[0]!.ip)!;
}

const h = loadHarness("egress_resolve");
const io = h.exports.ioPtr() as number;
function filterForm(input: string): string {
  const b = Buffer.from(input);
  h.write(io, b);
  assert.equal(h.exports.parse(b.length, false), 1, input);
  const hi = BigInt.asUintN(64, h.exports.lastHi());
  const lo = BigInt.asUintN(64, h.exports.lastLo());
  return Buffer.from(h.read(io, h.exports.format(hi, lo))).toString();
}

function cliForm(input: string): string {
  return parseDestination(input.includes(":") ? `[${input}]:443` : `${input}:443`).ip!;
}

test("::ffff:a.b.c.d is the IPv4 address in the agent, control, the filter and the CLI alike; other IPv6 forms stay IPv6", () => {
  for (const [input, normal] of CASES) {
    const forms = { agent: agentForm(input), control: controlForm(input, normal), filter: filterForm(input), cli: cliForm(input) };
    assert.deepEqual(forms, { agent: normal, control: normal, filter: normal, cli: normal }, input);
  }
});

test("the API forms: an IPv4-mapped address is 4 bytes on the wire whichever way it arrives", () => {
  assert.deepEqual([...ipToBytes("::ffff:198.18.5.10")], [198, 18, 5, 10]);
  assert.deepEqual([...canonicalIpBytes(raw16("::ffff:198.18.5.10"))], [198, 18, 5, 10]);
  assert.equal(canonicalIpBytes(raw16("64:ff9b::198.18.5.10")).length, 16);
  assert.equal(bytesToIp(raw16("::ffff:198.18.5.10")), "198.18.5.10");
});
