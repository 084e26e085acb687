// A small, exact subset of kustomize, enough to render manifests/ without a kustomize binary
// (the CLI's `egret manifests`, and the offline checks in istio-tests/unit). Supported:
//   Kustomization/Component with `resources` (files or folders with a kustomization),
//   `components`, `patches` (RFC 6902 operation lists, inline or from a file, with `target`),
//   `images` (newName/newTag/digest). Anything else is rejected with the file and field named,
//   so a manifest never silently renders differently here than under `kubectl kustomize`.
// Order of operations follows kustomize: resources, then components, then own patches, images.
import { existsSync, readFileSync, statSync } from "node:fs";
import { isAbsolute, join, relative, resolve } from "node:path";
import { parseAllDocuments } from "yaml";
import { applyJsonPatch, type PatchOperation } from "./json-patch.js";

export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [field: string]: unknown;
}

export class KustomizeError extends Error {}

const KUSTOMIZATION_FILES = ["kustomization.yaml", "kustomization.yml", "Kustomization"];
const SUPPORTED_FIELDS = new Set(["apiVersion", "kind", "resources", "components", "patches", "images"]);

// kustomize's "legacy" output order: dependencies first (namespaces, CRDs, RBAC), other kinds by
// group_version_kind, webhooks last.
const ORDER_FIRST = ["Namespace", "ResourceQuota", "StorageClass", "CustomResourceDefinition", "ServiceAccount",
  "PodSecurityPolicy", "Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding", "ConfigMap", "Secret",
  "Endpoints", "Service", "LimitRange", "PriorityClass", "PersistentVolume", "PersistentVolumeClaim",
  "Deployment", "StatefulSet", "CronJob", "PodDisruptionBudget"];
const ORDER_LAST = ["MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"];

interface Target { group?: string; version?: string; kind?: string; name?: string; namespace?: string }
interface PatchEntry { path?: string; patch?: string; target?: Target; options?: unknown }
export interface ImageEntry { name: string; newName?: string; newTag?: string; digest?: string }

/** Parses every YAML document of a file into objects; empty documents are skipped. */
export function readYamlObjects(file: string): KubeObject[] {
  const text = readFileSync(file, "utf8");
  const out: KubeObject[] = [];
  for (const doc of parseAllDocuments(text)) {
    if (doc.errors.length > 0) throw new KustomizeError(`${file}: YAML error: ${doc.errors[0].message}`);
    const value = doc.toJS() as unknown;
    if (value === null || value === undefined) continue;
    if (typeof value !== "object" || Array.isArray(value)) throw new KustomizeError(`${file}: a document is not a mapping`);
    const obj = value as KubeObject;
    if (typeof obj.apiVersion !== "string" || typeof obj.kind !== "string" || typeof obj.metadata?.name !== "string") {
      throw new KustomizeError(`${file}: every resource needs apiVersion, kind and metadata.name`);
    }
    out.push(obj);
  }
  return out;
}

function kustomizationFile(dir: string): string | undefined {
  for (const f of KUSTOMIZATION_FILES) if (existsSync(join(dir, f))) return join(dir, f);
  return undefined;
}

export function resourceId(o: KubeObject): string {
  return `${o.apiVersion}/${o.kind}/${o.metadata.namespace ?? ""}/${o.metadata.name}`;
}

function groupVersion(apiVersion: string): { group: string; version: string } {
  const i = apiVersion.indexOf("/");
  return i < 0 ? { group: "", version: apiVersion } : { group: apiVersion.slice(0, i), version: apiVersion.slice(i + 1) };
}

function anchored(pattern: string | undefined, value: string): boolean {
  if (pattern === undefined) return true;
  return new RegExp(`^(?:${pattern})$`).test(value);
}

function matches(t: Target, o: KubeObject): boolean {
  const gv = groupVersion(o.apiVersion);
  return (t.group === undefined || t.group === gv.group) && (t.version === undefined || t.version === gv.version) &&
    (t.kind === undefined || t.kind === o.kind) && anchored(t.name, o.metadata.name) &&
    anchored(t.namespace, o.metadata.namespace ?? "");
}

