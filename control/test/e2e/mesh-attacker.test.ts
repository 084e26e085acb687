// The attacker pod (issue #13), in the mesh in a box with authentication on everywhere: agents
// with tokens, sidecars bound by their pod address. An app that is root in its pod talks to
// egret control's gRPC port directly (as the sidecar's uid, which the pod's REDIRECT exempts, as
// a root app can): it forges Observe evidence with no token, with another node's token and with
// this node's token for another node's pod; it Watches, Looks up and Reports as the victim pod;
// it floods streams and Lookups. Every attempt is refused and counted in control's metrics, and
// afterwards the forged resolution allows nothing while the victim's connections are decided as
// before (allowed stays allowed, a forged name is denied) — also while the flood is parked.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { appendFileSync, existsSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parse, stringify } from "yaml";
import { MeshCluster } from "../../src/mesh/cluster.js";
import { EgretSession } from "../../src/mesh/session.js";
import { loadWorld } from "../../src/mesh/world.js";
import { meshUnavailableReason, SIDECAR_GID } from "../../src/mesh/netns.js";
import { missingServerPrograms, webCaPath } from "../../src/mesh/services/index.js";
import { CONTROL_GRPC_PORT, CONTROL_HTTP_PORT, missingComponents, repoAt, sidecarUid } from "../../src/mesh/components.js";
import { runConnect, runResolve, type ClientEnv } from "../../src/mesh/clients.js";
import { auditMismatches, readAudit, waitForVerdict } from "../../src/mesh/audit.js";
import { run } from "../../src/mesh/exec.js";
import type { ConnectStep } from "../../src/mesh/scenario.js";

const PREFIX = "egG";
const root = join(fileURLToPath(new URL(".", import.meta.url)), "../../../..");
const world = loadWorld(join(root, "istio-tests/scenarios/world.yaml"));
const repo = repoAt(root);
const API = "api.example.test";
/** An address of the web service nobody resolved: the forged evidence points api.example.test here. */
const FORGED_IP = "198.19.2.60";
const STOLEN = "stolen-token-of-another-node-0123456789";
const OTHER_NODE = "other-node";
/** A pod of another node (declared in the pods file only). */
const REMOTE_POD_IP = "198.18.1.240";

const POLICY = {
  apiVersion: "egret.dev/v1alpha1", kind: "EgressPolicy", metadata: { name: "partner", namespace: "shop" },
  spec: { podSelector: {}, rules: [{ name: "partner-api", action: "Allow", to: { domains: [API] }, protocols: ["tls", "http"] }] },
};
const VICTIM = { name: "victim", namespace: "shop", labels: { app: "victim" }, key: "shop/victim" };
const ATTACKER = { name: "attacker", namespace: "shop", labels: { app: "attacker" }, key: "shop/attacker" };

function chainMissing(): string | undefined {
  const missing = missingComponents(repo);
  if (!existsSync(join(root, "dist/native/packet_ring.node"))) missing.push("the agent's capture addon dist/native/packet_ring.node is not built (npm run build:native)");
  const programs = missingServerPrograms(["dns", "web"]);
  if (programs.length) missing.push(`missing programs: ${programs.join(", ")}`);
  return missing.length ? missing.join("; ") : undefined;
}
const skip = (await meshUnavailableReason(PREFIX)) ?? chainMissing();
if (skip) console.log(`# mesh-attacker: skipped — ${skip}`);

let cluster: MeshCluster | undefined;
let session: EgretSession | undefined;

