// Tests of the filter's per-pod resolution table and address parsing (filter/assembly/resolve).
import { test } from "node:test";
import assert from "node:assert/strict";
import { isIP } from "node:net";
import fc from "fast-check";
import { loadHarness, type Harness } from "./egress-harness.js";

function ipHalves(ip: string): [bigint, bigint] {
  if (isIP(ip) === 4) return [0n, 0xffff00000000n | BigInt(ip.split(".").reduce((a, o) => a * 256 + Number(o), 0))];
  const [l, r = ""] = ip.includes("::") ? ip.split("::") : [ip, undefined as unknown as string];
  const left = l ? l.split(":") : [];
  const right = ip.includes("::") && r ? r.split(":") : [];
  const groups = [...left, ...Array(8 - left.length - right.length).fill("0"), ...right].map((g) => BigInt(parseInt(g, 16)));
  const v = groups.reduce((a, g) => (a << 16n) | g, 0n);
  return [v >> 64n, v & ((1n << 64n) - 1n)];
}

class Table {
  io: number;
  constructor(readonly h: Harness, capacity: number, nameBytes: number) {
    h.exports.create(capacity, nameBytes);
    this.io = h.exports.ioPtr();
  }
  put(ip: string, name: string, expires: number, now = 0, via = name): boolean {
    const n = Buffer.from(name), v = Buffer.from(via);
    this.h.write(this.io, Buffer.concat([n, v]));
    const [hi, lo] = ipHalves(ip);
    return this.h.exports.upsert(hi, lo, n.length, v.length, BigInt(expires), BigInt(now)) === 1;
  }
  names(ip: string, now: number, grace = 0): Array<{ name: string; via: string; expires: number }> {
    const [hi, lo] = ipHalves(ip);
    const n = this.h.exports.lookup(hi, lo, BigInt(now), BigInt(grace)) as number;
    const out = [];
    for (let i = 0; i < n; i++) {
      const name = Buffer.from(this.h.read(this.io, this.h.exports.candidate(i, 0))).toString();
      const via = Buffer.from(this.h.read(this.io, this.h.exports.candidate(i, 1))).toString();
      out.push({ name, via, expires: Number(this.h.exports.candidateExpires(i)) });
    }
    return out.sort((a, b) => a.name.localeCompare(b.name));
  }
  namesAt([hi, lo]: [bigint, bigint], now: number): number {
    return this.h.exports.lookup(hi, lo, BigInt(now), 0n) as number;
  }
  remove(ip: string, name: string): boolean {
    const n = Buffer.from(name);
    this.h.write(this.io, n);
    const [hi, lo] = ipHalves(ip);
    return this.h.exports.remove(hi, lo, n.length) === 1;
  }
  get size(): number { return this.h.exports.size(); }
}

test("finds the names this pod resolved to an IP, normalized, with the CNAME chain's query name", () => {
  const t = new Table(loadHarness("egress_resolve"), 64, 4096);
  assert.ok(t.put("203.0.113.7", "WWW.Example.COM.", 10_000));
  assert.ok(t.put("203.0.113.7", "cdn.example.net", 10_000, 0, "www.example.com"));
  assert.ok(t.put("2001:db8::7", "v6.example.com", 10_000));
  assert.deepEqual(t.names("203.0.113.7", 5000).map((c) => [c.name, c.via]), [
    ["cdn.example.net", "www.example.com"],
    ["www.example.com", "www.example.com"],
  ]);
  assert.deepEqual(t.names("2001:db8::7", 5000).map((c) => c.name), ["v6.example.com"]);
  assert.deepEqual(t.names("203.0.113.8", 5000), [], "an IP the pod never resolved has no names");
  assert.deepEqual(t.namesAt(ipHalvesNode("::ffff:203.0.113.7"), 5000), 2, "IPv4-mapped IPv6 is the same address");
});

test("shared IPs keep every name; re-resolution keeps the later expiry", () => {
  const t = new Table(loadHarness("egress_resolve"), 64, 4096);
  t.put("198.51.100.1", "a.example.com", 5000);
  t.put("198.51.100.1", "b.example.org", 8000);
  t.put("198.51.100.1", "a.example.com", 3000); // an older answer arriving late must not shorten it
  assert.equal(t.size, 2);
  const c = t.names("198.51.100.1", 0);
  assert.deepEqual(c.map((x) => [x.name, x.expires]), [["a.example.com", 5000], ["b.example.org", 8000]]);
  t.put("198.51.100.1", "a.example.com", 9000);
  assert.equal(t.names("198.51.100.1", 0)[0]!.expires, 9000);
});