function orderKey(o: KubeObject): [number, string] {
  const first = ORDER_FIRST.indexOf(o.kind);
  if (first >= 0) return [first, ""];
  const last = ORDER_LAST.indexOf(o.kind);
  if (last >= 0) return [ORDER_FIRST.length + 1 + last, ""];
  const gv = groupVersion(o.apiVersion);
  return [ORDER_FIRST.length, `${gv.group}_${gv.version}_${o.kind}`];
}

export function sortLikeKustomize(objects: KubeObject[]): KubeObject[] {
  return [...objects].sort((a, b) => {
    const [ai, ak] = orderKey(a); const [bi, bk] = orderKey(b);
    if (ai !== bi) return ai - bi;
    if (ak !== bk) return ak < bk ? -1 : 1;
    const an = `${a.metadata.namespace ?? ""}/${a.metadata.name}`; const bn = `${b.metadata.namespace ?? ""}/${b.metadata.name}`;
    return an < bn ? -1 : an > bn ? 1 : 0;
  });
}

function setImage(image: string, entries: ImageEntry[]): string {
  // name[:tag][@digest] — a ':' after the last '/' starts the tag.
  const at = image.indexOf("@");
  const base = at >= 0 ? image.slice(0, at) : image;
  const slash = base.lastIndexOf("/");
  const colon = base.indexOf(":", slash + 1);
  const name = colon >= 0 ? base.slice(0, colon) : base;
  const entry = entries.find((e) => e.name === name);
  if (!entry) return image;
  const newName = entry.newName ?? name;
  if (entry.digest) return `${newName}@${entry.digest}`;
  if (entry.newTag) return `${newName}:${entry.newTag}`;
  return newName + image.slice(name.length);
}

function transformImages(node: unknown, entries: ImageEntry[]): void {
  if (Array.isArray(node)) { for (const n of node) transformImages(n, entries); return; }
  if (typeof node !== "object" || node === null) return;
  const rec = node as Record<string, unknown>;
  for (const key of ["containers", "initContainers", "ephemeralContainers"]) {
    const list = rec[key];
    if (Array.isArray(list)) for (const c of list) {
      if (c && typeof c === "object" && typeof (c as Record<string, unknown>).image === "string") {
        (c as Record<string, unknown>).image = setImage((c as Record<string, string>).image, entries);
      }
    }
  }
  for (const v of Object.values(rec)) transformImages(v, entries);
}

function loadPatchOps(file: string, entry: PatchEntry, index: number, dir: string): PatchOperation[] {
  const where = `${file}: patches[${index}]`;
  if (entry.options !== undefined) throw new KustomizeError(`${where}.options is not supported by this renderer`);
  const text = entry.patch ?? (entry.path ? readFileSync(resolve(dir, entry.path), "utf8") : undefined);
  if (text === undefined) throw new KustomizeError(`${where}: needs "patch" or "path"`);
  const docs = parseAllDocuments(text).map((d) => d.toJS() as unknown);
  if (docs.length !== 1 || !Array.isArray(docs[0])) {
    throw new KustomizeError(`${where}: only RFC 6902 operation lists are supported (strategic-merge patches are not); write the change as "- op: …" entries`);
  }
  if (!entry.target) throw new KustomizeError(`${where}: a JSON 6902 patch needs a "target"`);
  return docs[0] as PatchOperation[];
}