before(async () => {
  if (skip) return;
  cluster = await MeshCluster.start({ prefix: PREFIX, world });
  session = await EgretSession.start(cluster, repo, { pods: [VICTIM, ATTACKER], namespaces: { shop: { labels: {} } }, policies: [POLICY] }, join(cluster.workDir, "attacker"));
  await session.awaitSidecarsConnected(60_000);
  // A second node exists: its agent's token (which the attacker is assumed to have stolen) and one of its pods.
  appendFileSync(session.files.agentTokens, `${STOLEN} ${OTHER_NODE}\n`);
  const pods = parse(readFileSync(session.files.podsFile, "utf8")) as { pods: Record<string, unknown>[] };
  pods.pods.push({ name: "remote", namespace: "shop", labels: {}, ips: [REMOTE_POD_IP], node: OTHER_NODE, sidecar: true });
  writeFileSync(session.files.podsFile, stringify(pods));
}, { timeout: 180_000 });

after(async () => {
  await session?.stop();
  await cluster?.destroy();
});

const ip = (pod: { key: string }) => session!.pod(pod.key).ip;
const controlAddress = () => `${cluster!.net.gateway}:${CONTROL_GRPC_PORT}`;

/** One attack from inside the attacker pod, as the proxy uid (exempt from the REDIRECT). */
async function attack(...args: string[]): Promise<Record<string, unknown>> {
  const probe = join(root, "dist/control/src/mesh/probes/attack-probe.js");
  const r = await run("ip", ["netns", "exec", session!.pod(ATTACKER.key).netns, "setpriv", `--reuid=${sidecarUid(repo)}`, `--regid=${SIDECAR_GID}`, "--clear-groups",
    process.execPath, probe, controlAddress(), ...args], { timeoutMs: 60_000 });
  const line = r.stdout.trim().split("\n").pop() ?? "";
  assert.ok(line.startsWith("{"), `attack ${args.join(" ")}: ${r.stdout}${r.stderr}`);
  return JSON.parse(line) as Record<string, unknown>;
}

/** Repeats an attack until `done` holds (control re-reads the token and pods files on change), at most ~15 s. */
async function attackUntil(done: (r: Record<string, unknown>) => boolean, ...args: string[]): Promise<Record<string, unknown>> {
  let r = await attack(...args);
  for (let i = 0; i < 30 && !done(r); i++) {
    await new Promise((res) => setTimeout(res, 500));
    r = await attack(...args);
  }
  return r;
}

/** control's counters: `name{labels}` → value. */
async function metrics(): Promise<Map<string, number>> {
  const r = await run("ip", ["netns", "exec", cluster!.net.nodeNs, "curl", "-fsS", "--max-time", "5", `http://${cluster!.net.gateway}:${CONTROL_HTTP_PORT}/metrics`], { timeoutMs: 8_000 });
  const out = new Map<string, number>();
  for (const line of r.stdout.split("\n")) {
    const m = /^(egret_[a-z_]+(?:\{[^}]*\})?) ([0-9.e+-]+)$/.exec(line);
    if (m) out.set(m[1]!, Number(m[2]));
  }
  return out;
}
/** How much the counter whose name and labels contain every `parts` grew between two readings. */
function grew(before: Map<string, number>, after: Map<string, number>, ...parts: string[]): number {
  let sum = 0;
  for (const [k, v] of after) if (parts.every((p) => k.includes(p))) sum += v - (before.get(k) ?? 0);
  return sum;
}

function env(pod: { key: string }): ClientEnv {
  return { netns: session!.pod(pod.key).netns, world, caFile: webCaPath({ net: cluster!.net, world, workDir: cluster!.workDir }) };
}

/** A connection through the pod's sidecar, and its verdict in the audit log. */
async function connect(pod: { key: string }, step: Partial<ConnectStep> & { to: string; client: ConnectStep["client"] }, want: { outcome: "connected" | "refused"; verdict: string; reason: string }): Promise<void> {
  const offset = statSync(session!.files.auditLog).size;
  const full = { kind: "connect", title: "", pod: pod.key, port: 443, expect: { outcome: want.outcome }, ...step } as ConnectStep;
  const r = await runConnect(env(pod), full);
  assert.equal(r.outcome, want.outcome, `${pod.key} → ${step.to}: ${r.command}\n${r.output}`);
  const destinationIp = /^\d/.test(step.to) ? step.to : undefined;
  const found = await waitForVerdict(session!.files.auditLog, offset, { podKey: pod.key, podIp: ip(pod), destinationIp, destinationPort: 443 }, 10_000,
    (e) => auditMismatches(e, { verdict: want.verdict, reason: want.reason } as never).length === 0);
  assert.ok(found.entry, `a verdict for ${pod.key} → ${step.to}`);
  assert.deepEqual([found.entry.verdict, found.entry.reason], [want.verdict, want.reason], JSON.stringify(found.entry.raw));
}

