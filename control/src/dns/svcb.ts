// The public names an HTTPS (type 65) or SVCB (type 64) record announces for Encrypted Client
// Hello: SVCB rdata (RFC 9460 §2.2) → the `ech` SvcParam (key 5) → an ECHConfigList → each
// ECHConfig of version 0xfe0d → its public_name (RFC 9849 §4). A client that offers ECH to such a
// server sends the public name as its outer SNI, so the filter can narrow an ECH ClientHello's
// possible destinations to the names whose answers named that public name (issue #14).
//
// Evidence parsing: every length is checked against its container, nothing is read past the
// record's rdata, the output is bounded, and no input throws. A record whose structure is broken
// anywhere yields no names at all (a partial parse is never evidence).

/** SvcParamKey of the ECHConfigList (RFC 9460 §14.3.2). */
export const SVC_PARAM_ECH = 5;
/** ECHConfig.version of RFC 9849. Other versions are skipped by their length. */
export const ECH_VERSION = 0xfe0d;
/** Public names kept per record: a record naming more is unusual, and the filter's table is bounded. */
export const MAX_ECH_PUBLIC_NAMES = 4;
/** Longest public name kept (a DNS name in text form). */
const MAX_PUBLIC_NAME_LEN = 253;

const u16 = (b: Uint8Array, o: number) => (b[o]! << 8) | b[o + 1]!;

/**
 * Appends to `out` (deduplicated, at most MAX_ECH_PUBLIC_NAMES in all) the public names of the
 * ECHConfigs in the SVCB/HTTPS rdata `buf[off, off + len)`. Returns false when the rdata is
 * malformed (then `out` is left as it was). ServiceMode records only: an AliasMode record
 * (priority 0) carries no parameters.
 */
export function echPublicNames(buf: Uint8Array, off: number, len: number, out: string[]): boolean {
  const end = off + len;
  if (off < 0 || len < 3 || end > buf.length) return false;
  const priority = u16(buf, off);
  let pos = skipUncompressedName(buf, off + 2, end);
  if (pos < 0) return false;
  if (priority === 0) return pos === end;
  const before = out.length;
  let lastKey = -1;
  while (pos < end) {
    if (pos + 4 > end) return undo(out, before);
    const key = u16(buf, pos);
    const valueLen = u16(buf, pos + 2);
    const valueOff = pos + 4;
    // RFC 9460 §2.2: keys strictly increasing; a value never overruns the rdata.
    if (key <= lastKey || valueOff + valueLen > end) return undo(out, before);
    if (key === SVC_PARAM_ECH && !echConfigListNames(buf, valueOff, valueLen, out)) return undo(out, before);
    lastKey = key;
    pos = valueOff + valueLen;
  }
  return true;
}

function undo(out: string[], length: number): false {
  out.length = length;
  return false;
}

/** TargetName: an uncompressed wire name (RFC 9460 §2.2 forbids compression). Offset past it, or -1. */
function skipUncompressedName(buf: Uint8Array, pos: number, end: number): number {
  let wireLen = 1;
  for (;;) {
    if (pos >= end) return -1;
    const label = buf[pos]!;
    if (label === 0) return pos + 1;
    if (label > 63) return -1;
    wireLen += label + 1;
    if (wireLen > 255 || pos + 1 + label > end) return -1;
    pos += 1 + label;
  }
}

/** ECHConfigList: `ECHConfig echConfigs<4..2^16-1>` (a u16 length that fills the value exactly). */
function echConfigListNames(buf: Uint8Array, off: number, len: number, out: string[]): boolean {
  if (len < 2 || u16(buf, off) !== len - 2) return false;
  let pos = off + 2;
  const end = off + len;
  if (pos === end) return false; // at least one config
  while (pos < end) {
    if (pos + 4 > end) return false;
    const version = u16(buf, pos);
    const contentsLen = u16(buf, pos + 2);
    const contents = pos + 4;
    if (contents + contentsLen > end) return false;
    if (version === ECH_VERSION && !configContentsName(buf, contents, contentsLen, out)) return false;
    pos = contents + contentsLen;
  }
  return true;
}

/**
 * ECHConfigContents: HpkeKeyConfig { config_id u8, kem_id u16, public_key<1..2^16-1>,
 * cipher_suites<4..2^16-4> (4 bytes each) }, maximum_name_length u8, public_name<1..255>,
 * extensions<0..2^16-1>; the fields fill the contents exactly.
 */
function configContentsName(buf: Uint8Array, off: number, len: number, out: string[]): boolean {
  const end = off + len;
  let pos = off + 3; // config_id, kem_id
  if (pos + 2 > end) return false;
  const keyLen = u16(buf, pos);
  pos += 2 + keyLen;
  if (keyLen === 0 || pos + 2 > end) return false;
  const suitesLen = u16(buf, pos);
  pos += 2 + suitesLen;
  if (suitesLen < 4 || suitesLen % 4 !== 0 || pos + 2 > end) return false;
  pos += 1; // maximum_name_length
  const nameLen = buf[pos]!;
  const nameOff = pos + 1;
  pos = nameOff + nameLen;
  if (nameLen === 0 || pos + 2 > end) return false;
  const extensionsLen = u16(buf, pos);
  if (pos + 2 + extensionsLen !== end) return false;
  const name = hostName(buf, nameOff, nameLen);
  if (name === null) return false;
  if (!out.includes(name) && out.length < MAX_ECH_PUBLIC_NAMES) out.push(name);
  return true;
}

/**
 * The public_name as a lowercase host name, or null when it is not one (RFC 9849 §4: a valid
 * DNS name, not an IP literal): letters, digits and hyphens in dot-separated labels of 1..63 bytes,
 * no trailing dot, a last label that is not all digits.
 */
export function hostName(buf: Uint8Array, off: number, len: number): string | null {
  if (len === 0 || len > MAX_PUBLIC_NAME_LEN) return null;
  let text = "";
  let labelLen = 0;
  let labelDigitsOnly = true;
  for (let i = off; i < off + len; i++) {
    let c = buf[i]!;
    if (c === 0x2e) {
      if (labelLen === 0) return null;
      labelLen = 0;
      labelDigitsOnly = true;
      text += ".";
      continue;
    }
    if (c >= 0x41 && c <= 0x5a) c += 0x20;
    const digit = c >= 0x30 && c <= 0x39;
    if (!digit && !(c >= 0x61 && c <= 0x7a) && c !== 0x2d) return null;
    if (!digit) labelDigitsOnly = false;
    if (++labelLen > 63) return null;
    text += String.fromCharCode(c);
  }
  if (labelLen === 0 || labelDigitsOnly) return null;
  return text;
}
