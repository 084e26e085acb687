// `egret import`: reads policies written for other systems and returns Egret policies with the same
// meaning, plus a report entry for every source rule. See README.md and docs/import.md.
import { readFileSync } from "node:fs";
import { parseAllDocuments, stringify } from "yaml";
import { formatDiagnostic, validatePolicyObject } from "../policy/index.js";
import { importCilium, isCilium } from "./cilium.js";
import { importIstio, isIstio } from "./istio.js";
import { importNetworkPolicy, isNetworkPolicy } from "./kubernetes.js";
import { isObj, type EgretPolicyObject, type ImportOutput, type ReportEntry, type SourceDoc } from "./model.js";
import { importNetworkPolicyApi, isNetworkPolicyApi, kubernetesDefaultAllow } from "./npapi.js";
import { importOpenShift, isOpenShiftFirewall } from "./openshift.js";

export type { ReportEntry, EgretPolicyObject, Status } from "./model.js";

export class ImportError extends Error {}

/** Reads every YAML/JSON document of the files (List objects are expanded). */
export function readSourceDocs(files: string[]): SourceDoc[] {
  const out: SourceDoc[] = [];
  for (const file of files) {
    let text: string;
    try { text = readFileSync(file, "utf8"); } catch (e) { throw new ImportError(`cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`); }
    for (const [i, doc] of parseAllDocuments(text).entries()) {
      if (doc.errors.length) throw new ImportError(`${file}: document ${i + 1}: ${doc.errors[0]!.message}`);
      const obj = doc.toJS() as unknown;
      if (obj === null || obj === undefined) continue;
      if (!isObj(obj)) throw new ImportError(`${file}: document ${i + 1} is not a mapping`);
      if (obj.kind === "List" || (typeof obj.kind === "string" && obj.kind.endsWith("List") && Array.isArray(obj.items))) {
        for (const item of obj.items as unknown[]) if (isObj(item)) out.push({ obj: item, file });
      } else out.push({ obj, file });
    }
  }
  return out;
}

/** Translates source documents; unknown kinds are reported (never silently dropped). */
export function importDocuments(docs: SourceDoc[]): ImportOutput {
  const policies: EgretPolicyObject[] = [];
  const report: ReportEntry[] = [];
  const istio: SourceDoc[] = [];
  const subjects: Parameters<typeof kubernetesDefaultAllow>[0] = [];
  const ciliumDefaults = new Map<string, EgretPolicyObject>();
  const take = (o: ImportOutput): void => { policies.push(...o.policies); report.push(...o.report); };
  for (const doc of docs) {
    const o = doc.obj;
    if (isNetworkPolicy(o)) take(importNetworkPolicy(doc));
    else if (isNetworkPolicyApi(o)) { const r = importNetworkPolicyApi(doc); take(r); subjects.push(...r.subjects); }
    else if (isOpenShiftFirewall(o)) take(importOpenShift(doc));
    else if (isCilium(o)) { const r = importCilium(doc); take(r); for (const p of r.defaultAllow) ciliumDefaults.set(p.metadata.name, p); }
    else if (isIstio(o)) istio.push(doc);
    else report.push({ source: `${String(o.kind ?? "?")} ${String(isObj(o.metadata) ? o.metadata.name ?? "?" : "?")}`, ...(doc.file ? { file: doc.file } : {}), path: "", status: "not-expressible", why: `${String(o.apiVersion ?? "?")} ${String(o.kind ?? "?")} is not a source egret import reads`, instead: "import NetworkPolicy, ClusterNetworkPolicy/AdminNetworkPolicy/BaselineAdminNetworkPolicy, EgressNetworkPolicy/EgressFirewall, Istio ServiceEntry/Sidecar/EgressRule/mesh config, or CiliumNetworkPolicy/CiliumClusterwideNetworkPolicy", egret: [] });
  }
  if (istio.length) take(importIstio(istio));
  const defaults = kubernetesDefaultAllow(subjects);
  if (defaults.length) {
    policies.push(...defaults);
    report.push({ source: "network-policy-api", path: "", status: "exact", why: "connections no tier decided are allowed in Kubernetes; Egret denies them for a selected pod, so each subject gets a last Baseline Allow-everything policy", egret: defaults.map((p) => `ClusterEgressPolicy ${p.metadata.name}#kubernetes-default`) });
  }
  policies.push(...ciliumDefaults.values());
  return { policies: dedupeNames(policies), report };
}

/** Two sources may map to one name (e.g. same name in two files): later ones get a suffix. */
function dedupeNames(policies: EgretPolicyObject[]): EgretPolicyObject[] {
  const seen = new Set<string>();
  for (const p of policies) {
    const key = (n: string): string => `${p.kind}/${p.metadata.namespace ?? ""}/${n}`;
    let name = p.metadata.name;
    for (let i = 2; seen.has(key(name)); i++) name = `${p.metadata.name}-${i}`;
    p.metadata.name = name;
    seen.add(key(name));
  }
  return policies;
}

/** Every produced policy must pass Egret's own validator; a failure is a bug in the importer. */
export function checkOutput(policies: EgretPolicyObject[]): string[] {
  return policies.flatMap((p) => validatePolicyObject(p).diagnostics.filter((d) => d.severity === "error").map((d) => `${p.kind} ${p.metadata.name}: ${formatDiagnostic(d)}`));
}

export function renderPolicies(policies: EgretPolicyObject[], files: string[]): string {
  const header = `# Egret policies imported by \`egret import\` from ${files.join(", ")}.\n# The report (standard error) says, for every source rule, whether Egret enforces it exactly, more strictly, or not at all.\n`;
  return header + policies.map((p) => `---\n${stringify(p, { lineWidth: 0 })}`).join("");
}

export function renderReport(report: ReportEntry[]): string {
  const counts = { exact: 0, stricter: 0, "not-expressible": 0 };
  const lines: string[] = [];
  let last = "";
  for (const e of report) {
    counts[e.status]++;
    const src = `${e.source}${e.file ? ` (${e.file})` : ""}`;
    if (src !== last) { lines.push(src); last = src; }
    lines.push(`  ${e.path || "(object)"}: ${e.status.toUpperCase()} — ${e.why}`);
    if (e.instead) lines.push(`      instead: ${e.instead}`);
    if (e.egret.length) lines.push(`      egret: ${e.egret.join(", ")}`);
  }
  lines.push(`${report.length} source rules: ${counts.exact} exact, ${counts.stricter} stricter in Egret, ${counts["not-expressible"]} not expressible`);
  return `${lines.join("\n")}\n`;
}
