// One renderer: manifests/ is generated from the typed install definitions
// (control/src/deploy/install/), and `egret manifests`, `kubectl kustomize manifests/` and the
// files in manifests/ agree object by object.
import { strict as assert } from "node:assert";
import { spawnSync } from "node:child_process";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { parseAllDocuments } from "yaml";
import { readYamlObjects, resourceId, type KubeObject } from "../../control/src/deploy/objects.js";
import { defaultInstallObjects, PHASES, WASM_SHA_PLACEHOLDER } from "../../control/src/deploy/render.js";
import { manifestTree } from "../../control/src/deploy/tree.js";

const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
const MANIFESTS = join(ROOT, "manifests");
const BIN = join(ROOT, "bin", "egret.js");
/** Hand-written folders: the CRDs (the policy API's source) and example policies. */
const HAND_WRITTEN = (path: string) => (path.startsWith("crds/") && path !== "crds/kustomization.yaml") || path.startsWith("examples/");

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((e) => {
    const p = join(dir, e);
    return statSync(p).isDirectory() ? filesUnder(p) : [p];
  });
}

function byId(objects: KubeObject[]): Map<string, KubeObject> {
  const m = new Map<string, KubeObject>();
  for (const o of objects) {
    assert.ok(!m.has(resourceId(o)), `${resourceId(o)} appears once`);
    m.set(resourceId(o), o);
  }
  return m;
}

function assertSameObjects(actual: KubeObject[], expected: KubeObject[], what: string): void {
  const a = byId(actual);
  const e = byId(expected);
  assert.deepEqual([...a.keys()].sort(), [...e.keys()].sort(), `${what}: the same objects`);
  for (const [id, o] of e) assert.deepEqual(a.get(id), o, `${what}: ${id}`);
}

function parseYamlStream(text: string): KubeObject[] {
  return parseAllDocuments(text).map((d) => d.toJS() as KubeObject).filter(Boolean);
}

/** The objects manifests/kustomization.yaml lists, read file by file (what any kustomize reads). */
function listedObjects(kustomizationDir: string): KubeObject[] {
  const k = parseAllDocuments(readFileSync(join(kustomizationDir, "kustomization.yaml"), "utf8"))[0]!.toJS() as { resources: string[] };
  return k.resources.flatMap((r) => readYamlObjects(join(kustomizationDir, r)));
}

test("manifests/ is exactly what the install definitions generate (npm run manifests)", () => {
  const tree = manifestTree(MANIFESTS);
  for (const [path, text] of tree) {
    assert.equal(readFileSync(join(MANIFESTS, path), "utf8"), text, `manifests/${path} differs from the definitions: edit control/src/deploy/install/ and run npm run manifests`);
  }
  const stray = filesUnder(MANIFESTS).map((f) => relative(MANIFESTS, f)).filter((p) => /\.ya?ml$/.test(p) && !tree.has(p) && !HAND_WRITTEN(p));
  assert.deepEqual(stray, [], "every YAML file outside crds/ and examples/ is generated");
});

test("the files manifests/kustomization.yaml lists are the default install, object by object", () => {
  assertSameObjects(listedObjects(MANIFESTS), defaultInstallObjects(MANIFESTS), "manifests/ vs the definitions");
  const perPhase = PHASES.flatMap((p) => listedObjects(join(MANIFESTS, p)));
  assertSameObjects(perPhase, defaultInstallObjects(MANIFESTS), "the phase folders together");
});

test("egret manifests renders the same objects as manifests/ (the module digest aside)", () => {
  const r = spawnSync(process.execPath, [BIN, "manifests"], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  const sha = /^# egret manifests: module sha256 ([0-9a-f]{64}); phases crds, control, mesh$/m.exec(r.stdout)?.[1];
  assert.ok(sha, "the header names the digest");
  const rendered = parseYamlStream(r.stdout.split(sha).join(WASM_SHA_PLACEHOLDER));
  assertSameObjects(rendered, defaultInstallObjects(MANIFESTS), "egret manifests vs manifests/");
  for (const phase of PHASES) {
    const one = spawnSync(process.execPath, [BIN, "manifests", "--phase", phase], { encoding: "utf8" });
    assert.equal(one.status, 0, one.stderr);
    assertSameObjects(parseYamlStream(one.stdout.split(sha).join(WASM_SHA_PLACEHOLDER)), listedObjects(join(MANIFESTS, phase)), `egret manifests --phase ${phase} vs manifests/${phase}/`);
  }
});

test("kubectl kustomize manifests/ renders the same objects", (t) => {
  const probe = spawnSync("kubectl", ["version", "--client"], { encoding: "utf8" });
  if (probe.error) {
    // CI installs it (scripts/apt-packages.txt: kubernetes-client); a developer machine may not have it.
    if (process.env.CI) assert.fail("kubectl is missing: scripts/apt-packages.txt installs kubernetes-client");
    t.skip("kubectl is not installed (apt-get install kubernetes-client)");
    return;
  }
  for (const dir of [MANIFESTS, ...PHASES.map((p) => join(MANIFESTS, p))]) {
    const r = spawnSync("kubectl", ["kustomize", dir], { encoding: "utf8" });
    assert.equal(r.status, 0, `kubectl kustomize ${relative(ROOT, dir)}: ${r.stderr}`);
    assertSameObjects(parseYamlStream(r.stdout), listedObjects(dir), `kubectl kustomize ${relative(ROOT, dir)}`);
  }
});
