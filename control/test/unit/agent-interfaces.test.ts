// `egret agent --interface`: patterns written for other tools are refused with what to write
// instead, and patterns that match nothing on the node stop the agent at start (issue #15).
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { interfacePatternError, checkInterfacePatterns, globMatches } from "../../src/agent/interface-patterns.js";
import { selectInterfaces } from "../../src/agent/capture.js";

const bin = fileURLToPath(new URL("../../../../bin/egret.js", import.meta.url));

test("iptables-style, regular-expression and list values are refused with the glob to write", () => {
  assert.equal(interfacePatternError("veth+"), `--interface "veth+": "+" is not a wildcard here (it is in iptables and Calico); only "*" and "?" are — write "veth*"`);
  assert.equal(interfacePatternError("veth+ cali+ lxc+"), `--interface "veth+ cali+ lxc+": one pattern per flag; write --interface veth* --interface cali* --interface lxc*`);
  assert.equal(interfacePatternError("cali*,lxc*"), `--interface "cali*,lxc*": one pattern per flag; write --interface cali* --interface lxc*`);
  assert.match(interfacePatternError("cali.*")!, /not a regular expression; only "\*" \(any characters\) and "\?" \(one character\) are wildcards — e.g. "cali\*"/);
  assert.match(interfacePatternError("^lxc[0-9a-f]+$")!, /not a regular expression/);
  assert.match(interfacePatternError("")!, /empty/);
  assert.match(interfacePatternError("a-very-long-interface-name")!, /longer than 15 bytes/);
  for (const ok of ["veth*", "cali*", "lxc?abc", "eth0", "eth0.100", "any", "br-0f1e2d3c4b5a"]) assert.equal(interfacePatternError(ok), undefined, ok);
});

test("together the patterns must match an interface at start; one that matches nothing among others is only reported", () => {
  const node = ["lo", "eth0", "cali12ab34cd56e", "cali98ff"];
  const none = checkInterfacePatterns(["veth*", "lxc*"], node);
  assert.deepEqual(none.unmatched, ["veth*", "lxc*"]);
  assert.equal(none.error, `--interface "veth*" "lxc*" matches no interface on this node (it has: cali12ab34cd56e, cali98ff, eth0, lo); give a pattern for the pods' interfaces (Calico "cali*", Cilium "lxc*", bridge/ptp CNIs "veth*") or --interface any`);
  assert.deepEqual(checkInterfacePatterns(["cali*", "lxc*", "veth*"], node), { unmatched: ["lxc*", "veth*"] });
  assert.deepEqual(checkInterfacePatterns(["any"], []), { unmatched: [] });
  // The check and the capture agree on what a pattern selects.
  const patterns = ["cali98??", "e*"];
  assert.deepEqual(selectInterfaces(patterns, node), node.filter((n) => patterns.some((p) => globMatches(p, n))).sort());
});

test("egret agent refuses a bad --interface before capturing, naming the flag and the fix (exit 2)", () => {
  const run = (iface: string) => spawnSync(process.execPath, [bin, "agent", "--interface", iface, "--trusted-resolver", "198.18.0.10", "--control", "127.0.0.1:1"], { encoding: "utf8", timeout: 20_000 });
  const plus = run("veth+");
  assert.equal(plus.status, 2, plus.stderr);
  assert.match(plus.stderr, /--interface "veth\+": "\+" is not a wildcard here .* write "veth\*"/);
  const nothing = run("egret-no-such-if*");
  assert.equal(nothing.status, 2, nothing.stderr);
  assert.match(nothing.stderr, /--interface "egret-no-such-if\*" matches no interface on this node \(it has: .*lo.*\)/);
});