test("expiry and grace: a name stays a candidate for grace after its TTL, then disappears", () => {
  const h = loadHarness("egress_resolve");
  const t = new Table(h, 64, 4096);
  t.put("192.0.2.1", "api.example.com", 10_000);
  assert.equal(t.names("192.0.2.1", 9_999).length, 1);
  assert.equal(t.names("192.0.2.1", 10_000).length, 0, "expired exactly at its expiry without grace");
  assert.equal(t.names("192.0.2.1", 12_000, 5_000).length, 1, "within grace");
  assert.equal(t.names("192.0.2.1", 15_000, 5_000).length, 0);
  assert.equal(h.exports.knowsIp(...ipHalves("192.0.2.1")), 1, "expired but not yet swept");
  assert.equal(h.exports.sweep(10_000n), 1);
  assert.equal(h.exports.knowsIp(...ipHalves("192.0.2.1")), 0);
  assert.equal(h.exports.liveNames(), 0, "names are released with their last entry");
});

test("delta removal of one name or a whole IP", () => {
  const h = loadHarness("egress_resolve");
  const t = new Table(h, 64, 4096);
  t.put("192.0.2.9", "x.example.com", 1e9);
  t.put("192.0.2.9", "y.example.com", 1e9);
  assert.ok(t.remove("192.0.2.9", "X.EXAMPLE.COM."));
  assert.ok(!t.remove("192.0.2.9", "x.example.com"));
  assert.deepEqual(t.names("192.0.2.9", 0).map((c) => c.name), ["y.example.com"]);
  t.put("192.0.2.9", "z.example.com", 1e9);
  assert.equal(h.exports.removeIp(...ipHalves("192.0.2.9")), 2);
  assert.equal(t.size, 0);
});

test("bounded: when full, expired entries go first, then the soonest-expiring, and evictions are counted", () => {
  const h = loadHarness("egress_resolve");
  const t = new Table(h, 16, 4096);
  for (let i = 0; i < 16; i++) assert.ok(t.put(`10.0.0.${i}`, `n${i}.example.com`, 1000 + i * 100));
  assert.equal(t.size, 16);
  // At t=1150, entries 0 and 1 have expired: the insert sweeps them instead of evicting.
  assert.ok(t.put("10.0.1.1", "new.example.com", 99_999, 1150));
  assert.equal(h.exports.evicted(), 0n);
  assert.equal(t.names("10.0.0.0", 0).length, 0);
  assert.equal(t.size, 15);
  t.put("10.0.1.2", "new2.example.com", 99_999, 1150);
  // Full and nothing expired at t=0: evicts the soonest-expiring live entry (10.0.0.2).
  assert.ok(t.put("10.0.1.3", "new3.example.com", 99_999, 0));
  assert.equal(h.exports.evicted(), 1n);
  assert.equal(t.names("10.0.0.2", 0).length, 0);
  assert.equal(t.size, 16);
});

test("bounded name pool: compacts, then evicts, and never accepts an invalid name", () => {
  const h = loadHarness("egress_resolve");
  const t = new Table(h, 64, 256); // room for ~10 names of 20 bytes
  for (let i = 0; i < 40; i++) assert.ok(t.put(`10.1.0.${i}`, `host-${String(i).padStart(3, "0")}.example.com`, 1000 + i));
  assert.ok(t.size <= 64 && t.size >= 9);
  assert.ok(h.exports.evicted() > 0n);
  assert.deepEqual(t.names("10.1.0.39", 0).map((c) => c.name), ["host-039.example.com"]);
  assert.equal(t.put("10.1.0.1", "", 5000), false);
  assert.equal(t.put("10.1.0.1", "x".repeat(254), 5000), false);
});

test("candidate lookup by claimed name is case-insensitive", () => {
  const h = loadHarness("egress_resolve");
  const t = new Table(h, 64, 4096);
  t.put("192.0.2.50", "a.example.com", 1e9);
  t.put("192.0.2.50", "b.example.com", 1e9);
  t.names("192.0.2.50", 0);
  const claim = Buffer.from("B.Example.Com.");
  h.write(t.io, claim);
  assert.ok((h.exports.candidateIndexOf(claim.length) as number) >= 0);
  const other = Buffer.from("c.example.com");
  h.write(t.io, other);
  assert.equal(h.exports.candidateIndexOf(other.length), -1);
});

