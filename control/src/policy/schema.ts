// Structural validation with the CRDs' own OpenAPI v3 schemas (manifests/crds/), run by ajv.
// Kubernetes prunes unknown fields silently; here an unknown field is an error (with a "did you
// mean"), so the schemas are run with additionalProperties: false added to every object that
// lists its properties.
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Ajv, type ErrorObject, type ValidateFunction } from "ajv";
import addFormatsModule from "ajv-formats";
import { parse } from "yaml";
import { diag, didYouMean, formatPath } from "./diagnostics.js";
import type { Diagnostic, PolicyKind } from "./types.js";

export const CRD_FILES: Record<PolicyKind, string> = {
  EgressPolicy: fileURLToPath(new URL("../../../../manifests/crds/egresspolicies.yaml", import.meta.url)),
  ClusterEgressPolicy: fileURLToPath(new URL("../../../../manifests/crds/clusteregresspolicies.yaml", import.meta.url)),
};

type Schema = Record<string, unknown>;

/** The openAPIV3Schema of a kind's v1alpha1 version, as written in the CRD. */
export function crdSchema(kind: PolicyKind): Schema {
  const crd = parse(readFileSync(CRD_FILES[kind], "utf8")) as { spec: { versions: { name: string; schema: { openAPIV3Schema: Schema } }[] } };
  const version = crd.spec.versions.find((v) => v.name === "v1alpha1");
  if (!version) throw new Error(`${CRD_FILES[kind]}: no v1alpha1 version`);
  return version.schema.openAPIV3Schema;
}

function closeObjects(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(closeObjects);
  if (!schema || typeof schema !== "object") return schema;
  const out: Schema = {};
  for (const [k, v] of Object.entries(schema as Schema)) out[k] = closeObjects(v);
  if (out.properties && out.additionalProperties === undefined && !out["x-kubernetes-preserve-unknown-fields"]) {
    out.additionalProperties = false;
  }
  return out;
}

const validators = new Map<PolicyKind, ValidateFunction>();

function validatorFor(kind: PolicyKind): ValidateFunction {
  let v = validators.get(kind);
  if (!v) {
    const ajv = new Ajv({ allErrors: true, strict: true, useDefaults: false });
    (addFormatsModule as unknown as (a: Ajv) => void)(ajv);
    for (const k of ["x-kubernetes-validations", "x-kubernetes-map-type", "x-kubernetes-list-type",
      "x-kubernetes-list-map-keys", "x-kubernetes-preserve-unknown-fields", "x-kubernetes-int-or-string"]) {
      ajv.addKeyword(k);
    }
    v = ajv.compile(closeObjects(crdSchema(kind)) as Schema);
    validators.set(kind, v);
  }
  return v;
}

function segments(instancePath: string): (string | number)[] {
  if (!instancePath) return [];
  return instancePath.slice(1).split("/").map((s) => s.replace(/~1/g, "/").replace(/~0/g, "~")).map((s) => (/^\d+$/.test(s) ? Number(s) : s));
}

function valueAt(obj: unknown, path: (string | number)[]): unknown {
  let cur = obj;
  for (const s of path) cur = cur && typeof cur === "object" ? (cur as Record<string | number, unknown>)[s] : undefined;
  return cur;
}

function describe(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "a list";
  if (typeof v === "object") return "a mapping";
  return `${typeof v} ${JSON.stringify(v)}`;
}

