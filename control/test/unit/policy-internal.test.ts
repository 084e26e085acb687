// "Internal means internal": `external: true` never matches loopback, link-local or the cloud
// metadata addresses, whatever --cluster-cidr says; --cluster-cidr adds to the default private
// ranges unless --replace-default-cluster-cidrs; the validator and `egret explain` say so.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { tmpdir } from "node:os";
import { compilePodSnapshot, PolicyEngine, validatePolicyObject, ALWAYS_INTERNAL, type Policy } from "../../src/policy/index.js";

const BIN = fileURLToPath(new URL("../../../../bin/egret.js", import.meta.url));
const POD = { namespace: "shop", name: "web-0", labels: { app: "web" } };
const EXTERNAL_ALLOW = {
  apiVersion: "egret.dev/v1alpha1", kind: "EgressPolicy", metadata: { name: "internet", namespace: "shop" },
  spec: { podSelector: {}, rules: [{ name: "internet", action: "Allow", to: { external: true } }] },
};
const NEVER_EXTERNAL = ["169.254.169.254", "169.254.170.2", "100.100.100.200", "127.0.0.1", "0.0.0.0", "::1", "::", "fe80::a9fe:a9fe", "fd00:ec2::254", "::ffff:169.254.169.254"];

function policy(): Policy {
  const r = validatePolicyObject(EXTERNAL_ALLOW);
  assert.ok(r.policy, JSON.stringify(r.diagnostics));
  return r.policy;
}

function verdict(ip: string, options: { clusterCidrs?: string[]; replaceDefaultClusterCidrs?: boolean }): string {
  const engine = new PolicyEngine();
  engine.load(compilePodSnapshot([policy()], POD, {}, options).bytes);
  return engine.evaluate({ ip, port: 80, names: [] }).verdict;
}

test("external never matches loopback, link-local or metadata addresses, whatever the cluster CIDRs", () => {
  const configurations = [
    {}, { clusterCidrs: ["10.0.0.0/8"] }, { clusterCidrs: ["10.0.0.0/8"], replaceDefaultClusterCidrs: true },
    { clusterCidrs: [], replaceDefaultClusterCidrs: true },
  ];
  for (const options of configurations) {
    for (const ip of NEVER_EXTERNAL) assert.equal(verdict(ip, options), "deny", `${ip} with ${JSON.stringify(options)}`);
    assert.equal(verdict("8.8.8.8", options), "allow", `a public address is external (${JSON.stringify(options)})`);
  }
});

test("--cluster-cidr adds to the default private ranges; replacing them is explicit", () => {
  assert.equal(verdict("192.168.1.1", { clusterCidrs: ["10.0.0.0/8"] }), "deny", "defaults kept");
  assert.equal(verdict("203.0.113.9", { clusterCidrs: ["203.0.113.0/24"] }), "deny", "configured range added");
  assert.equal(verdict("192.168.1.1", { clusterCidrs: ["10.0.0.0/8"], replaceDefaultClusterCidrs: true }), "allow", "defaults replaced");
  assert.equal(verdict("10.1.2.3", { clusterCidrs: ["10.0.0.0/8"], replaceDefaultClusterCidrs: true }), "deny");
});

test("every always-internal entry says what it is", () => {
  for (const e of ALWAYS_INTERNAL) assert.ok(e.what.length > 5, e.cidr);
  assert.ok(ALWAYS_INTERNAL.some((e) => e.cidr === "169.254.0.0/16" && e.what.includes("169.254.169.254")));
});

test("the validator warns when an Allow cidr includes a metadata address, and not when it is excepted or a Deny", () => {
  const withCidr = (action: string, cidr: Record<string, unknown>) => validatePolicyObject({
    ...EXTERNAL_ALLOW, spec: { podSelector: {}, rules: [{ name: "r", action, to: { cidrs: [cidr] } }] },
  }).diagnostics.filter((d) => d.code === "cidr-allows-metadata");
  const warned = withCidr("Allow", { cidr: "0.0.0.0/0" });
  assert.equal(warned.length, 1);
  assert.match(warned[0]!.message, /169\.254\.169\.254/);
  assert.match(warned[0]!.hint, /external: true, which never matches loopback, link-local or metadata/);
  assert.equal(withCidr("Allow", { cidr: "0.0.0.0/0", except: ["169.254.0.0/16", "100.100.100.200/32"] }).length, 0);
  assert.equal(withCidr("Deny", { cidr: "0.0.0.0/0" }).length, 0);
  assert.equal(withCidr("Allow", { cidr: "::/0" }).length, 1, "fd00:ec2::254 (AWS IPv6 IMDS)");
});

test("egret explain --cluster-cidr: external: true does not match 169.254.169.254, and it says why", () => {
  const dir = mkdtempSync(join(tmpdir(), "egret-internal-"));
  try {
    const file = join(dir, "p.yaml");
    writeFileSync(file, JSON.stringify(EXTERNAL_ALLOW));
    for (const extra of [[], ["--replace-default-cluster-cidrs"]]) {
      const r = spawnSync(process.execPath, [BIN, "explain", "--policy", file, "--pod", "shop/web-0:app=web", "--to", "169.254.169.254:80", "--cluster-cidr", "10.0.0.0/8", ...extra], { encoding: "utf8" });
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stdout, /169\.254\.169\.254 is in 169\.254\.0\.0\/16, IPv4 link-local.*never external, whatever --cluster-cidr says/);
      assert.match(r.stdout, /verdict: deny \(/);
      assert.doesNotMatch(r.stdout, /verdict: allow/);
    }
    const pub = spawnSync(process.execPath, [BIN, "explain", "--policy", file, "--pod", "shop/web-0:app=web", "--to", "192.168.0.10:80", "--cluster-cidr", "10.0.0.0/8", "--replace-default-cluster-cidrs", "--json"], { encoding: "utf8" });
    assert.equal(pub.status, 0, pub.stderr);
    const j = JSON.parse(pub.stdout) as { verdict: string; alwaysInternal: string | null };
    assert.equal(j.verdict, "allow", "192.168/16 replaced away: external");
    assert.equal(j.alwaysInternal, null);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
