// Lints proto/egret/v1 (a buf-STANDARD-like subset plus the rules the hand-written wasm decoder
// needs) and checks control/src/proto/messages.ts names exactly the fields and enum values.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { packageDefinition, protoRoot, PROTO_FILES, PROTO_PACKAGE } from "../../src/proto/index.js";

interface FieldDescriptor { name: string; number: number; label: string; type: string; typeName: string }
interface MessageDescriptor {
  name: string;
  field: FieldDescriptor[];
  oneofDecl: unknown[];
  nestedType: unknown[];
  reservedRange: { start: number; end: number }[];
  reservedName: string[];
}
interface EnumDescriptor { name: string; value: { name: string; number: number }[] }
interface MethodDef { originalName: string; requestType: { type: MessageDescriptor }; responseType: { type: MessageDescriptor } }

const pascal = /^[A-Z][A-Za-z0-9]*$/;
const lowerSnake = /^[a-z][a-z0-9]*(_[a-z0-9]+)*$/;
const upperSnake = /^[A-Z][A-Z0-9]*(_[A-Z0-9]+)*$/;
const toUpperSnake = (s: string) => s.replace(/([a-z0-9])([A-Z])/g, "$1_$2").toUpperCase();
// Repeated fields whose singular-looking name is still the natural one (a chain is a list).
const NON_PLURAL_REPEATED = new Set(["cname_chain"]);

function kinds() {
  const def = packageDefinition();
  const messages: MessageDescriptor[] = [];
  const enums: EnumDescriptor[] = [];
  const services: [string, Record<string, MethodDef>][] = [];
  for (const [fullName, value] of Object.entries(def)) {
    const v = value as { type?: { field?: unknown; value?: unknown }; format?: string };
    if (v.format === "Protocol Buffer 3 DescriptorProto") messages.push(v.type as unknown as MessageDescriptor);
    else if (v.format === "Protocol Buffer 3 EnumDescriptorProto") enums.push(v.type as unknown as EnumDescriptor);
    else services.push([fullName.slice(PROTO_PACKAGE.length + 1), value as unknown as Record<string, MethodDef>]);
  }
  return { messages, enums, services };
}

test("every proto file lives in proto/egret/v1 and declares package egret.v1, with no forbidden constructs", () => {
  const dir = join(protoRoot(), "egret", "v1");
  const files = readdirSync(dir).filter((f) => f.endsWith(".proto"));
  assert.deepEqual(files.sort(), PROTO_FILES.map((f) => f.split("/").pop()).sort(), "PROTO_FILES must list every .proto file");
  for (const f of files) {
    const text = readFileSync(join(dir, f), "utf8").replace(/\/\/[^\n]*/g, "");
    assert.match(text, /^syntax = "proto3";$/m, `${f}: syntax must be proto3`);
    assert.match(text, /^package egret\.v1;$/m, `${f}: package must be egret.v1 (matches the directory)`);
    // The filter hand-decodes these messages in AssemblyScript: keep them flat.
    for (const [pattern, why] of [
      [/\bmap\s*</, "map fields"],
      [/\boneof\b/, "oneofs"],
      [/google\/protobuf/, "well-known types (Any, Timestamp, …)"],
      [/\boptional\b/, "proto3 optional (synthetic oneofs)"],
      [/\bgroup\b/, "groups"],
    ] as const) {
      assert.ok(!pattern.test(text), `${f}: ${why} are not allowed (the wasm decoder reads flat messages)`);
    }
  }
});

test("enums: PascalCase names, UPPER_SNAKE values prefixed with the enum name, first value X_UNSPECIFIED = 0", () => {
  const { enums } = kinds();
  assert.ok(enums.length >= 5);
  for (const e of enums) {
    assert.match(e.name, pascal, `enum ${e.name}: name must be PascalCase`);
    const prefix = toUpperSnake(e.name) + "_";
    assert.equal(e.value[0].name, prefix + "UNSPECIFIED", `enum ${e.name}: first value must be ${prefix}UNSPECIFIED`);
    assert.equal(e.value[0].number, 0, `enum ${e.name}: ${prefix}UNSPECIFIED must be 0`);
    const numbers = new Set<number>();
    for (const v of e.value) {
      assert.match(v.name, upperSnake, `enum ${e.name}: value ${v.name} must be UPPER_SNAKE_CASE`);
      assert.ok(v.name.startsWith(prefix), `enum ${e.name}: value ${v.name} must start with ${prefix}`);
      assert.ok(!numbers.has(v.number), `enum ${e.name}: number ${v.number} used twice (aliases are not allowed)`);
      numbers.add(v.number);
    }
  }
});

