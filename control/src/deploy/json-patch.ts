// RFC 6902 JSON Patch over plain JSON values (what kustomize applies for `patches:` entries
// whose body is an operation list). Returns a new document; the input is never mutated.

export interface PatchOperation {
  op: "add" | "remove" | "replace" | "move" | "copy" | "test";
  path: string;
  value?: unknown;
  from?: string;
}

export class JsonPatchError extends Error {}

type Container = Record<string, unknown> | unknown[];

function parsePointer(pointer: string): string[] {
  if (pointer === "") return [];
  if (!pointer.startsWith("/")) throw new JsonPatchError(`JSON pointer "${pointer}" must start with "/"`);
  return pointer.slice(1).split("/").map((t) => t.replace(/~1/g, "/").replace(/~0/g, "~"));
}

function clone<T>(v: T): T {
  return v === undefined ? v : (JSON.parse(JSON.stringify(v)) as T);
}

function isContainer(v: unknown): v is Container {
  return typeof v === "object" && v !== null;
}

function arrayIndex(arr: unknown[], token: string, forInsert: boolean, pointer: string): number {
  if (forInsert && token === "-") return arr.length;
  if (!/^(0|[1-9][0-9]*)$/.test(token)) throw new JsonPatchError(`"${token}" in "${pointer}" is not an array index`);
  const i = Number(token);
  if (i > arr.length || (!forInsert && i === arr.length)) throw new JsonPatchError(`index ${i} in "${pointer}" is out of range (length ${arr.length})`);
  return i;
}

/** Walks to the parent of the pointer's last token. */
function parentOf(doc: unknown, pointer: string): { parent: Container; key: string } {
  const tokens = parsePointer(pointer);
  if (tokens.length === 0) throw new JsonPatchError("operations on the whole document are not supported");
  let cur: unknown = doc;
  for (const t of tokens.slice(0, -1)) {
    if (Array.isArray(cur)) cur = cur[arrayIndex(cur, t, false, pointer)];
    else if (isContainer(cur) && Object.prototype.hasOwnProperty.call(cur, t)) cur = (cur as Record<string, unknown>)[t];
    else throw new JsonPatchError(`path "${pointer}" does not exist (no "${t}")`);
  }
  if (!isContainer(cur)) throw new JsonPatchError(`path "${pointer}": parent is not an object or array`);
  return { parent: cur, key: tokens[tokens.length - 1] };
}

function get(doc: unknown, pointer: string): unknown {
  let cur: unknown = doc;
  for (const t of parsePointer(pointer)) {
    if (Array.isArray(cur)) cur = cur[arrayIndex(cur, t, false, pointer)];
    else if (isContainer(cur) && Object.prototype.hasOwnProperty.call(cur, t)) cur = (cur as Record<string, unknown>)[t];
    else throw new JsonPatchError(`path "${pointer}" does not exist`);
  }
  return cur;
}

function add(doc: unknown, pointer: string, value: unknown): void {
  const { parent, key } = parentOf(doc, pointer);
  if (Array.isArray(parent)) parent.splice(arrayIndex(parent, key, true, pointer), 0, value);
  else parent[key] = value;
}

function remove(doc: unknown, pointer: string): unknown {
  const { parent, key } = parentOf(doc, pointer);
  if (Array.isArray(parent)) return parent.splice(arrayIndex(parent, key, false, pointer), 1)[0];
  if (!Object.prototype.hasOwnProperty.call(parent, key)) throw new JsonPatchError(`path "${pointer}" does not exist`);
  const old = parent[key];
  delete parent[key];
  return old;
}

export function applyJsonPatch<T>(document: T, operations: PatchOperation[]): T {
  const doc = clone(document);
  for (const [i, op] of operations.entries()) {
    const where = `operation ${i} (${op.op} ${op.path})`;
    try {
      switch (op.op) {
        case "add": add(doc, op.path, clone(op.value)); break;
        case "remove": remove(doc, op.path); break;
        case "replace": remove(doc, op.path); add(doc, op.path, clone(op.value)); break;
        case "move": { if (op.from === undefined) throw new JsonPatchError("missing \"from\""); const v = remove(doc, op.from); add(doc, op.path, v); break; }
        case "copy": { if (op.from === undefined) throw new JsonPatchError("missing \"from\""); add(doc, op.path, clone(get(doc, op.from))); break; }
        case "test":
          if (JSON.stringify(get(doc, op.path)) !== JSON.stringify(op.value)) throw new JsonPatchError("test failed: value differs");
          break;
        default: throw new JsonPatchError(`unknown op "${(op as { op: string }).op}"`);
      }
    } catch (err) {
      throw new JsonPatchError(`${where}: ${(err as Error).message}`);
    }
  }
  return doc;
}
