// Kubernetes objects as plain data, and reading them from YAML files (the CRDs, examples).
import { readFileSync } from "node:fs";
import { parseAllDocuments, stringify } from "yaml";

export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [field: string]: unknown;
}

/** A mistake in what was asked of the renderer (an option, a file): the message says what to fix. */
export class RenderError extends Error {}

/** Parses every YAML document of a file into objects; empty documents are skipped. */
export function readYamlObjects(file: string): KubeObject[] {
  const text = readFileSync(file, "utf8");
  const out: KubeObject[] = [];
  for (const doc of parseAllDocuments(text)) {
    if (doc.errors.length > 0) throw new RenderError(`${file}: YAML error: ${doc.errors[0]!.message}`);
    const value = doc.toJS() as unknown;
    if (value === null || value === undefined) continue;
    if (typeof value !== "object" || Array.isArray(value)) throw new RenderError(`${file}: a document is not a mapping`);
    const obj = value as KubeObject;
    if (typeof obj.apiVersion !== "string" || typeof obj.kind !== "string" || typeof obj.metadata?.name !== "string") {
      throw new RenderError(`${file}: every resource needs apiVersion, kind and metadata.name`);
    }
    out.push(obj);
  }
  return out;
}

/** apiVersion/kind/namespace/name: the identity kubectl uses to match objects. */
export function resourceId(o: KubeObject): string {
  return `${o.apiVersion}/${o.kind}/${o.metadata.namespace ?? ""}/${o.metadata.name}`;
}

/** Multi-document YAML, one object per document, as kubectl apply -f expects. */
export function toYaml(objects: readonly KubeObject[]): string {
  return objects.map((o) => stringify(o, { lineWidth: 0 })).join("---\n");
}
