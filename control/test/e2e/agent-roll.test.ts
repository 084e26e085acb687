// A rolling update of the node agent while a pod resolves and connects continuously: the new agent
// starts and captures first (maxSurge), the old one gets SIGTERM and drains. Every name the pod
// resolved reaches control (0 observations lost) and every connection is allowed (0 false denies).
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { MeshCluster } from "../../src/mesh/cluster.js";
import { EgretSession } from "../../src/mesh/session.js";
import { SIDECAR_GID, meshUnavailableReason } from "../../src/mesh/netns.js";
import { missingServerPrograms, webCaPath } from "../../src/mesh/services/index.js";
import { CONTROL_GRPC_PORT, missingComponents, repoAt } from "../../src/mesh/components.js";
import { readAudit } from "../../src/mesh/audit.js";
import { run } from "../../src/mesh/exec.js";
import { sleep } from "../../src/mesh/process.js";
import type { World } from "../../src/mesh/world.js";

const PREFIX = "egG";
const root = join(fileURLToPath(new URL(".", import.meta.url)), "../../../..");
const repo = repoAt(root);
const WORLD: World = {
  resolver: "198.19.0.53",
  clusterCidrs: ["198.18.0.0/16"],
  services: [{ name: "web", kind: "web", addresses: ["198.19.2.20"], port: 443 }],
  records: [{ name: "*.googleapis.test", ttl: 300, type: "A", value: "198.19.2.20" }],
};
const POD = { name: "app", namespace: "shop", labels: { app: "app" }, key: "shop/app" };
const POLICY = {
  apiVersion: "egret.dev/v1alpha1", kind: "EgressPolicy", metadata: { name: "apis", namespace: "shop" },
  spec: { podSelector: { matchLabels: { app: "app" } }, rules: [{ name: "apis", action: "Allow", to: { domains: ["*.googleapis.test"] }, ports: [{ port: 443 }], protocols: ["tls"] }] },
};
const CONNECTIONS = 24;

function chainMissing(): string | undefined {
  const missing = missingComponents(repo);
  if (missing.length) return `missing egret components: ${missing.join("; ")}`;
  if (!existsSync(join(root, "dist/native/packet_ring.node"))) return "the agent's capture addon dist/native/packet_ring.node is not built (npm run build:native; needs g++)";
  const programs = missingServerPrograms(["dns", "web"]);
  return programs.length ? `missing programs: ${programs.join(", ")} (scripts/setup as root)` : undefined;
}
const skip = (await meshUnavailableReason(PREFIX)) ?? chainMissing();
if (skip) console.log(`# agent-roll: skipped — ${skip}`);

let cluster: MeshCluster | undefined;
let session: EgretSession | undefined;
const dir = mkdtempSync(join(tmpdir(), "egret-agent-roll-"));
after(async () => {
  await session?.stop();
  await cluster?.destroy();
  rmSync(dir, { recursive: true, force: true });
});

test("rolling the agent twice while the pod resolves and connects: 0 observations lost, 0 false denies", { skip, timeout: 240_000 }, async () => {
  cluster = await MeshCluster.start({ prefix: PREFIX, world: WORLD });
  session = await EgretSession.start(cluster, repo, { pods: [POD], namespaces: { shop: { labels: {} } }, policies: [POLICY] }, dir);
  await session.awaitSidecarsConnected(30_000);
  const pod = session.pod(POD.key);
  const ca = webCaPath({ net: cluster.net, world: WORLD, workDir: cluster.workDir });
  const probe = join(root, "dist/control/src/mesh/probes/app-probe.js");
  // Each connection resolves a name never resolved before, so each needs its own fresh observation.
  const loop = `for i in $(seq 1 ${CONNECTIONS}); do "${process.execPath}" "${probe}" --to "s$i.googleapis.test" --port 443 --tls --ca "${ca}"; done`;
  const apps = run("ip", ["netns", "exec", pod.netns, "bash", "-c", loop], { timeoutMs: 200_000 });
  await sleep(1_500);
  await session.restartAgent();
  await sleep(1_000);
  await session.restartAgent();
  const r = await apps;
  const results = r.stdout.trim().split("\n").map((l) => JSON.parse(l) as { ok: boolean; status?: string; error?: string });
  assert.equal(results.length, CONNECTIONS, r.stderr);
  assert.deepEqual(results.filter((x) => !x.ok), [], "every connection got its HTTP answer");

  // Every connection was allowed by the rule (none waited out the hold into a deny).
  const deadline = Date.now() + 20_000;
  let verdicts = readAudit(session.files.auditLog).filter((e) => e.sourceIp === pod.ip && e.destinationPort === 443);
  while (verdicts.length < CONNECTIONS && Date.now() < deadline) {
    await sleep(200);
    verdicts = readAudit(session.files.auditLog).filter((e) => e.sourceIp === pod.ip && e.destinationPort === 443);
  }
  assert.equal(verdicts.length, CONNECTIONS, "one verdict per connection");
  assert.deepEqual(verdicts.filter((v) => v.verdict !== "allow").map((v) => `${v.verdict} ${v.reason}`), [], "0 false denies");

  // Control holds every name the pod resolved for the address (0 observations lost).
  const lookupProbe = join(root, "dist/control/src/mesh/probes/lookup-probe.js");
  // As the pod's sidecar asks it: from the pod's address (control binds filters by address), with
  // the sidecar's gid so the pod's REDIRECT lets it through, as Istio's does for Envoy.
  const l = await run("ip", ["netns", "exec", pod.netns, "setpriv", `--regid=${SIDECAR_GID}`, "--clear-groups", process.execPath, lookupProbe, `${cluster.net.gateway}:${CONTROL_GRPC_PORT}`, POD.key, pod.ip, "198.19.2.20", "0"], { timeoutMs: 20_000 });
  const names = new Set((JSON.parse(l.stdout.trim()) as { names: { name: string }[] }).names.map((n) => n.name));
  const lost = Array.from({ length: CONNECTIONS }, (_, i) => `s${i + 1}.googleapis.test`).filter((n) => !names.has(n));
  assert.deepEqual(lost, [], "observations lost across the rolls");
});
