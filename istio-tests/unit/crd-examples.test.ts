// Example policies (manifests/examples/) against the CRDs' openAPIV3Schema with ajv, the way
// `kubectl apply` with strict field validation sees them: unknown fields are errors.
import { strict as assert } from "node:assert";
import { readdirSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import AjvModule from "ajv";
import { type KubeObject, readYamlObjects } from "../../control/src/deploy/objects.js";
import { loadScenarioDir } from "../../control/src/mesh/scenario.js";

const Ajv = AjvModule as unknown as typeof AjvModule.default;
const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
const MANIFESTS = join(ROOT, "manifests");

type Schema = Record<string, unknown>;
interface Crd { spec: { group: string; names: { kind: string }; scope: string; versions: { name: string; served: boolean; schema: { openAPIV3Schema: Schema } }[] } }

/** Structural schema → JSON schema that rejects what the API server would prune (unknown fields). */
function strict(schema: Schema): Schema {
  const out: Schema = {};
  for (const [k, v] of Object.entries(schema)) {
    if (k === "properties") out[k] = Object.fromEntries(Object.entries(v as Record<string, Schema>).map(([p, s]) => [p, strict(s)]));
    else if (k === "items") out[k] = strict(v as Schema);
    else if (k === "additionalProperties" && typeof v === "object") out[k] = strict(v as Schema);
    else if (!k.startsWith("x-kubernetes-")) out[k] = v;
  }
  const preserve = schema["x-kubernetes-preserve-unknown-fields"] === true;
  if (schema.type === "object" && schema.properties && schema.additionalProperties === undefined && !preserve) out.additionalProperties = false;
  return out;
}

function validators(): Map<string, (o: unknown) => string[]> {
  const ajv = new Ajv({ allErrors: true, strict: false });
  const map = new Map<string, (o: unknown) => string[]>();
  for (const f of readdirSync(join(MANIFESTS, "crds")).filter((x) => x.endsWith(".yaml") && x !== "kustomization.yaml")) {
    for (const crd of readYamlObjects(join(MANIFESTS, "crds", f)) as unknown as Crd[]) {
      for (const v of crd.spec.versions.filter((x) => x.served)) {
        const schema = strict(v.schema.openAPIV3Schema);
        // metadata is validated by the API server itself; the CRD schema leaves it open.
        (schema.properties as Record<string, Schema>).metadata = { type: "object" };
        const validate = ajv.compile(schema);
        map.set(`${crd.spec.group}/${v.name}/${crd.spec.names.kind}`, (o) =>
          validate(o) ? [] : (validate.errors ?? []).map((e) => `${e.instancePath || "(root)"} ${e.message}${e.params && "additionalProperty" in e.params ? ` "${String(e.params.additionalProperty)}"` : ""}`));
      }
    }
  }
  return map;
}

const byKind = validators();
const check = (o: KubeObject): string[] => {
  const v = byKind.get(`${o.apiVersion}/${o.kind}`);
  return v ? v(o) : [`no CRD serves ${o.apiVersion} ${o.kind}`];
};

test("every example policy validates against its CRD's schema", () => {
  const files = readdirSync(join(MANIFESTS, "examples")).filter((f) => f.endsWith(".yaml"));
  assert.ok(files.length >= 3);
  for (const f of files) {
    for (const o of readYamlObjects(join(MANIFESTS, "examples", f))) assert.deepEqual(check(o), [], `manifests/examples/${f}: ${o.kind} ${o.metadata.name}`);
  }
});

test("the scenario files' inline policies validate against the CRDs too", () => {
  let n = 0;
  for (const s of loadScenarioDir(join(ROOT, "istio-tests", "scenarios"))) {
    for (const p of s.policies as KubeObject[]) { n++; assert.deepEqual(check(p), [], `${s.file}: ${p.kind} ${p.metadata.name}`); }
  }
  assert.ok(n > 0, "scenarios carry policies");
});

test("the CRD check rejects a wrong enum, a bad port and a misspelled field", () => {
  const bad = {
    apiVersion: "egret.dev/v1alpha1", kind: "EgressPolicy", metadata: { name: "x", namespace: "y" },
    spec: { podSelector: {}, rules: [{ action: "Allw", ports: [{ port: 70000 }], protocol: ["tls"] }] },
  } as unknown as KubeObject;
  const problems = check(bad).join("\n");
  assert.match(problems, /\/spec\/rules\/0\/action must be equal to one of the allowed values/);
  assert.match(problems, /\/spec\/rules\/0\/ports\/0\/port must be <= 65535/);
  assert.match(problems, /must NOT have additional properties "protocol"/);
});

test("egret validate (the policy API's own validator, semantic checks included) accepts every example", () => {
  const files = readdirSync(join(MANIFESTS, "examples")).filter((f) => f.endsWith(".yaml")).map((f) => join(MANIFESTS, "examples", f));
  const r = spawnSync(process.execPath, [join(ROOT, "bin", "egret.js"), "validate", ...files], { encoding: "utf8", timeout: 60_000 });
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.match(r.stdout, / 0 errors/);
});
