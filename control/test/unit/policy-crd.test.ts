// The CRDs in manifests/crds/: API identity, printer columns, status subresource, and a
// structural schema (every node typed; Kubernetes rejects untyped nodes) with CEL rules.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { parse } from "yaml";
import { CRD_FILES } from "../../src/policy/index.js";

type Node = Record<string, unknown>;

function walk(schema: Node, path: string, visit: (n: Node, path: string) => void): void {
  visit(schema, path);
  for (const [k, v] of Object.entries((schema.properties as Record<string, Node> | undefined) ?? {})) walk(v, `${path}.${k}`, visit);
  if (schema.items) walk(schema.items as Node, `${path}[]`, visit);
  if (schema.additionalProperties && typeof schema.additionalProperties === "object") walk(schema.additionalProperties as Node, `${path}{}`, visit);
}

for (const [kind, file] of Object.entries(CRD_FILES)) {
  test(`${kind} CRD: identity, columns, status, structural schema`, () => {
    const crd = parse(readFileSync(file, "utf8")) as any;  
    assert.equal(crd.apiVersion, "apiextensions.k8s.io/v1");
    assert.equal(crd.spec.group, "egret.dev");
    assert.equal(crd.spec.names.kind, kind);
    assert.equal(crd.spec.scope, kind === "EgressPolicy" ? "Namespaced" : "Cluster");
    assert.equal(crd.metadata.name, `${crd.spec.names.plural}.egret.dev`);
    const [version] = crd.spec.versions;
    assert.equal(version.name, "v1alpha1");
    assert.deepEqual(version.subresources, { status: {} });
    const columns = version.additionalPrinterColumns.map((c: { name: string }) => c.name);
    for (const c of ["Mode", "Priority", "Rules", "Selected Pods", "Enforced", "Not Enforced", "Ready"]) assert.ok(columns.includes(c), `column ${c}`);
    const schema = version.schema.openAPIV3Schema as Node;
    let cel = 0;
    walk(schema, "", (n, path) => {
      assert.ok(typeof n.type === "string" || n["x-kubernetes-int-or-string"] || n["x-kubernetes-preserve-unknown-fields"], `untyped schema node at ${path || "(root)"}`);
      cel += ((n["x-kubernetes-validations"] as unknown[] | undefined) ?? []).length;
    });
    assert.ok(cel >= 5, `CEL rules: ${cel}`);
    const spec = (schema.properties as Record<string, Node>).spec!;
    const props = Object.keys(spec.properties as Node);
    for (const f of ["podSelector", "priority", "mode", "rules", "resolutionGraceSeconds", "unattributed"]) assert.ok(props.includes(f), f);
    assert.equal(props.includes("tier"), kind === "ClusterEgressPolicy");
    const conditions = ((schema.properties as Record<string, Node>).status!.properties as Record<string, Node>).conditions!;
    assert.deepEqual(((conditions.items as Node).required as string[]).sort(), ["lastTransitionTime", "message", "reason", "status", "type"]);
  });
}
