// Loading policies from YAML/JSON files (multi-document, folders allowed), with diagnostics
// located at file:line:column through the yaml package's node ranges.
import { readdirSync, readFileSync, statSync } from "node:fs";
import { extname, join } from "node:path";
import { isMap, isScalar, isSeq, LineCounter, parseAllDocuments, type Document, type Node } from "yaml";
import { diag } from "./diagnostics.js";
import type { Diagnostic, Policy } from "./types.js";
import { isEgretDocument, validateWithContext, type Locator } from "./validate.js";

const POLICY_EXTENSIONS = new Set([".yaml", ".yml", ".json"]);

function expand(path: string, out: string[], diagnostics: Diagnostic[]): void {
  let st;
  try {
    st = statSync(path);
  } catch (e) {
    diagnostics.push({ ...diag("error", "unreadable", "", `cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, "check the path"), file: path });
    return;
  }
  if (st.isDirectory()) {
    for (const entry of readdirSync(path).sort()) {
      const p = join(path, entry);
      if (statSync(p).isDirectory() || POLICY_EXTENSIONS.has(extname(entry))) expand(p, out, diagnostics);
    }
  } else out.push(path);
}

/** A Locator over one parsed YAML document: points at the key of the deepest existing field. */
export function yamlLocator(doc: Document, lines: LineCounter): Locator {
  return (path) => {
    let node: unknown = doc.contents;
    let offset = (doc.contents as Node | null)?.range?.[0];
    for (const seg of path) {
      if (isMap(node)) {
        const pair = node.items.find((p) => (isScalar(p.key) ? p.key.value : p.key) === seg);
        if (!pair) break;
        offset = (pair.key as Node | null)?.range?.[0] ?? offset;
        node = pair.value;
      } else if (isSeq(node) && typeof seg === "number") {
        const item = node.items[seg] as Node | undefined;
        if (!item) break;
        offset = item.range?.[0] ?? offset;
        node = item;
      } else break;
    }
    if (offset === undefined) return undefined;
    const pos = lines.linePos(offset);
    return { line: pos.line, column: pos.col };
  };
}

/** Parses policy text (multi-document YAML or JSON); `file` names it in diagnostics. */
export function loadPolicyText(text: string, file?: string): { policies: Policy[]; diagnostics: Diagnostic[] } {
  const policies: Policy[] = [];
  const diagnostics: Diagnostic[] = [];
  const lines = new LineCounter();
  const docs = parseAllDocuments(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  const list = Array.isArray(docs) ? docs : [];
  list.forEach((doc, index) => {
    if (doc.errors.length > 0) {
      for (const e of doc.errors) {
        const pos = lines.linePos(e.pos[0]);
        const message = e.message.split("\n")[0]!.replace(/ at line \d+, column \d+:?$/, "");
        const hint = e.code === "DUPLICATE_KEY" ? "remove one of the two entries" : e.code === "TAB_AS_INDENT" ? "indent with spaces, not tabs" : "fix the YAML syntax (indentation, colons, quotes)";
        diagnostics.push({ ...diag("error", e.code === "DUPLICATE_KEY" ? "duplicate-key" : "yaml-syntax", "", message, hint), ...(file ? { file } : {}), line: pos.line, column: pos.col });
      }
      return;
    }
    const obj = doc.toJS({ maxAliasCount: 100 }) as unknown;
    if (obj === null || obj === undefined) return; // empty document
    const locate = yamlLocator(doc, lines);
    const o = obj as Record<string, unknown>;
    // `kubectl get egp,cegp -o yaml` writes a List: validate each item where it stands.
    if (o && typeof o === "object" && typeof o.kind === "string" && /List$/.test(o.kind) && Array.isArray(o.items)) {
      o.items.forEach((item: unknown, i: number) => {
        if (!isEgretDocument(item)) return;
        const r = validateWithContext(item, { ...(file ? { file } : {}), document: index, locate: (path) => locate(["items", i, ...path]) });
        diagnostics.push(...r.diagnostics.map((d) => ({ ...d, path: d.path ? `items[${i}].${d.path}` : `items[${i}]` })));
        if (r.policy) policies.push(r.policy);
      });
      return;
    }
    const looksLikePolicy = isEgretDocument(obj) || typeof o !== "object" || o.apiVersion === undefined || /egress/i.test(String(o.kind ?? ""));
    if (!looksLikePolicy) {
      const pos = locate([]);
      diagnostics.push({ ...diag("warning", "not-a-policy", "", `skipped ${String(o.kind ?? "document")} (${String(o.apiVersion)}): not an Egret policy`, "only egret.dev/v1alpha1 EgressPolicy and ClusterEgressPolicy are read"), ...(file ? { file } : {}), ...(pos ? pos : {}) });
      return;
    }
    const r = validateWithContext(obj, { ...(file ? { file } : {}), document: index, locate });
    diagnostics.push(...r.diagnostics);
    if (r.policy) policies.push(r.policy);
  });
  return { policies, diagnostics };
}

/** Loads every policy in the given files and folders (recursively: *.yaml, *.yml, *.json). */
export function loadPolicyFiles(paths: string[]): { policies: Policy[]; diagnostics: Diagnostic[] } {
  const files: string[] = [];
  const diagnostics: Diagnostic[] = [];
  for (const p of paths) expand(p, files, diagnostics);
  const policies: Policy[] = [];
  const seen = new Map<string, Policy>();
  for (const file of files) {
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch (e) {
      diagnostics.push({ ...diag("error", "unreadable", "", `cannot read ${file}: ${(e as Error).message}`, "check the path and permissions"), file });
      continue;
    }
    const r = loadPolicyText(text, file);
    diagnostics.push(...r.diagnostics);
    for (const p of r.policies) {
      const key = `${p.kind}/${p.ref}`;
      const prev = seen.get(key);
      if (prev) {
        diagnostics.push({ ...diag("error", "duplicate-policy", "metadata.name", `${p.kind} "${p.ref}" is defined twice (also at ${prev.source.file ?? "?"}:${prev.source.line ?? "?"})`, "rename one of them; Kubernetes keeps only one object per name"), ...(p.source.file ? { file: p.source.file } : {}), ...(p.source.line ? { line: p.source.line } : {}), ...(p.source.column ? { column: p.source.column } : {}) });
        continue;
      }
      seen.set(key, p);
      policies.push(p);
    }
  }
  return { policies, diagnostics };
}
