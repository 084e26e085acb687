// The evidence half of the chain in the mesh, real processes only: a pod's DNS lookup through
// cluster DNS is captured by `egret agent` on the pod's node-side link and lands in
// `egret control`, which answers Lookup for that pod only; a Lookup that arrives before the
// answer waits for it; a control killed and restarted gets the evidence back from the agent.
// A pod with Istio-style DNS capture (queries REDIRECTed to a DNS proxy on 127.0.0.1:15053 that
// runs as the proxy's uid/gid and forwards from the pod's address) keeps its forwarded names as
// its own evidence, while names the proxy answers locally leave none on the node.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { MeshCluster } from "../../src/mesh/cluster.js";
import { loadWorld } from "../../src/mesh/world.js";
import { meshUnavailableReason, type PodNetwork } from "../../src/mesh/netns.js";
import { missingServerPrograms } from "../../src/mesh/services/index.js";
import { CONTROL_GRPC_PORT, nodeName, repoAt, startAgent, startControl, startDnsProxy, writeAgentCredentials, type MeshFiles } from "../../src/mesh/components.js";
import { ManagedProcess } from "../../src/mesh/process.js";
import { mustRun, run } from "../../src/mesh/exec.js";

const PREFIX = "egG";
const root = join(fileURLToPath(new URL(".", import.meta.url)), "../../../..");
const world = loadWorld(join(root, "istio-tests/scenarios/world.yaml"));
const repo = repoAt(root);

function chainMissing(): string | undefined {
  for (const c of ["control", "agent"]) {
    if (!existsSync(join(root, `dist/control/src/cli/commands/${c}.js`))) return `\`egret ${c}\` does not exist yet`;
  }
  if (!existsSync(join(root, "dist/native/packet_ring.node"))) return "the agent's capture addon dist/native/packet_ring.node is not built (npm run build:native; needs g++)";
  const missing = missingServerPrograms(["dns"]);
  return missing.length ? `missing programs: ${missing.join(", ")}` : undefined;
}
const skip = (await meshUnavailableReason(PREFIX)) ?? chainMissing();
if (skip) console.log(`# mesh-evidence: skipped — ${skip}`);

let cluster: MeshCluster | undefined;
let files: MeshFiles;
let control: ManagedProcess | undefined;
let agent: ManagedProcess | undefined;
let dnsProxy: ManagedProcess | undefined;
/** A ServiceEntry-like VIP only the pod's DNS proxy knows (198.18.0.0/15, never routed here). */
const VIP = "198.18.200.5";
const pods: Record<string, PodNetwork> = {};

before(async () => {
  if (skip) return;
  cluster = await MeshCluster.start({ prefix: PREFIX, world, services: [] });
  const dir = join(cluster.workDir, "evidence");
  mkdirSync(join(dir, "policies"), { recursive: true });
  files = {
    policyDir: join(dir, "policies"), podsFile: join(dir, "pods.yaml"), auditLog: join(dir, "audit.log"), logDir: dir,
    agentTokens: join(dir, "agent-tokens"), agentToken: join(dir, "agent-token"),
  };
  writeAgentCredentials(cluster.net, files);
  writeFileSync(join(files.policyDir, "p.yaml"), "apiVersion: egret.dev/v1alpha1\nkind: EgressPolicy\nmetadata: {name: p, namespace: shop}\nspec:\n  podSelector: {}\n  rules: [{action: Allow, to: {domains: [db.example.test]}}]\n");
  pods.a = await cluster.net.addPod("shop/a", "198.18.1.10");
  pods.b = await cluster.net.addPod("shop/b", "198.18.1.11");
  pods.c = await cluster.net.addPod("shop/c", "198.18.1.12");
  const node = nodeName(cluster.net);
  writeFileSync(files.podsFile, `pods:\n  - {name: a, namespace: shop, ips: [198.18.1.10], node: ${node}}\n  - {name: b, namespace: shop, ips: [198.18.1.11], node: ${node}}\n  - {name: c, namespace: shop, ips: [198.18.1.12], node: ${node}}\n`);
  control = await startControl(cluster.net, repo, files, world.clusterCidrs);
  agent = await startAgent(cluster.net, repo, files, world.resolver);
  // Pod c: Istio DNS capture. The proxy runs as the sidecar's uid/gid, exempt from the redirect.
  await cluster.net.redirectDns(pods.c, [world.resolver]);
  dnsProxy = await startDnsProxy(pods.c, repo, files, world.resolver, new Map([["vip.example.test", [VIP]]]));
}, { timeout: 120_000 });

after(async () => {
  await dnsProxy?.stop();
  await agent?.stop();
  await control?.stop();
  await cluster?.destroy();
});

interface LookupAnswer { result: string; names: { name: string; cname_chain: string[] }[]; error?: string }