function build(dir: string, stack: string[], expectKind: "Kustomization" | "Component"): KubeObject[] {
  const file = kustomizationFile(dir);
  if (!file) throw new KustomizeError(`${dir}: no kustomization.yaml (a resource folder must have one)`);
  if (stack.includes(file)) throw new KustomizeError(`${file}: cycle through ${stack.join(" → ")}`);
  const k = (parseAllDocuments(readFileSync(file, "utf8"))[0]?.toJS() ?? {}) as Record<string, unknown>;
  const kind = (k.kind as string | undefined) ?? "Kustomization";
  if (kind !== expectKind) throw new KustomizeError(`${file}: kind is ${kind}, expected ${expectKind} here`);
  for (const field of Object.keys(k)) {
    if (!SUPPORTED_FIELDS.has(field)) throw new KustomizeError(`${file}: field "${field}" is not supported by this renderer (supported: ${[...SUPPORTED_FIELDS].join(", ")}); render with kubectl kustomize instead`);
  }
  const next = [...stack, file];
  let objects: KubeObject[] = [];
  for (const r of (k.resources as string[] | undefined) ?? []) {
    if (isAbsolute(r)) throw new KustomizeError(`${file}: resource "${r}" must be a relative path (kustomize refuses absolute roots)`);
    const p = resolve(dir, r);
    if (!existsSync(p)) throw new KustomizeError(`${file}: resource "${r}" does not exist (${relative(process.cwd(), p)})`);
    objects.push(...(statSync(p).isDirectory() ? build(p, next, "Kustomization") : readYamlObjects(p)));
  }
  const seen = new Map<string, true>();
  for (const o of objects) {
    const id = resourceId(o);
    if (seen.has(id)) throw new KustomizeError(`${file}: resource ${id} is defined twice`);
    seen.set(id, true);
  }
  for (const c of (k.components as string[] | undefined) ?? []) {
    objects = applyLayer(resolve(dir, c), objects, next);
  }
  return applyOwnTransforms(file, dir, k, objects);
}

/** A Component adds its resources and applies its patches/images to what was accumulated. */
function applyLayer(dir: string, objects: KubeObject[], stack: string[]): KubeObject[] {
  const file = kustomizationFile(dir);
  if (!file) throw new KustomizeError(`${dir}: no kustomization.yaml for a component`);
  const k = (parseAllDocuments(readFileSync(file, "utf8"))[0]?.toJS() ?? {}) as Record<string, unknown>;
  if (k.kind !== "Component") throw new KustomizeError(`${file}: listed under components but kind is ${String(k.kind)}`);
  for (const field of Object.keys(k)) {
    if (!SUPPORTED_FIELDS.has(field)) throw new KustomizeError(`${file}: field "${field}" is not supported by this renderer`);
  }
  const extra: KubeObject[] = [];
  for (const r of (k.resources as string[] | undefined) ?? []) {
    const p = resolve(dir, r);
    extra.push(...(statSync(p).isDirectory() ? build(p, [...stack, file], "Kustomization") : readYamlObjects(p)));
  }
  return applyOwnTransforms(file, dir, k, [...objects, ...extra]);
}

function applyOwnTransforms(file: string, dir: string, k: Record<string, unknown>, input: KubeObject[]): KubeObject[] {
  let objects = input;
  for (const [i, entry] of (((k.patches as PatchEntry[] | undefined) ?? []).entries())) {
    const ops = loadPatchOps(file, entry, i, dir);
    let hit = 0;
    objects = objects.map((o) => {
      if (!matches(entry.target!, o)) return o;
      hit++;
      try { return applyJsonPatch(o, ops); } catch (err) {
        throw new KustomizeError(`${file}: patches[${i}] on ${resourceId(o)}: ${(err as Error).message}`);
      }
    });
    if (hit === 0) throw new KustomizeError(`${file}: patches[${i}] matches no resource (target ${JSON.stringify(entry.target)})`);
  }
  const images = (k.images as ImageEntry[] | undefined) ?? [];
  if (images.length > 0) {
    objects = objects.map((o) => { const c = JSON.parse(JSON.stringify(o)) as KubeObject; transformImages(c, images); return c; });
  }
  return objects;
}

/**
 * Renders a kustomization folder to its objects, in kustomize's legacy output order.
 * `components` are extra Component folders applied on top, as if an overlay listed them.
 */
export function renderKustomization(dir: string, components: string[] = []): KubeObject[] {
  let objects = build(resolve(dir), [], "Kustomization");
  for (const c of components) objects = applyLayer(resolve(c), objects, []);
  return sortLikeKustomize(objects);
}

/** Applies kustomize's images transformer to already rendered objects. */
export function setImages(objects: KubeObject[], images: ImageEntry[]): KubeObject[] {
  return objects.map((o) => { const c = JSON.parse(JSON.stringify(o)) as KubeObject; transformImages(c, images); return c; });
}