test("matches a model under random operations (property test)", () => {
  const h = loadHarness("egress_resolve");
  const ips = ["10.0.0.1", "10.0.0.2", "2001:db8::1", "192.0.2.3"];
  const names = ["a.x", "b.x", "c.y", "d.z", "e.z"];
  fc.assert(
    fc.property(
      fc.array(fc.record({ op: fc.constantFrom("put", "remove"), ip: fc.constantFrom(...ips), name: fc.constantFrom(...names), exp: fc.integer({ min: 1, max: 100 }) }), { maxLength: 60 }),
      fc.integer({ min: 0, max: 100 }),
      (ops, now) => {
        const t = new Table(h, 64, 4096);
        const model = new Map<string, number>();
        for (const o of ops) {
          const k = `${o.ip}|${o.name}`;
          if (o.op === "put") { t.put(o.ip, o.name, o.exp); model.set(k, Math.max(model.get(k) ?? 0, o.exp)); }
          else assert.equal(t.remove(o.ip, o.name), model.delete(k));
        }
        for (const ip of ips) {
          const want = [...model].filter(([k, e]) => k.startsWith(ip + "|") && e > now).map(([k]) => k.split("|")[1]).sort();
          assert.deepEqual(t.names(ip, now).map((c) => c.name), want);
        }
      },
    ),
    { numRuns: 300 },
  );
});

test("parses Envoy address strings and formats addresses back", () => {
  const h = loadHarness("egress_resolve");
  const io = h.exports.ioPtr();
  const parse = (s: string, withPort: boolean) => {
    const b = Buffer.from(s);
    h.write(io, b);
    if (!h.exports.parse(b.length, withPort)) return null;
    return { hi: BigInt.asUintN(64, h.exports.lastHi()), lo: BigInt.asUintN(64, h.exports.lastLo()), port: h.exports.lastPort() as number, v4: h.exports.lastIsV4() === 1 };
  };
  const fmt = (hi: bigint, lo: bigint) => Buffer.from(h.read(io, h.exports.format(hi, lo))).toString();
  for (const [text, ip, port] of [["93.184.216.34:443", "93.184.216.34", 443], ["[2001:db8::1]:8443", "2001:db8::1", 8443], ["[::1]:1", "::1", 1], ["0.0.0.0:0", "0.0.0.0", 0]] as const) {
    const r = parse(text, true);
    assert.ok(r, text);
    assert.deepEqual([r!.hi, r!.lo], ipHalves(ip));
    assert.equal(r!.port, port);
    assert.equal(fmt(r!.hi, r!.lo), ip);
  }
  assert.equal(parse("::ffff:1.2.3.4", false)!.v4, true);
  assert.equal(fmt(...ipHalves("2001:db8:0:0:1:0:0:1")), "2001:db8::1:0:0:1");
  assert.equal(fmt(...ipHalves("fe80::")), "fe80::");
  for (const bad of ["1.2.3.4", "1.2.3:80", "1.2.3.256:80", "01.2.3.4:80", "1.2.3.4:65536", "[1::2::3]:80", "[1:2:3:4:5:6:7:8:9]:1", "[::1:80", "a.b.c.d:80", ":80", "1.2.3.4:"])
    assert.equal(parse(bad, true), null, bad);
  fc.assert(fc.property(fc.ipV6(), (ip) => { const r = parse(ip, false); assert.ok(r, ip); assert.deepEqual([r!.hi, r!.lo], ipHalvesNode(ip)); }), { numRuns: 2000 });
  fc.assert(fc.property(fc.string({ maxLength: 50 }), (s) => { parse(s, true); parse(s, false); }), { numRuns: 20000 });
});

/** IPv6 (possibly with embedded IPv4) to halves using a simple reference expansion. */
function ipHalvesNode(ip: string): [bigint, bigint] {
  let s = ip;
  const m = s.match(/(\d+\.\d+\.\d+\.\d+)$/);
  if (m) {
    const v = m[1]!.split(".").map(Number);
    s = s.slice(0, -m[1]!.length) + ((v[0]! << 8) | v[1]!).toString(16) + ":" + ((v[2]! << 8) | v[3]!).toString(16);
  }
  return ipHalves(s);
}
