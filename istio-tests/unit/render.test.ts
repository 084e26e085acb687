// The install renderer (`egret manifests`): stable output (golden file), phases and options.
// Agreement with manifests/ and `kubectl kustomize`: manifests-agree.test.ts.
import { strict as assert } from "node:assert";
import { spawnSync } from "node:child_process";
import { readFileSync, writeFileSync, existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { parseAllDocuments } from "yaml";
import { resourceId, type KubeObject } from "../../control/src/deploy/objects.js";
import {
  defaultInstallObjects, extensionConfigOf, findEnvoyFilter, pluginConfigOf, renderInstall, toYaml, WASM_SHA_PLACEHOLDER, type Phase,
} from "../../control/src/deploy/render.js";
import { checkMessage } from "../../control/src/deploy/envoy-api.js";
import { createHash } from "node:crypto";

const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
const MANIFESTS = join(ROOT, "manifests");
const GOLDEN = join(ROOT, "istio-tests", "golden", "install.yaml");
const SHA = "a".repeat(64);

/** The golden view: CRD bodies belong to the policy API and are reduced to their names. */
function goldenText(objects: KubeObject[]): string {
  const view = objects.map((o) => o.kind === "CustomResourceDefinition"
    ? { apiVersion: o.apiVersion, kind: o.kind, metadata: { name: o.metadata.name }, spec: "(see manifests/crds/)" } as unknown as KubeObject
    : o);
  return "# Rendered manifests/ (default install), checked by istio-tests/unit/render.test.ts.\n" +
    "# Regenerate after an intended change: npm run build && EGRET_UPDATE_GOLDEN=1 node scripts/run-tests.mjs --grep istio-tests\n" +
    toYaml(view);
}

test("the rendered install matches the golden file", () => {
  const text = goldenText(defaultInstallObjects(MANIFESTS));
  if (process.env.EGRET_UPDATE_GOLDEN === "1") {
    mkdirSync(join(ROOT, "istio-tests", "golden"), { recursive: true });
    writeFileSync(GOLDEN, text);
  }
  assert.ok(existsSync(GOLDEN), "istio-tests/golden/install.yaml exists (create it with EGRET_UPDATE_GOLDEN=1)");
  assert.equal(text, readFileSync(GOLDEN, "utf8"), "manifests/ renders differently from the golden file: if intended, regenerate it with EGRET_UPDATE_GOLDEN=1");
});

test("rendering twice gives byte-identical output", () => {
  const a = toYaml(renderInstall({ manifestsDir: MANIFESTS, wasmSha256: SHA }));
  const b = toYaml(renderInstall({ manifestsDir: MANIFESTS, wasmSha256: SHA }));
  assert.equal(a, b);
});

test("selector narrows the EnvoyFilter; volume delivery loads the module from a file", () => {
  const objects = renderInstall({ manifestsDir: MANIFESTS, wasmSha256: SHA, workloadSelector: { "egret.dev/enforce": "true" }, delivery: "volume" });
  const ef = findEnvoyFilter(objects);
  assert.deepEqual((ef.spec as { workloadSelector: unknown }).workloadSelector, { labels: { "egret.dev/enforce": "true" } });
  const code = (extensionConfigOf(ef).typed_config as { config: { vm_config: { code: unknown } } }).config.vm_config.code;
  assert.deepEqual(code, { local: { filename: "/var/local/lib/egret/egret.wasm" } });
});

test("phases: CRDs, then the control plane, then the EnvoyFilter alone (it names the module control serves)", () => {
  const phase = (p: Phase) => renderInstall({ manifestsDir: MANIFESTS, wasmSha256: SHA, phases: [p] });
  assert.deepEqual([...new Set(phase("crds").map((o) => o.kind))], ["CustomResourceDefinition"]);
  const control = phase("control");
  assert.ok(control.some((o) => o.kind === "Deployment") && control.some((o) => o.kind === "DaemonSet"));
  assert.ok(!control.some((o) => o.kind === "EnvoyFilter" || o.kind === "CustomResourceDefinition"));
  assert.deepEqual(phase("mesh").map((o) => o.kind), ["EnvoyFilter"]);
  const all = renderInstall({ manifestsDir: MANIFESTS, wasmSha256: SHA });
  assert.equal(all.length, phase("crds").length + control.length + 1, "the phases partition the install");
  assert.equal(all.at(-1)!.kind, "EnvoyFilter", "the EnvoyFilter comes last");
});

test("recovery push: raising --push-generation changes only the module URL of the EnvoyFilter's spec", () => {
  const uri = (objects: KubeObject[]) => (extensionConfigOf(findEnvoyFilter(objects)).typed_config as { config: { vm_config: { code: { remote: { http_uri: { uri: string } } } } } }).config.vm_config.code.remote.http_uri.uri;
  const before = renderInstall({ manifestsDir: MANIFESTS, wasmSha256: SHA, phases: ["mesh"] });
  const after = renderInstall({ manifestsDir: MANIFESTS, wasmSha256: SHA, phases: ["mesh"], pushGeneration: 7 });
  // istiod pushes an EnvoyFilter update only when its spec changed (or an istio.io label or
  // annotation key is present: pilot/pkg/bootstrap/config_compare.go needsPush, 1.20–1.25; HEAD
  // model.NeedsPush); a metadata-only change such as an egret.dev annotation is dropped.
  assert.notDeepEqual(after[0]!.spec, before[0]!.spec, "a spec change");
  assert.equal(uri(after), `${uri(before)}&push=7`);
  assert.deepEqual(after[0]!.metadata, before[0]!.metadata);
  const strip = (objects: KubeObject[]) => JSON.stringify(objects).split("&push=7").join("");
  assert.equal(strip(after), JSON.stringify(before), "nothing else changes");
});

test("renderInstall fills the sha256 everywhere, sets image, selector, root namespace and plugin overrides", () => {
  const objects = renderInstall({
    manifestsDir: MANIFESTS, wasmSha256: SHA, image: "registry.example:5000/sec/egret@sha256:" + "b".repeat(64),
    workloadSelector: { team: "payments" }, istioRootNamespace: "mesh-root", pluginConfig: { lookupTimeoutMs: 500 },
  });
  const text = toYaml(objects);
  assert.ok(!text.includes(WASM_SHA_PLACEHOLDER), "no placeholder left");
  const ef = findEnvoyFilter(objects);
  assert.equal(ef.metadata.namespace, "mesh-root");
  assert.deepEqual((ef.spec as { workloadSelector: unknown }).workloadSelector, { labels: { team: "payments" } });
  const remote = (extensionConfigOf(ef).typed_config as { config: { vm_config: { code: { remote: { sha256: string; http_uri: { uri: string } } } } } }).config.vm_config.code.remote;
  assert.equal(remote.sha256, SHA);
  assert.ok(remote.http_uri.uri.endsWith(`?sha256=${SHA}`));
  const cfg = pluginConfigOf(ef);
  assert.equal(cfg.lookupTimeoutMs, 500);
  assert.equal(cfg.failureMode, "closed", "other keys kept");
  const images = objects.filter((o) => o.kind === "Deployment" || o.kind === "DaemonSet")
    .map((o) => (o.spec as { template: { spec: { containers: { image: string }[] } } }).template.spec.containers[0].image);
  assert.deepEqual(images, Array(2).fill("registry.example:5000/sec/egret@sha256:" + "b".repeat(64)));
  assert.throws(() => renderInstall({ manifestsDir: MANIFESTS, wasmSha256: "abc" }), /64 lowercase hex/);
});

test("renderInstall replaces the agent's trusted resolvers and adds control's cluster CIDRs", () => {
  const args = (objects: KubeObject[], kind: string) => (objects.find((o) => o.kind === kind)!.spec as { template: { spec: { containers: { args: string[] }[] } } }).template.spec.containers[0].args;
  const plain = renderInstall({ manifestsDir: MANIFESTS, wasmSha256: SHA });
  assert.deepEqual(args(plain, "DaemonSet").filter((a) => a.startsWith("--trusted-resolver=")), ["--trusted-resolver=10.96.0.10"]);
  assert.deepEqual(args(plain, "Deployment").filter((a) => a.startsWith("--cluster-cidr=")), []);
  const set = renderInstall({ manifestsDir: MANIFESTS, wasmSha256: SHA, trustedResolvers: ["10.0.0.10", "169.254.20.10"], clusterCidrs: ["10.244.0.0/16"], podCidrs: ["10.244.0.0/16"] });
  assert.deepEqual(args(set, "DaemonSet").filter((a) => a.startsWith("--pod-cidr=")), ["--pod-cidr=10.244.0.0/16"]);
  assert.deepEqual(args(set, "DaemonSet").filter((a) => a.startsWith("--trusted-resolver=")), ["--trusted-resolver=10.0.0.10", "--trusted-resolver=169.254.20.10"]);
  assert.deepEqual(args(set, "Deployment").filter((a) => a.startsWith("--cluster-cidr=")), ["--cluster-cidr=10.244.0.0/16"]);
  assert.equal(args(set, "DaemonSet")[0], "agent", "the subcommand stays first");
});

test("inline delivery carries the exact module bytes in the EnvoyFilter, valid for Envoy's API", () => {
  const wasm = readFileSync(join(ROOT, "filter", "build", "egret.wasm"));
  const sha = createHash("sha256").update(wasm).digest("hex");
  const objects = renderInstall({ manifestsDir: MANIFESTS, wasmSha256: sha, wasm, delivery: "inline" });
  const ext = extensionConfigOf(findEnvoyFilter(objects));
  assert.deepEqual(checkMessage("value", "envoy.config.core.v3.TypedExtensionConfig", ext), []);
  const code = (ext.typed_config as { config: { vm_config: { code: { local: { inline_bytes: string } } } } }).config.vm_config.code;
  assert.deepEqual(Object.keys(code), ["local"]);
  assert.ok(Buffer.from(code.local.inline_bytes, "base64").equals(wasm));
  assert.throws(() => renderInstall({ manifestsDir: MANIFESTS, wasmSha256: SHA, wasm, delivery: "inline" }), /sha256 differs/);
});

test("egret manifests prints the install with the built module's sha256, valid for the API server", async () => {
  const wasm = join(ROOT, "filter", "build", "egret.wasm");
  const sha = createHash("sha256").update(readFileSync(wasm)).digest("hex");
  const r = spawnSync(process.execPath, [join(ROOT, "bin", "egret.js"), "manifests", "--image", "registry.example/egret:1.2.3", "--selector", "egret.dev/enforce=true"], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  assert.ok(r.stdout.startsWith(`# egret manifests: module sha256 ${sha}; phases crds, control, mesh\n`));
  const objects = parseAllDocuments(r.stdout).map((d) => d.toJS() as KubeObject).filter(Boolean);
  const { validateObject } = await import("../lib/k8s-schemas.js");
  for (const o of objects) assert.deepEqual(await validateObject(o), [], resourceId(o));
  const remote = (extensionConfigOf(findEnvoyFilter(objects)).typed_config as { config: { vm_config: { code: { remote: { sha256: string } } } } }).config.vm_config.code.remote;
  assert.equal(remote.sha256, sha);
  const bad = spawnSync(process.execPath, [join(ROOT, "bin", "egret.js"), "manifests", "--selector", "no-equals"], { encoding: "utf8" });
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /--selector must be KEY=VALUE/);
  // A plugin configuration the filter refuses would close every sidecar's connections: refused here.
  const refused = spawnSync(process.execPath, [join(ROOT, "bin", "egret.js"), "manifests", "--set", "lookupTimeoutMS=5"], { encoding: "utf8" });
  assert.equal(refused.status, 2);
  assert.equal(refused.stdout, "", "nothing rendered");
  assert.match(refused.stderr, /the filter refuses this plugin configuration[\s\S]*unknown field "lookupTimeoutMS"/);
});
