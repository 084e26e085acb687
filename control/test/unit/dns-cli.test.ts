// Test that `egret dns --pcap` prints one JSON object per accepted answer (stdout) and the
// rejection counts (stderr), and fails clearly on bad input.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const EGRET = join(process.cwd(), "bin", "egret.js");
const CORPUS = join(process.cwd(), "..", "shared", "corpus", "dns");

function egret(...args: string[]) {
  const r = spawnSync(process.execPath, [EGRET, ...args], { encoding: "utf8" });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

test("--json prints the accepted answers of a capture, rejections on stderr", { skip: existsSync(CORPUS) ? false : "corpus not found" }, () => {
  const r = egret("dns", "--pcap", join(CORPUS, "ndpi__dns-google-nsid.pcapng"), "--json");
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.equal(lines.length, 7);
  const ntop = lines.find((l) => l.qname === "www.ntop.org" && l.client === "192.168.1.29")!;
  assert.deepEqual(Object.keys(ntop).slice(0, 8), ["time", "client", "server", "transport", "id", "qname", "qtype", "rcode"]);
  assert.equal(ntop.server, "8.8.4.4");
  assert.equal(ntop.transport, "udp");
  assert.equal(ntop.qtype, "A");
  assert.equal(typeof ntop.time, "number");
  assert.deepEqual(ntop.answers, [
    { name: "www.ntop.org", type: "CNAME", ttl: 3501, data: "ntop-digitalocean.ntop.org" },
    { name: "ntop-digitalocean.ntop.org", type: "A", ttl: 3600, data: "178.62.197.130" },
  ]);
  const summary = JSON.parse(r.stderr.trim()) as { accepted: number; rejected: Record<string, number> };
  assert.equal(summary.accepted, 7);
});

test("--trusted-resolver restricts the evidence and counts the rest", { skip: existsSync(CORPUS) ? false : "corpus not found" }, () => {
  const r = egret("dns", "--pcap", join(CORPUS, "ndpi__dns-google-nsid.pcapng"), "--json", "--trusted-resolver", "8.8.4.4");
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trim().split("\n").map((l) => JSON.parse(l) as { server: string });
  assert.ok(lines.length > 0 && lines.every((l) => l.server === "8.8.4.4"));
  const summary = JSON.parse(r.stderr.trim()) as { rejected: Record<string, number> };
  assert.equal(summary.rejected["untrusted-resolver"], 7 - lines.length);
});

test("bad input: usage errors exit 2, unreadable or non-capture files exit 1 with the file named", () => {
  const dir = mkdtempSync(join(tmpdir(), "egret-dns-cli-"));
  try {
    assert.equal(egret("dns").code, 2);
    assert.equal(egret("dns", "--pcap", "x", "--bogus").code, 2);
    assert.equal(egret("dns", "--pcap", "x", "--dns-port", "70000").code, 2);
    const trusted = egret("dns", "--pcap", join(dir, "none"), "--trusted-resolver", "nope");
    assert.equal(trusted.code, 2);
    assert.match(trusted.stderr, /trusted resolver: "nope"/);
    const missing = egret("dns", "--pcap", join(dir, "none.pcap"));
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /cannot read .*none\.pcap/);
    const text = join(dir, "text.pcap");
    writeFileSync(text, "hello, not a capture\n");
    const notPcap = egret("dns", "--pcap", text);
    assert.equal(notPcap.code, 1);
    assert.match(notPcap.stderr, /text\.pcap: not a pcap/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
