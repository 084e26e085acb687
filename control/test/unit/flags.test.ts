// The one flag parser (control/src/common/flags.ts, on commander): the syntax every command,
// the sidecar and the mesh helpers accept, and the errors they give.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFlags, FlagError } from "../../src/common/flags.js";

const OPTIONS = {
  pcap: { type: "string" }, json: { type: "boolean" }, help: { type: "boolean", short: "h" },
  "dns-port": { type: "string", multiple: true }, policy: { type: "string", multiple: true, variadic: true },
  "no-warnings": { type: "boolean" }, "grpc-listen": { type: "string", default: "0.0.0.0:9090" },
} as const;

test("flags: values by their flag names; --flag value and --flag=value; defaults when absent", () => {
  const { values, positionals } = readFlags({ args: ["--pcap", "a.pcap", "--json", "--grpc-listen=:1"], options: OPTIONS });
  assert.deepEqual(values, { pcap: "a.pcap", json: true, "grpc-listen": ":1" });
  assert.deepEqual(positionals, []);
  assert.deepEqual(readFlags({ args: [], options: OPTIONS }).values, { "grpc-listen": "0.0.0.0:9090" });
  assert.equal(readFlags({ args: ["-h"], options: OPTIONS }).values.help, true);
});

test("flags: repeated flags collect; a variadic flag also takes the values that follow it", () => {
  const r = readFlags({ args: ["--dns-port", "53", "--dns-port", "5353", "--policy", "a.yaml", "b.yaml", "--policy", "c.yaml", "--json"], options: OPTIONS });
  assert.deepEqual(r.values["dns-port"], ["53", "5353"]);
  assert.deepEqual(r.values.policy, ["a.yaml", "b.yaml", "c.yaml"]);
  assert.equal(r.values.json, true);
  // A repeatable (not variadic) flag takes one value: the next word is a positional.
  const p = readFlags({ args: ["--dns-port", "53", "x"], options: OPTIONS, allowPositionals: true });
  assert.deepEqual([p.values["dns-port"], p.positionals], [["53"], ["x"]]);
});

test("flags: a flag named no-x is a plain boolean, not a negation", () => {
  assert.equal(readFlags({ args: ["--no-warnings"], options: OPTIONS }).values["no-warnings"], true);
  assert.equal(readFlags({ args: [], options: OPTIONS }).values["no-warnings"], undefined);
});

test("flags: mistakes are FlagErrors that say what is wrong", () => {
  const fails = (args: string[], re: RegExp, allowPositionals = false) =>
    assert.throws(() => readFlags({ args, options: OPTIONS, allowPositionals }), (e: unknown) => e instanceof FlagError && re.test((e as Error).message), args.join(" "));
  fails(["--bogus"], /^unknown option '--bogus'/);
  fails(["--pcap"], /^option '--pcap <value>' argument missing/);
  fails(["stray"], /too many arguments/);
  assert.deepEqual(readFlags({ args: ["a", "--json", "b"], options: OPTIONS, allowPositionals: true }).positionals, ["a", "b"]);
});