test("the victim's path works before any attack: allowed by name", { skip, timeout: 60_000 }, async () => {
  await connect(VICTIM, { client: "curl", to: API }, { outcome: "connected", verdict: "allow", reason: "allowed" });
});

test("attack (a): forged Observe evidence — no token, another node's token, this node's token for another node's pod — is refused and counted", { skip, timeout: 90_000 }, async () => {
  const m0 = await metrics();
  const noToken = await attack("observe", "-", ip(ATTACKER), API, FORGED_IP, world.resolver);
  assert.equal(noToken.status, "UNAUTHENTICATED", JSON.stringify(noToken));
  const forVictim = await attack("observe", "-", ip(VICTIM), API, FORGED_IP, world.resolver);
  assert.equal(forVictim.status, "UNAUTHENTICATED", JSON.stringify(forVictim));
  const junk = await attack("observe", "not-a-token-anyone-has", ip(ATTACKER), API, FORGED_IP, world.resolver);
  assert.equal(junk.status, "UNAUTHENTICATED", JSON.stringify(junk));
  // The stolen token of another node: the stream is that node's; this node's pods are not its to speak for.
  const otherNode = await attackUntil((r) => r.status === "OK", "observe", STOLEN, ip(ATTACKER), API, FORGED_IP, world.resolver);
  assert.deepEqual([otherNode.status, otherNode.accepted, otherNode.rejected], ["OK", 0, 1], JSON.stringify(otherNode));
  // This node's own token (the agent's) for a pod of the other node.
  const agentToken = readFileSync(session!.files.agentToken, "utf8").trim();
  const remote = await attackUntil((r) => r.rejected === 1, "observe", agentToken, REMOTE_POD_IP, API, FORGED_IP, world.resolver);
  assert.deepEqual([remote.status, remote.accepted, remote.rejected], ["OK", 0, 1], JSON.stringify(remote));
  const m1 = await metrics();
  assert.ok(grew(m0, m1, "egret_control_agent_auth_total", 'outcome="') - grew(m0, m1, "egret_control_agent_auth_total", 'outcome="ok"') >= 3, "three refused authentications counted");
  assert.ok(grew(m0, m1, "egret_control_foreign_node_observations_total", OTHER_NODE) >= 1, "the other node's token speaking for this node's pod");
  assert.ok(grew(m0, m1, "egret_control_foreign_node_observations_total") >= 2, "and this node's token for the other node's pod");
});

test("attack (b): Watch and Lookup as the victim are PERMISSION_DENIED and counted", { skip, timeout: 60_000 }, async () => {
  const m0 = await metrics();
  assert.equal((await attack("watch", VICTIM.key, ip(VICTIM))).status, "PERMISSION_DENIED");
  assert.equal((await attack("watch", VICTIM.key, ip(ATTACKER))).status, "PERMISSION_DENIED", "naming the victim with its own address");
  assert.equal((await attack("lookup", VICTIM.key, ip(VICTIM), "198.19.2.10")).status, "PERMISSION_DENIED");
  assert.equal((await attack("lookup", ATTACKER.key, ip(VICTIM), "198.19.2.10")).status, "PERMISSION_DENIED", "the victim's source address under its own name");
  // Its own name from its own address is served: the refusals above are about identity, not reachability.
  assert.equal((await attack("watch", ATTACKER.key, ip(ATTACKER))).status, "OK");
  const m1 = await metrics();
  assert.ok(grew(m0, m1, "egret_control_filter_binding_total", 'call="watch"', "outcome=") - grew(m0, m1, "egret_control_filter_binding_total", 'call="watch"', 'outcome="ok"') >= 2);
  assert.ok(grew(m0, m1, "egret_control_filter_binding_total", 'call="lookup"', "outcome=") - grew(m0, m1, "egret_control_filter_binding_total", 'call="lookup"', 'outcome="ok"') >= 2);
});

