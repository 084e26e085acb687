// A small strict JSON (RFC 8259) parser for the plugin configuration. Configuration time only
// (allocates freely); never traps: errors are reported through `jsonError` with a byte offset.

export const enum JsonKind { Null, Bool, Number, String, Array, Object }

export class JsonValue {
  kind: JsonKind = JsonKind.Null;
  bool: bool = false;
  num: f64 = 0;
  str: string = "";
  items: JsonValue[] = [];
  keys: string[] = [];

  /** Member of an object by key, or null. */
  get(key: string): JsonValue | null {
    for (let i = 0; i < this.keys.length; i++) if (this.keys[i] == key) return this.items[i];
    return null;
  }
}

export let jsonError: string = "";
let src: usize = 0;
let end: usize = 0;
let pos: usize = 0;
let depth: i32 = 0;

// @ts-ignore: decorator
@inline const MAX_DEPTH: i32 = 32;

function fail(what: string): JsonValue | null {
  if (jsonError.length == 0) jsonError = what + " at byte " + (<i32>(pos - src)).toString();
  return null;
}

function skipWs(): void {
  while (pos < end) {
    const c = load<u8>(pos);
    if (c != 0x20 && c != 0x09 && c != 0x0a && c != 0x0d) break;
    pos++;
  }
}

/** Parses UTF-8 JSON text; null on error (see jsonError). Trailing content is an error. */
export function parseJson(ptr: usize, len: usize): JsonValue | null {
  jsonError = "";
  src = ptr;
  end = ptr + len;
  pos = ptr;
  depth = 0;
  const v = parseValue();
  if (v === null) return null;
  skipWs();
  if (pos != end) return fail("unexpected content after the JSON value");
  return v;
}

function parseValue(): JsonValue | null {
  skipWs();
  if (pos >= end) return fail("unexpected end of input");
  const c = load<u8>(pos);
  if (c == 0x7b) return parseObject();
  if (c == 0x5b) return parseArray();
  if (c == 0x22) {
    const s = parseString();
    if (s === null) return null;
    const v = new JsonValue();
    v.kind = JsonKind.String;
    v.str = s;
    return v;
  }
  if (c == 0x74 || c == 0x66 || c == 0x6e) return parseLiteral();
  if (c == 0x2d || (c >= 0x30 && c <= 0x39)) return parseNumber();
  return fail("unexpected character '" + String.fromCharCode(c) + "'");
}

function matchWord(w: string): bool {
  const n = <usize>w.length;
  if (end - pos < n) return false;
  for (let i: usize = 0; i < n; i++) if (<u32>load<u8>(pos + i) != <u32>w.charCodeAt(<i32>i)) return false;
  pos += n;
  return true;
}

function parseLiteral(): JsonValue | null {
  const v = new JsonValue();
  if (matchWord("true")) {
    v.kind = JsonKind.Bool;
    v.bool = true;
  } else if (matchWord("false")) {
    v.kind = JsonKind.Bool;
  } else if (matchWord("null")) {
    v.kind = JsonKind.Null;
  } else return fail("invalid literal");
  return v;
}

function parseNumber(): JsonValue | null {
  const start = pos;
  if (load<u8>(pos) == 0x2d) pos++;
  let digits = 0;
  while (pos < end && load<u8>(pos) >= 0x30 && load<u8>(pos) <= 0x39) {
    pos++;
    digits++;
  }
  if (digits == 0) return fail("invalid number");
  if (pos < end && load<u8>(pos) == 0x2e) {
    pos++;
    let frac = 0;
    while (pos < end && load<u8>(pos) >= 0x30 && load<u8>(pos) <= 0x39) {
      pos++;
      frac++;
    }
    if (frac == 0) return fail("invalid number");
  }
  if (pos < end && (load<u8>(pos) | 0x20) == 0x65) {
    pos++;
    if (pos < end && (load<u8>(pos) == 0x2b || load<u8>(pos) == 0x2d)) pos++;
    let e = 0;
    while (pos < end && load<u8>(pos) >= 0x30 && load<u8>(pos) <= 0x39) {
      pos++;
      e++;
    }
    if (e == 0) return fail("invalid number");
  }
  const v = new JsonValue();
  v.kind = JsonKind.Number;
  v.num = parseFloat(String.UTF8.decodeUnsafe(start, pos - start));
  return v;
}