test("messages: PascalCase, lower_snake fields, unique numbers outside reserved ranges, plural repeated, no nesting", () => {
  const { messages } = kinds();
  for (const msg of messages) {
    assert.match(msg.name, pascal, `message ${msg.name}: name must be PascalCase`);
    assert.equal(msg.nestedType.length, 0, `message ${msg.name}: nested messages are not allowed (declare at top level)`);
    assert.equal(msg.oneofDecl.length, 0, `message ${msg.name}: oneofs are not allowed`);
    const numbers = new Set<number>();
    for (const f of msg.field) {
      assert.match(f.name, lowerSnake, `${msg.name}.${f.name}: field names must be lower_snake_case`);
      assert.ok(!numbers.has(f.number), `${msg.name}.${f.name}: field number ${f.number} used twice`);
      numbers.add(f.number);
      for (const r of msg.reservedRange) {
        assert.ok(f.number < r.start || f.number >= r.end, `${msg.name}.${f.name}: number ${f.number} is reserved`);
      }
      assert.ok(!msg.reservedName.includes(f.name), `${msg.name}.${f.name}: the name is reserved`);
      if (f.label === "LABEL_REPEATED" && !NON_PLURAL_REPEATED.has(f.name)) {
        assert.match(f.name, /s$/, `${msg.name}.${f.name}: repeated fields take plural names`);
      }
    }
  }
});

test("every message carries a correct `// next-free-field: N` comment", () => {
  const { messages } = kinds();
  const texts = PROTO_FILES.map((f) => readFileSync(join(protoRoot(), f), "utf8")).join("\n");
  for (const msg of messages) {
    const m = new RegExp(`// next-free-field: (\\d+)\\n(?://[^\\n]*\\n)*message ${msg.name} \\{`).exec(texts);
    assert.ok(m, `message ${msg.name}: add a "// next-free-field: N" comment above it`);
    const next = Math.max(0, ...msg.field.map((f) => f.number), ...msg.reservedRange.map((r) => r.end - 1)) + 1;
    assert.equal(Number(m[1]), next, `message ${msg.name}: next-free-field should be ${next}`);
  }
});

test("services: PascalCase RPCs with <Rpc>Request / <Rpc>Response messages used by one RPC only", () => {
  const { services } = kinds();
  assert.deepEqual(services.map(([n]) => n).sort(), ["AgentService", "FilterService", "OperatorService"]);
  const used = new Set<string>();
  for (const [name, methods] of services) {
    assert.match(name, /^[A-Z][A-Za-z0-9]*Service$/, `service ${name}: name must be PascalCase ending in Service`);
    for (const method of Object.values(methods)) {
      const rpc = method.originalName[0].toUpperCase() + method.originalName.slice(1);
      assert.match(rpc, pascal);
      assert.equal(method.requestType.type.name, `${rpc}Request`, `${name}.${rpc}: request must be ${rpc}Request`);
      assert.equal(method.responseType.type.name, `${rpc}Response`, `${name}.${rpc}: response must be ${rpc}Response`);
      for (const t of [method.requestType.type.name, method.responseType.type.name]) {
        assert.ok(!used.has(t), `${t} is used by more than one RPC`);
        used.add(t);
      }
    }
  }
});

test("control/src/proto/messages.ts names exactly the proto's fields and enum values", () => {
  const { messages, enums } = kinds();
  const ts = readFileSync(new URL("../../../../control/src/proto/messages.ts", import.meta.url), "utf8");
  for (const msg of messages) {
    const block = new RegExp(`export interface ${msg.name} \\{([^}]*)\\}`).exec(ts);
    assert.ok(block, `messages.ts: interface ${msg.name} is missing`);
    const names = [...block[1].matchAll(/^\s*(\w+):/gm)].map((x) => x[1]).sort();
    assert.deepEqual(names, msg.field.map((f) => f.name).sort(), `messages.ts: ${msg.name} fields differ from the proto`);
  }
  for (const e of enums) {
    const block = new RegExp(`export type ${e.name} =([^;]*);`).exec(ts);
    assert.ok(block, `messages.ts: type ${e.name} is missing`);
    const values = [...block[1].matchAll(/"(\w+)"/g)].map((x) => x[1]).sort();
    assert.deepEqual(values, e.value.map((v) => v.name).sort(), `messages.ts: ${e.name} values differ from the proto`);
  }
});