test("attack (c): a Report in the victim's name never reaches the audit log as the victim's", { skip, timeout: 60_000 }, async () => {
  const offset = statSync(session!.files.auditLog).size;
  const m0 = await metrics();
  const forged = await attack("report", VICTIM.key, ip(VICTIM), FORGED_IP);
  assert.deepEqual([forged.status, forged.accepted, forged.rejected], ["OK", 0, 1], JSON.stringify(forged));
  const m1 = await metrics();
  assert.ok(grew(m0, m1, "egret_control_report_events_rejected_total", "foreign_source") >= 1);
  await new Promise((r) => setTimeout(r, 500));
  const lines = readAudit(session!.files.auditLog, offset);
  assert.ok(!lines.some((e) => JSON.stringify(e.raw).includes("forged")), `no forged verdict in the audit log: ${JSON.stringify(lines.map((e) => e.raw))}`);
});

test("attack (d): hundreds of streams and parked Lookups are cut at the per-peer limits and counted; the victim is decided meanwhile", { skip, timeout: 120_000 }, async () => {
  const m0 = await metrics();
  const streams = await attack("flood-streams", ATTACKER.key, ip(ATTACKER), "200");
  const s = streams.outcomes as Record<string, number>;
  assert.ok((s.RESOURCE_EXHAUSTED ?? 0) >= 200 - 64 && (s.OK ?? 0) <= 64, JSON.stringify(s));
  const lookups = attack("flood-lookups", ATTACKER.key, ip(ATTACKER), "198.19.2.50", "300");
  // While the Lookups are parked, the victim resolves and connects: decided as always.
  await new Promise((r) => setTimeout(r, 300));
  await connect(VICTIM, { client: "curl", to: API }, { outcome: "connected", verdict: "allow", reason: "allowed" });
  const l = (await lookups).outcomes as Record<string, number>;
  assert.ok((l.RESOURCE_EXHAUSTED ?? 0) >= 300 - 256, JSON.stringify(l));
  const m1 = await metrics();
  assert.ok(grew(m0, m1, "egret_control_peer_limit_exceeded_total", 'limit="streams"') >= 200 - 64);
  assert.ok(grew(m0, m1, "egret_control_peer_limit_exceeded_total", 'limit="lookups"') >= 300 - 256);
});

test("afterwards: the forged resolution allows nothing; the victim's allowed connection stays allowed and a forged name is denied", { skip, timeout: 90_000 }, async () => {
  // The attacker's own sidecar: api.example.test was never resolved to FORGED_IP by anyone.
  await connect(ATTACKER, { client: "openssl", to: FORGED_IP, sni: API }, { outcome: "refused", verdict: "deny", reason: "unattributed" });
  await connect(VICTIM, { client: "openssl", to: FORGED_IP, sni: API }, { outcome: "refused", verdict: "deny", reason: "unattributed" });
  await connect(VICTIM, { client: "curl", to: API }, { outcome: "connected", verdict: "allow", reason: "allowed" });
  // A name the victim resolved itself, with the allowed name as a claim: sni-unverified.
  const resolved = await runResolve(env(VICTIM), { kind: "resolve", title: "", pod: VICTIM.key, name: "evil.example.net", with: "dig", expect: {} } as never);
  const evil = resolved.addresses[0]!;
  await connect(VICTIM, { client: "openssl", to: evil, sni: API }, { outcome: "refused", verdict: "deny", reason: "sni-unverified" });
});