function hex4(): i32 {
  if (end - pos < 4) return -1;
  let v = 0;
  for (let i = 0; i < 4; i++) {
    const c = <i32>load<u8>(pos++);
    let d: i32;
    if (c >= 0x30 && c <= 0x39) d = c - 0x30;
    else if ((c | 0x20) >= 0x61 && (c | 0x20) <= 0x66) d = (c | 0x20) - 0x61 + 10;
    else return -1;
    v = (v << 4) | d;
  }
  return v;
}

function parseString(): string | null {
  pos++; // opening quote
  let out = "";
  let runStart = pos;
  while (true) {
    if (pos >= end) {
      fail("unterminated string");
      return null;
    }
    const c = load<u8>(pos);
    if (c == 0x22) {
      out += String.UTF8.decodeUnsafe(runStart, pos - runStart);
      pos++;
      return out;
    }
    if (c < 0x20) {
      fail("control character in string");
      return null;
    }
    if (c == 0x5c) {
      out += String.UTF8.decodeUnsafe(runStart, pos - runStart);
      pos++;
      if (pos >= end) {
        fail("unterminated escape");
        return null;
      }
      const e = load<u8>(pos++);
      if (e == 0x22) out += '"';
      else if (e == 0x5c) out += "\\";
      else if (e == 0x2f) out += "/";
      else if (e == 0x62) out += "\b";
      else if (e == 0x66) out += "\f";
      else if (e == 0x6e) out += "\n";
      else if (e == 0x72) out += "\r";
      else if (e == 0x74) out += "\t";
      else if (e == 0x75) {
        const u = hex4();
        if (u < 0) {
          fail("invalid \\u escape");
          return null;
        }
        out += String.fromCharCode(u);
      } else {
        fail("invalid escape");
        return null;
      }
      runStart = pos;
      continue;
    }
    pos++;
  }
}

function parseArray(): JsonValue | null {
  if (++depth > MAX_DEPTH) return fail("nesting too deep");
  pos++;
  const v = new JsonValue();
  v.kind = JsonKind.Array;
  skipWs();
  if (pos < end && load<u8>(pos) == 0x5d) {
    pos++;
    depth--;
    return v;
  }
  while (true) {
    const item = parseValue();
    if (item === null) return null;
    v.items.push(item);
    skipWs();
    if (pos >= end) return fail("unterminated array");
    const c = load<u8>(pos++);
    if (c == 0x5d) break;
    if (c != 0x2c) return fail("expected ',' or ']'");
  }
  depth--;
  return v;
}

function parseObject(): JsonValue | null {
  if (++depth > MAX_DEPTH) return fail("nesting too deep");
  pos++;
  const v = new JsonValue();
  v.kind = JsonKind.Object;
  skipWs();
  if (pos < end && load<u8>(pos) == 0x7d) {
    pos++;
    depth--;
    return v;
  }
  while (true) {
    skipWs();
    if (pos >= end || load<u8>(pos) != 0x22) return fail("expected a quoted key");
    const key = parseString();
    if (key === null) return null;
    for (let i = 0; i < v.keys.length; i++) if (v.keys[i] == key) return fail('duplicate key "' + key + '"');
    skipWs();
    if (pos >= end || load<u8>(pos) != 0x3a) return fail("expected ':'");
    pos++;
    const item = parseValue();
    if (item === null) return null;
    v.keys.push(key);
    v.items.push(item);
    skipWs();
    if (pos >= end) return fail("unterminated object");
    const c = load<u8>(pos++);
    if (c == 0x7d) break;
    if (c != 0x2c) return fail("expected ',' or '}'");
  }
  depth--;
  return v;
}
