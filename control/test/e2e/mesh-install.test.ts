// Install and upgrade under live traffic, with module delivery as in a real mesh (issue #15): the
// sidecars start before the EnvoyFilter (no filter), control serves the module, and each "istiod
// push" makes the sidecar download it the way istio-agent does (HTTP, retries only on 5xx, sha256
// checked; control/src/sidecar/ecds.ts). One pod runs Istio 1.25's agent (a failed download puts
// the deny-all RBAC fallback in place), one Istio 1.24's (a failed download is NACKed).
// The documented order — control Ready before the EnvoyFilter names its module; on upgrade the new
// control serves the new module beside the previous one before the mesh phase — loses no allowed
// connection through install, upgrade and a control crash, and leaves no sidecar on the fallback.
// Breaking the order (naming a module control does not serve) shows what each version does. Last,
// a policy change closes a connection that is already open (reason revoked in the audit log).
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { stringify } from "yaml";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { MeshCluster } from "../../src/mesh/cluster.js";
import { EgretSession } from "../../src/mesh/session.js";
import { meshUnavailableReason } from "../../src/mesh/netns.js";
import { missingServerPrograms, webCaPath } from "../../src/mesh/services/index.js";
import { missingComponents, repoAt } from "../../src/mesh/components.js";
import { readAudit } from "../../src/mesh/audit.js";
import { run } from "../../src/mesh/exec.js";
import { sleep } from "../../src/mesh/process.js";
import type { World } from "../../src/mesh/world.js";

const PREFIX = "egG";
const root = join(fileURLToPath(new URL(".", import.meta.url)), "../../../..");
const repo = repoAt(root);
const RELEASE_1 = join(root, "filter/build/egret.wasm");
// The "next release": another build of the same filter (different bytes, same behaviour).
const RELEASE_2 = join(root, "filter/build/egret.debug.wasm");
const WORLD: World = {
  resolver: "198.19.0.53",
  clusterCidrs: ["198.18.0.0/16"],
  services: [{ name: "web", kind: "web", addresses: ["198.19.2.20"], port: 443 }],
  records: [{ name: "*.googleapis.test", ttl: 300, type: "A", value: "198.19.2.20" }],
};
const NEW = { name: "app", namespace: "shop", labels: { app: "app" }, key: "shop/app" };
const OLD = { name: "legacy", namespace: "shop", labels: { app: "app" }, key: "shop/legacy" };
const POLICY = {
  apiVersion: "egret.dev/v1alpha1", kind: "EgressPolicy", metadata: { name: "apis", namespace: "shop" },
  spec: { podSelector: { matchLabels: { app: "app" } }, rules: [{ name: "apis", action: "Allow", to: { domains: ["*.googleapis.test"] }, ports: [{ port: 443 }], protocols: ["tls"] }] },
};

const sha256 = (file: string) => createHash("sha256").update(readFileSync(file)).digest("hex");

function chainMissing(): string | undefined {
  const missing = missingComponents(repo);
  if (!existsSync(RELEASE_2)) missing.push("filter/build/egret.debug.wasm is not built (npm run build)");
  if (missing.length) return `missing egret components: ${missing.join("; ")}`;
  if (!existsSync(join(root, "dist/native/packet_ring.node"))) return "the agent's capture addon dist/native/packet_ring.node is not built (npm run build:native; needs g++)";
  const programs = missingServerPrograms(["dns", "web"]);
  return programs.length ? `missing programs: ${programs.join(", ")} (scripts/setup as root)` : undefined;
}
const skip = (await meshUnavailableReason(PREFIX)) ?? chainMissing();
if (skip) console.log(`# mesh-install: skipped — ${skip}`);

let cluster: MeshCluster | undefined;
let session: EgretSession | undefined;
const dir = mkdtempSync(join(tmpdir(), "egret-mesh-install-"));
after(async () => {
  await session?.stop();
  await cluster?.destroy();
  rmSync(dir, { recursive: true, force: true });
});

interface Attempt { n: number; at: number; ok: boolean; status?: string; error?: string }

