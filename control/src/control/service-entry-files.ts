// File mode's ServiceEntries: YAML or JSON files (or folders of them) holding Istio ServiceEntry
// objects — one per document, or a `kind: List` — exactly as `kubectl get serviceentry -o yaml`
// prints them, so `status.addresses` written by istiod can be copied in too.
import { readdirSync, readFileSync, statSync } from "node:fs";
import { extname, join } from "node:path";
import { LineCounter, parseAllDocuments } from "yaml";
import { ControlError } from "./errors.js";

const EXTENSIONS = new Set([".yaml", ".yml", ".json"]);

function filesUnder(path: string): string[] {
  let isDir: boolean;
  try {
    isDir = statSync(path).isDirectory();
  } catch (err) {
    throw new ControlError("EGRET_SERVICE_ENTRY_FILE_INVALID", `cannot read ${path}: ${(err as Error).message}`, { cause: err });
  }
  if (!isDir) return [path];
  const out: string[] = [];
  for (const e of readdirSync(path, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const full = join(path, e.name);
    if (e.isDirectory()) out.push(...filesUnder(full));
    else if (EXTENSIONS.has(extname(e.name))) out.push(full);
  }
  return out;
}

/** Parses one file's text; throws ControlError naming file:line:column and what to fix. */
export function parseServiceEntryText(text: string, file: string): unknown[] {
  const lines = new LineCounter();
  const docs = parseAllDocuments(text, { lineCounter: lines, prettyErrors: false });
  const list = Array.isArray(docs) ? docs : [docs];
  const out: unknown[] = [];
  for (const doc of list) {
    if (doc.errors.length > 0) {
      const pos = lines.linePos(doc.errors[0].pos[0]);
      throw new ControlError("EGRET_SERVICE_ENTRY_FILE_INVALID", `${file}:${pos.line}:${pos.col}: not valid YAML: ${doc.errors[0].message.split("\n")[0]}`);
    }
    let value: unknown;
    try {
      value = doc.toJS({ maxAliasCount: 100 });
    } catch (err) {
      throw new ControlError("EGRET_SERVICE_ENTRY_FILE_INVALID", `${file}: not usable YAML: ${(err as Error).message.split("\n")[0]}`, { cause: err });
    }
    if (value === null || value === undefined) continue;
    const where = () => {
      const pos = lines.linePos(doc.contents?.range?.[0] ?? 0);
      return `${file}:${pos.line}:${pos.col}`;
    };
    const items = isList(value) ? (value as { items: unknown[] }).items : [value];
    for (const item of items) {
      const o = item as { kind?: unknown; apiVersion?: unknown; metadata?: { name?: unknown; namespace?: unknown } };
      if (typeof o !== "object" || o === null || o.kind !== "ServiceEntry" || typeof o.apiVersion !== "string" || !o.apiVersion.startsWith("networking.istio.io/")) {
        throw new ControlError("EGRET_SERVICE_ENTRY_FILE_INVALID", `${where()}: expected kind ServiceEntry with apiVersion networking.istio.io/v1 (got kind ${JSON.stringify(o?.kind)})`);
      }
      if (typeof o.metadata?.name !== "string" || typeof o.metadata?.namespace !== "string") {
        throw new ControlError("EGRET_SERVICE_ENTRY_FILE_INVALID", `${where()}: metadata.name and metadata.namespace are required (a ServiceEntry's namespace decides its visibility)`);
      }
      out.push(item);
    }
  }
  return out;
}

function isList(v: unknown): boolean {
  return typeof v === "object" && v !== null && (v as { kind?: unknown }).kind === "List" && Array.isArray((v as { items?: unknown }).items);
}

/** Every ServiceEntry in the files and folders (recursively: .yaml, .yml, .json). */
export function loadServiceEntryFiles(paths: readonly string[]): unknown[] {
  const out: unknown[] = [];
  for (const p of paths) for (const f of filesUnder(p)) out.push(...parseServiceEntryText(readFileSync(f, "utf8"), f));
  return out;
}
