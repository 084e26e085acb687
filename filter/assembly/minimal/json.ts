// Just enough JSON to read flat string fields of a plugin configuration (configuration time only).

/** The string value of top-level `"key": "value"`, or null. Handles \" and \\ escapes. */
export function jsonStringField(text: string, key: string): string | null {
  const needle = "\"" + key + "\"";
  let i = text.indexOf(needle);
  while (i >= 0) {
    let j = i + needle.length;
    while (j < text.length && isSpace(text.charCodeAt(j))) j++;
    if (j < text.length && text.charCodeAt(j) == 58 /* : */) {
      j++;
      while (j < text.length && isSpace(text.charCodeAt(j))) j++;
      if (j >= text.length || text.charCodeAt(j) != 34 /* " */) return null;
      let out = "";
      for (let k = j + 1; k < text.length; k++) {
        const c = text.charCodeAt(k);
        if (c == 34) return out;
        if (c == 92 /* \ */ && k + 1 < text.length) { k++; out += text.charAt(k); continue; }
        out += text.charAt(k);
      }
      return null;
    }
    i = text.indexOf(needle, i + 1);
  }
  return null;
}

function isSpace(c: i32): bool { return c == 32 || c == 9 || c == 10 || c == 13; }