/** Connections made continuously from each pod until stop() (traffic-probe). */
function traffic(pods: string[], label: string): { stop: () => Promise<Record<string, Attempt[]>> } {
  const s = session!;
  const ca = webCaPath({ net: cluster!.net, world: WORLD, workDir: cluster!.workDir });
  const probe = join(root, "dist/control/src/mesh/probes/traffic-probe.js");
  const stopFile = join(dir, `stop-${label}`);
  const runs = pods.map((key, i) => run("ip", ["netns", "exec", s.pod(key).netns, process.execPath, probe, "--to", `t${i}-${label}.googleapis.test`, "--port", "443", "--tls", "--ca", ca, "--stop-file", stopFile, "--pause-ms", "100"], { timeoutMs: 600_000 }));
  return {
    async stop() {
      writeFileSync(stopFile, "");
      const out: Record<string, Attempt[]> = {};
      for (const [i, r] of (await Promise.all(runs)).entries()) out[pods[i]!] = r.stdout.trim().split("\n").filter(Boolean).map((l) => JSON.parse(l) as Attempt);
      return out;
    },
  };
}

/** One connection from the pod (its outcome only). */
async function once(key: string, name: string): Promise<Attempt> {
  const ca = webCaPath({ net: cluster!.net, world: WORLD, workDir: cluster!.workDir });
  const probe = join(root, "dist/control/src/mesh/probes/app-probe.js");
  const r = await run("ip", ["netns", "exec", session!.pod(key).netns, process.execPath, probe, "--to", name, "--port", "443", "--tls", "--ca", ca], { timeoutMs: 30_000 });
  return { n: 1, at: Date.now(), ...(JSON.parse(r.stdout.trim()) as { ok: boolean; error?: string }) };
}

function failures(byPod: Record<string, Attempt[]>): string[] {
  return Object.entries(byPod).flatMap(([pod, list]) => list.filter((a) => !a.ok).map((a) => `${pod} #${a.n}: ${a.error}`));
}