/** A Lookup as the pod's filter makes it: from inside the pod's network namespace (control binds by address). */
async function lookupFor(pod: string, destination: string, waitMs: number): Promise<LookupAnswer> {
  const probe = join(root, "dist/control/src/mesh/probes/lookup-probe.js");
  const r = await run("ip", ["netns", "exec", pods[pod.split("/")[1]!]!.netns, process.execPath, probe, `${cluster!.net.gateway}:${CONTROL_GRPC_PORT}`, pod, pods[pod.split("/")[1]!]!.ip, destination, String(waitMs)], { timeoutMs: waitMs + 15_000 });
  return JSON.parse(r.stdout.trim() || JSON.stringify({ result: "", names: [], error: r.stderr })) as LookupAnswer;
}

function dig(pod: string, name: string) {
  return mustRun("ip", ["netns", "exec", pods[pod]!.netns, "dig", "+short", "+time=2", name]);
}

test("a pod's lookup becomes evidence for that pod only", { skip, timeout: 60_000 }, async () => {
  assert.equal((await dig("a", "db.example.test")).stdout.trim(), "198.19.1.10");
  const mine = await lookupFor("shop/a", "198.19.1.10", 3000);
  assert.equal(mine.result, "LOOKUP_RESULT_FOUND", JSON.stringify(mine));
  assert.deepEqual(mine.names.map((n) => n.name), ["db.example.test"]);
  // wait_ms 0 would mean "until the call deadline"; a short wait asks "known right now?".
  const theirs = await lookupFor("shop/b", "198.19.1.10", 200);
  assert.equal(theirs.result, "LOOKUP_RESULT_NOT_FOUND", `pod b never resolved it: ${JSON.stringify(theirs)}`);
});

test("a CNAME chain is kept with the name it answers", { skip, timeout: 60_000 }, async () => {
  assert.match((await dig("a", "assets.example.test")).stdout, /198\.19\.2\.40/);
  const r = await lookupFor("shop/a", "198.19.2.40", 3000);
  assert.equal(r.result, "LOOKUP_RESULT_FOUND", JSON.stringify(r));
  const all = r.names.flatMap((n) => [n.name, ...n.cname_chain]);
  assert.ok(all.includes("assets.example.test") && all.includes("a.cdn.example.test"), JSON.stringify(r.names));
});

test("a Lookup made before the answer arrives waits for it (no first-connection race)", { skip, timeout: 60_000 }, async () => {
  const pending = lookupFor("shop/b", "198.19.2.10", 8000);
  await new Promise((r) => setTimeout(r, 500));
  await dig("b", "api.example.test");
  const r = await pending;
  assert.equal(r.result, "LOOKUP_RESULT_FOUND", JSON.stringify(r));
  assert.deepEqual(r.names.map((n) => n.name), ["api.example.test"]);
});

test("control killed and restarted gets unexpired evidence back from the agent", { skip, timeout: 90_000 }, async () => {
  await dig("b", "cache.example.test");
  assert.equal((await lookupFor("shop/b", "198.19.1.12", 3000)).result, "LOOKUP_RESULT_FOUND");
  control!.killNow();
  await control!.waitExit();
  control = await startControl(cluster!.net, repo, files, world.clusterCidrs);
  const r = await lookupFor("shop/b", "198.19.1.12", 5000);
  assert.equal(r.result, "LOOKUP_RESULT_FOUND", `after restart: ${JSON.stringify(r)}`);
});

test("with Istio-style DNS capture, names the proxy forwards from the pod's address are that pod's evidence", { skip, timeout: 60_000 }, async () => {
  assert.equal((await dig("c", "db.example.test")).stdout.trim(), "198.19.1.10");
  const r = await lookupFor("shop/c", "198.19.1.10", 3000);
  assert.equal(r.result, "LOOKUP_RESULT_FOUND", JSON.stringify(r));
  assert.deepEqual(r.names.map((n) => n.name), ["db.example.test"]);
});

test("a name the pod's DNS proxy answers locally leaves no DNS evidence on the node", { skip, timeout: 60_000 }, async () => {
  // Only the proxy knows this name (the cluster resolver does not): the answer proves the REDIRECT.
  assert.equal((await dig("c", "vip.example.test")).stdout.trim(), VIP);
  const r = await lookupFor("shop/c", VIP, 300);
  assert.equal(r.result, "LOOKUP_RESULT_NOT_FOUND", `nothing crossed the node: ${JSON.stringify(r)}`);
});

test("with Istio-style DNS capture, DNS over TCP is captured too: forwarded over TCP as the pod's evidence, VIPs answered in the pod", { skip, timeout: 60_000 }, async () => {
  const tcpDig = (name: string) => mustRun("ip", ["netns", "exec", pods.c!.netns, "dig", "+short", "+tcp", "+time=2", name]);
  assert.equal((await tcpDig("vip.example.test")).stdout.trim(), VIP, "the proxy answered over TCP (the cluster resolver does not know this name)");
  assert.equal((await tcpDig("mysql.example.test")).stdout.trim(), "198.19.1.11");
  const r = await lookupFor("shop/c", "198.19.1.11", 3000);
  assert.equal(r.result, "LOOKUP_RESULT_FOUND", JSON.stringify(r));
  assert.deepEqual(r.names.map((n) => n.name), ["mysql.example.test"]);
});
