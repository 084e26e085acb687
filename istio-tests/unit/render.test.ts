// The install renderer (`egret manifests`) and the kustomize subset it is built on: stable output
// (golden file), agreement with the real kustomize where kubectl is installed, and the options.
import { strict as assert } from "node:assert";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { isDeepStrictEqual } from "node:util";
import { parseAllDocuments } from "yaml";
import { type KubeObject, KustomizeError, renderKustomization, resourceId } from "../../control/src/deploy/kustomize.js";
import { extensionConfigOf, findEnvoyFilter, pluginConfigOf, renderInstall, toYaml, WASM_SHA_PLACEHOLDER } from "../../control/src/deploy/render.js";
import { applyJsonPatch } from "../../control/src/deploy/json-patch.js";
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
  return "# Rendered manifests/ (kustomization), checked by istio-tests/unit/render.test.ts.\n" +
    "# Regenerate after an intended change: npm run build && EGRET_UPDATE_GOLDEN=1 node scripts/run-tests.mjs --grep istio-tests\n" +
    toYaml(view);
}

function withTempDir<T>(fn: (dir: string) => T): T {
  const dir = mkdtempSync(join(tmpdir(), "egret-kz-"));
  try { return fn(dir); } finally { rmSync(dir, { recursive: true, force: true }); }
}

function kubectlKustomize(dir: string): KubeObject[] | undefined {
  const r = spawnSync("kubectl", ["kustomize", dir], { encoding: "utf8" });
  if (r.error) return undefined; // no kubectl here
  assert.equal(r.status, 0, `kubectl kustomize ${dir}: ${r.stderr}`);
  return parseAllDocuments(r.stdout).map((d) => d.toJS() as KubeObject).filter(Boolean);
}

test("the rendered kustomization matches the golden file", () => {
  const text = goldenText(renderKustomization(MANIFESTS));
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

test("the kustomize subset renders exactly what kubectl kustomize renders (default and with every component)", (t) => {
  withTempDir((dir) => {
    writeFileSync(join(dir, "kustomization.yaml"), [
      "apiVersion: kustomize.config.k8s.io/v1beta1", "kind: Kustomization",
      `resources: ["${relative(dir, MANIFESTS)}"]`,
      `components: ["${relative(dir, join(MANIFESTS, "components", "workload-selector"))}", "${relative(dir, join(MANIFESTS, "components", "wasm-volume"))}"]`,
      "images: [{name: ghcr.io/egret-dev/egret, newName: registry.example/egret, newTag: \"9.9.9\"}]", "",
    ].join("\n"));
    const cases: [string, string][] = [["default", MANIFESTS], ["overlay with components", dir]];
    for (const [label, path] of cases) {
      const theirs = kubectlKustomize(path);
      if (!theirs) { t.skip("kubectl is not installed here: compared with the golden file only"); return; }
      const ours = renderKustomization(path);
      assert.deepEqual(ours.map(resourceId), theirs.map(resourceId), `${label}: same objects in the same order`);
      for (const [i, o] of ours.entries()) assert.ok(isDeepStrictEqual(o, theirs[i]), `${label}: ${resourceId(o)} differs`);
    }
  });
});

test("components: workload selector narrows the EnvoyFilter; wasm-volume loads the module from a file", () => {
  const objects = withTempDir((dir) => {
    writeFileSync(join(dir, "kustomization.yaml"), `kind: Kustomization\nresources: ["${relative(dir, MANIFESTS)}"]\n`);
    return renderKustomization(dir, [join(MANIFESTS, "components", "workload-selector"), join(MANIFESTS, "components", "wasm-volume")]);
  });
  const ef = findEnvoyFilter(objects);
  assert.deepEqual((ef.spec as { workloadSelector: unknown }).workloadSelector, { labels: { "egret.dev/enforce": "true" } });
  const code = (extensionConfigOf(ef).typed_config as { config: { vm_config: { code: unknown } } }).config.vm_config.code;
  assert.deepEqual(code, { local: { filename: "/var/local/lib/egret/egret.wasm" } });
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

test("the kustomize subset refuses what it does not implement, naming file and field", () => {
  withTempDir((dir) => {
    writeFileSync(join(dir, "kustomization.yaml"), "kind: Kustomization\nnamespace: other\nresources: []\n");
    assert.throws(() => renderKustomization(dir), (e: Error) => e instanceof KustomizeError && /kustomization\.yaml: field "namespace" is not supported/.test(e.message));
    writeFileSync(join(dir, "kustomization.yaml"), `kind: Kustomization\nresources: ["${relative(dir, MANIFESTS)}"]\npatches:\n- target: {kind: Deployment}\n  patch: |\n    spec:\n      replicas: 3\n`);
    assert.throws(() => renderKustomization(dir), /only RFC 6902 operation lists are supported/);
    writeFileSync(join(dir, "kustomization.yaml"), `kind: Kustomization\nresources: ["${relative(dir, MANIFESTS)}"]\npatches:\n- target: {kind: Deployment, name: nope}\n  patch: "[{op: remove, path: /spec}]"\n`);
    assert.throws(() => renderKustomization(dir), /matches no resource/);
    writeFileSync(join(dir, "kustomization.yaml"), `kind: Kustomization\nresources: ["${relative(dir, MANIFESTS)}"]\npatches:\n- target: {kind: Deployment}\n  patch: "[{op: replace, path: /spec/nothing/here, value: 1}]"\n`);
    assert.throws(() => renderKustomization(dir), /Deployment\/egret-system\/egret-control: operation 0 \(replace \/spec\/nothing\/here\)/);
    writeFileSync(join(dir, "kustomization.yaml"), "kind: Kustomization\nresources: [missing.yaml]\n");
    assert.throws(() => renderKustomization(dir), /resource "missing.yaml" does not exist/);
  });
});

test("JSON patch: RFC 6902 operations, escaping and array positions", () => {
  const doc = { a: { "b/c": 1, "d~e": [1, 2, 3] } };
  const out = applyJsonPatch(doc, [
    { op: "add", path: "/a/d~0e/-", value: 4 }, { op: "add", path: "/a/d~0e/0", value: 0 },
    { op: "remove", path: "/a/b~1c" }, { op: "copy", from: "/a/d~0e/1", path: "/a/x" },
    { op: "move", from: "/a/x", path: "/y" }, { op: "test", path: "/y", value: 1 }, { op: "replace", path: "/y", value: "z" },
  ]);
  assert.deepEqual(out, { a: { "d~e": [0, 1, 2, 3, 4] }, y: "z" });
  assert.deepEqual(doc, { a: { "b/c": 1, "d~e": [1, 2, 3] } }, "input untouched");
  assert.throws(() => applyJsonPatch(doc, [{ op: "add", path: "/a/d~0e/9", value: 1 }]), /out of range/);
  assert.throws(() => applyJsonPatch(doc, [{ op: "test", path: "/a/b~1c", value: 2 }]), /test failed/);
});

test("egret manifests prints the install with the built module's sha256, valid for the API server", async () => {
  const wasm = join(ROOT, "filter", "build", "egret.wasm");
  const sha = createHash("sha256").update(readFileSync(wasm)).digest("hex");
  const r = spawnSync(process.execPath, [join(ROOT, "bin", "egret.js"), "manifests", "--image", "registry.example/egret:1.2.3", "--selector", "egret.dev/enforce=true"], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  assert.ok(r.stdout.startsWith(`# egret manifests: module sha256 ${sha}\n`));
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