test("install, upgrade and a control crash under traffic: no allowed connection fails, no sidecar ends on the fallback; a module control lacks → deny-all on 1.25, NACK on 1.24", { skip, timeout: 480_000 }, async () => {
  const [sha1, sha2] = [sha256(RELEASE_1), sha256(RELEASE_2)];
  assert.notEqual(sha1, sha2);
  cluster = await MeshCluster.start({ prefix: PREFIX, world: WORLD });
  // Phases crds + control: control (serving release 1) Ready; sidecars running with no filter yet.
  session = await EgretSession.start(cluster, repo, {
    pods: [NEW, OLD], namespaces: { shop: { labels: {} } }, policies: [POLICY],
    ecds: { modules: { current: RELEASE_1 }, istio: { [NEW.key]: "1.25", [OLD.key]: "1.24" } },
  }, dir);
  for (const key of [NEW.key, OLD.key]) assert.equal((await session.moduleState(key)).state, "passthrough");

  const load = traffic([NEW.key, OLD.key], "live");
  await sleep(1_000);
  // Phase mesh: the EnvoyFilter names release 1; every sidecar downloads it.
  for (const key of [NEW.key, OLD.key]) assert.deepEqual(pick(await session.pushModule(key, sha1)), { result: "applied", state: "module", sha256: sha1 });
  await session.awaitSidecarsConnected(30_000);
  await sleep(2_000);
  // Upgrade, control phase: the new control serves release 2 and keeps release 1 beside it.
  await session.upgradeControl({ current: RELEASE_2, previous: RELEASE_1 });
  await sleep(1_000);
  // Upgrade, mesh phase.
  for (const key of [NEW.key, OLD.key]) assert.deepEqual(pick(await session.pushModule(key, sha2)), { result: "applied", state: "module", sha256: sha2 });
  await session.awaitSidecarsConnected(30_000);
  await sleep(2_000);
  // Control crashes and comes back (SIGKILL, restart) while traffic flows.
  await session.restartControl();
  await sleep(2_000);
  const live = await load.stop();
  for (const key of [NEW.key, OLD.key]) assert.ok(live[key]!.length >= 20, `${key}: continuous traffic (${live[key]!.length} connections)`);
  assert.deepEqual(failures(live), [], "no allowed connection failed during install, upgrade and the control restart");
  console.log(`# mesh-install: ${Object.entries(live).map(([k, v]) => `${k} ${v.length} connections`).join(", ")}, 0 failed`);
  for (const key of [NEW.key, OLD.key]) {
    const st = await session.moduleState(key);
    assert.deepEqual([st.state, st.sha256, st.fallbacks, st.rbacDenied], ["module", sha2, 0, 0], `${key}: on release 2, never on the fallback`);
  }
  // Enforced from the mesh phase on: the audit log has the pods' connections, all allowed.
  const audit = readAudit(session.files.auditLog).filter((e) => e.destinationPort === 443);
  assert.ok(audit.length > 0, "verdicts reached control");
  assert.deepEqual(audit.filter((e) => e.verdict !== "allow").map((e) => `${e.verdict} ${e.reason}`), []);

  // The order broken: the EnvoyFilter names a module no control replica serves (control answers
  // 503 with Retry-After; istio-agent retries 5 times, then gives up).
  const unknown = createHash("sha256").update("a release control was never given").digest("hex");
  const [newer, older] = await Promise.all([session.pushModule(NEW.key, unknown), session.pushModule(OLD.key, unknown)]);
  assert.equal(newer.result, "deny-all", "Istio 1.25: the deny-all RBAC fallback replaces the filter");
  assert.match(newer.lastError ?? "", /failed after 5 attempts, last error: wasm module download request failed: status code 503/);
  assert.equal(older.result, "nack", "Istio 1.24: NACK, the running filter stays");
  const [denied, kept] = [await once(NEW.key, "fallback.googleapis.test"), await once(OLD.key, "nack.googleapis.test")];
  assert.equal(denied.ok, false, "the 1.25 sidecar on the fallback closes even allowed connections");
  assert.equal(kept.ok, true, "the 1.24 sidecar keeps enforcing with release 2");
  assert.ok((await session.moduleState(NEW.key)).rbacDenied >= 1, "counted as wasm-default-deny rbac denied");
  // Recovering: a push naming a module control serves.
  assert.deepEqual(pick(await session.pushModule(NEW.key, sha2)), { result: "applied", state: "module", sha256: sha2 });
  assert.equal((await once(NEW.key, "recovered.googleapis.test")).ok, true);

  // A policy change reaches a connection that is already open: the app holds a TLS connection
  // (handshake done, no request yet); the operator drops *.googleapis.test from the policy.
  const ca = webCaPath({ net: cluster.net, world: WORLD, workDir: cluster.workDir });
  const holder = run("ip", ["netns", "exec", session.pod(NEW.key).netns, process.execPath, "-e", HOLD_OPEN, "held.googleapis.test", ca], { timeoutMs: 60_000 });
  await eventually(() => readAudit(session!.files.auditLog).some((e) => e.sni === "held.googleapis.test" && e.verdict === "allow"), "the held connection allowed");
  writeFileSync(join(session.files.policyDir, "policies.yaml"), stringify({ ...POLICY, spec: { ...POLICY.spec, rules: [{ ...POLICY.spec.rules[0], to: { domains: ["*.elsewhere.test"] } }] } }));
  const held = JSON.parse((await holder).stdout.trim()) as { secure: boolean; closedAfterMs?: number; error?: string };
  assert.equal(held.secure, true, JSON.stringify(held));
  assert.ok(held.closedAfterMs !== undefined, `the open connection was closed: ${JSON.stringify(held)}`);
  const revoked = await eventually(() => readAudit(session!.files.auditLog).find((e) => e.sni === "held.googleapis.test" && e.reason === "revoked"), "the revoked audit line");
  assert.deepEqual([revoked.verdict, revoked.raw.detail], ["deny", "policy changed: default-deny"]);
  assert.ok(revoked.names?.includes("held.googleapis.test"), "reported with the names it was judged on (every name the pod resolved to that shared address)");
});

/** Polls until `check` returns something (real time; the e2e tier has no manual clock). */
async function eventually<T>(check: () => T | undefined | false, what: string, timeoutMs = 30_000): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = check();
    if (v) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(200);
  }
}

/** An app holding one TLS connection open after the handshake; prints {secure, closedAfterMs} when the peer closes it (or after 40 s). */
const HOLD_OPEN = `
const tls = require("node:tls"), dns = require("node:dns"), fs = require("node:fs");
const [name, ca] = process.argv.slice(1);
dns.lookup(name, { family: 4 }, (err, address) => {
  if (err) { console.log(JSON.stringify({ secure: false, error: String(err) })); return; }
  let secureAt = 0;
  const s = tls.connect({ host: address, port: 443, servername: name, ca: fs.readFileSync(ca) }, () => { secureAt = Date.now(); });
  const done = (extra) => { console.log(JSON.stringify({ secure: secureAt > 0, ...extra })); process.exit(0); };
  s.on("close", () => done({ closedAfterMs: Date.now() - secureAt }));
  s.on("error", (e) => { if (!secureAt) done({ error: String(e) }); });
  setTimeout(() => done({ error: "still open after 40 s" }), 40000);
});`;

function pick(r: { result: string; state: string; sha256?: string }): { result: string; state: string; sha256?: string } {
  return { result: r.result, state: r.state, sha256: r.sha256 };
}