function schemaAt(kind: PolicyKind, schemaPath: string): Schema | undefined {
  // "#/properties/spec/properties/rules/items/properties/action/enum" → the parent schema.
  let cur: unknown = crdSchema(kind);
  const parts = schemaPath.replace(/^#\//, "").split("/");
  parts.pop();
  for (const p of parts) cur = cur && typeof cur === "object" ? (cur as Schema)[p] : undefined;
  return cur as Schema | undefined;
}

function toDiagnostic(kind: PolicyKind, obj: unknown, e: ErrorObject): Diagnostic | undefined {
  const path = segments(e.instancePath);
  const value = valueAt(obj, path);
  const where = formatPath(path);
  const field = path.length ? String(path[path.length - 1]) : "";
  switch (e.keyword) {
    case "additionalProperties": {
      const extra = (e.params as { additionalProperty: string }).additionalProperty;
      const known = Object.keys((schemaAt(kind, e.schemaPath)?.properties as Schema | undefined) ?? {});
      const guess = didYouMean(extra, known);
      if (extra === "tier" && kind === "EgressPolicy") {
        return diag("error", "tier-on-namespaced", formatPath([...path, extra]), "tier is only valid on ClusterEgressPolicy",
          "namespaced EgressPolicies are always evaluated between the Admin and Baseline tiers; remove tier, or make this a ClusterEgressPolicy");
      }
      if (extra === "namespaceSelector" && kind === "EgressPolicy") {
        return diag("error", "unknown-field", formatPath([...path, extra]), "namespaceSelector is only valid on ClusterEgressPolicy",
          "an EgressPolicy applies to pods of its own namespace; use a ClusterEgressPolicy to select namespaces");
      }
      return diag("error", "unknown-field", formatPath([...path, extra]), `unknown field "${extra}"`,
        guess ? `did you mean "${guess}"? (fields here: ${known.join(", ")})` : `fields allowed here: ${known.join(", ")}`);
    }
    case "required": {
      const missing = (e.params as { missingProperty: string }).missingProperty;
      const hints: Record<string, string> = {
        action: "add action: Allow, Deny or Alert",
        rules: "add rules: (a list; an empty list [] denies everything for the selected pods)",
        podSelector: "add podSelector: {} to select every pod of the namespace, or matchLabels to pick some",
        cidr: "each cidrs entry needs cidr: <network>, e.g. - cidr: 10.0.0.0/8",
        port: "each ports entry needs port: <number>",
        spec: "add a spec with rules",
        key: "add key: <label key>", operator: "add operator: In, NotIn, Exists or DoesNotExist",
      };
      return diag("error", "missing-field", formatPath([...path, missing]), `required field "${missing}" is missing`, hints[missing] ?? `add ${missing}`);
    }
    case "enum": {
      const allowed = (e.params as { allowedValues: unknown[] }).allowedValues.map(String);
      const guess = typeof value === "string" ? didYouMean(value, allowed) : undefined;
      const isProtocol = path.includes("protocols");
      if (field === "action" && value === "Pass" && kind === "EgressPolicy") {
        return diag("error", "pass-not-cluster", where, "action Pass is only valid in a ClusterEgressPolicy (it skips the rest of an Admin or Baseline tier)",
          "an EgressPolicy has no tier to skip: use Allow, Deny or Alert, or move the rule into a ClusterEgressPolicy with tier: Admin");
      }
      if (path.includes("ports") && field === "protocol") {
        return diag("error", "bad-enum", where, `"${String(value)}" is not a valid protocol: Egret controls TCP connections only`, "remove protocol (TCP is implied); UDP traffic is not filtered by the sidecar");
      }
      return diag("error", isProtocol ? "unknown-protocol" : "bad-enum", where, `${JSON.stringify(value)} is not a valid ${field && typeof path[path.length - 1] === "string" ? field : isProtocol ? "protocol" : "value"}`,
        `${guess ? `did you mean "${guess}"? ` : ""}allowed: ${allowed.join(", ")}`);
    }
    case "type": {
      const expected = (e.params as { type: string }).type;
      let hint = `write ${expected === "object" ? "a mapping (key: value)" : expected === "array" ? "a list (- item)" : `a ${expected}`}`;
      if (path.includes("cidrs") && typeof value === "string") hint = `write each entry as a mapping: - cidr: ${value}`;
      if (expected === "integer" && typeof value === "string" && /^\d+$/.test(value)) hint = `remove the quotes: ${value}`;
      if (expected === "boolean" && typeof value === "string") hint = `write true or false without quotes`;
      const article = /^[aeiou]/.test(expected) ? "an" : "a";
      return diag("error", "wrong-type", where, `expected ${expected === "object" ? "a mapping" : expected === "array" ? "a list" : `${article} ${expected}`}, found ${describe(value)}`, hint);
    }
    case "minimum": case "maximum": {
      const limit = (e.params as { limit: number }).limit;
      const s = schemaAt(kind, e.schemaPath) ?? {};
      const range = `${String(s.minimum ?? "")}…${String(s.maximum ?? "")}`;
      const code = field === "port" || field === "endPort" ? "port-range" : field === "priority" ? "priority-range" : "out-of-range";
      const extra = field === "port" && limit === 1 ? " (port 0 is not a destination port)" : "";
      return diag("error", code, where, `${String(value)} is out of range for ${field} (${range})${extra}`, `use a value from ${range}`);
    }
    case "minItems":
      return diag("error", "empty-list", where, `${field} is an empty list`, `remove ${field}, or list at least one entry`);
    case "maxItems":
      return diag("error", "too-many", where, `${field} has more than ${(e.params as { limit: number }).limit} entries`, "split the rule or the policy");
    case "pattern":
      return diag("error", "bad-name", where, `${JSON.stringify(value)} is not a valid ${field}`, "use lowercase letters, digits and '-', starting and ending with a letter or digit (max 63)");
    case "minLength": case "maxLength":
      return diag("error", "bad-length", where, `${field} ${e.keyword === "minLength" ? "is empty" : "is too long"}`, e.message ?? "");
    default:
      return diag("error", "schema", where, e.message ?? "does not match the schema", "see docs/policy.md");
  }
}

/** Validates an object against its kind's CRD schema; returns diagnostics (paths without file positions). */
export function schemaDiagnostics(kind: PolicyKind, obj: unknown): Diagnostic[] {
  const validate = validatorFor(kind);
  if (validate(obj)) return [];
  const out: Diagnostic[] = [];
  const seen = new Set<string>();
  for (const e of validate.errors ?? []) {
    const d = toDiagnostic(kind, obj, e);
    if (!d) continue;
    const key = `${d.path}|${d.code}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(d);
  }
  return out;
}
