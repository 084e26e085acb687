// Verdicts of one protocol recognizer over the bytes seen so far, and bounds-checked byte helpers.
// Every helper takes (ptr, len) of the inspected bytes and an offset; reading past len is never
// done — callers check `off + n <= len` (helpers do for themselves) before loading.

/** Definitely not this protocol (structure violated). */
// @ts-ignore: decorator
@inline export const NO: i32 = 0;
/** Consistent so far; more bytes needed to tell. */
// @ts-ignore: decorator
@inline export const MAYBE: i32 = 1;
/** The protocol's structure is confirmed, but its message (and claims) is incomplete. */
// @ts-ignore: decorator
@inline export const LIKELY: i32 = 2;
/** Confirmed; every claim that can be extracted has been. */
// @ts-ignore: decorator
@inline export const YES: i32 = 3;

// @ts-ignore: decorator
@inline export function u8at(p: usize, off: i32): u32 {
  return <u32>load<u8>(p + <usize>off);
}
// @ts-ignore: decorator
@inline export function be16(p: usize, off: i32): u32 {
  return (<u32>load<u8>(p + <usize>off) << 8) | <u32>load<u8>(p + <usize>off + 1);
}
// @ts-ignore: decorator
@inline export function be24(p: usize, off: i32): u32 {
  return (<u32>load<u8>(p + <usize>off) << 16) | (<u32>load<u8>(p + <usize>off + 1) << 8) | <u32>load<u8>(p + <usize>off + 2);
}
// @ts-ignore: decorator
@inline export function be32(p: usize, off: i32): u32 {
  return (be16(p, off) << 16) | be16(p, off + 2);
}
// @ts-ignore: decorator
@inline export function le16(p: usize, off: i32): u32 {
  return <u32>load<u8>(p + <usize>off) | (<u32>load<u8>(p + <usize>off + 1) << 8);
}
// @ts-ignore: decorator
@inline export function le24(p: usize, off: i32): u32 {
  return le16(p, off) | (<u32>load<u8>(p + <usize>off + 2) << 16);
}
// @ts-ignore: decorator
@inline export function le32(p: usize, off: i32): u32 {
  return le16(p, off) | (le16(p, off + 2) << 16);
}

// @ts-ignore: decorator
@inline export function isDigit(c: u32): bool {
  return c - 0x30 < 10;
}
// @ts-ignore: decorator
@inline export function isUpper(c: u32): bool {
  return c - 0x41 < 26;
}
// @ts-ignore: decorator
@inline export function isLower(c: u32): bool {
  return c - 0x61 < 26;
}
// @ts-ignore: decorator
@inline export function isAlpha(c: u32): bool {
  return ((c | 0x20) - 0x61) < 26;
}
/** Visible ASCII, no space (0x21–0x7e). */
// @ts-ignore: decorator
@inline export function isVisible(c: u32): bool {
  return c - 0x21 < 0x5e;
}
/** Printable ASCII incl. space and tab. */
// @ts-ignore: decorator
@inline export function isPrintable(c: u32): bool {
  return c - 0x20 < 0x5f || c == 0x09;
}
// @ts-ignore: decorator
@inline export function toLower(c: u32): u32 {
  return isUpper(c) ? c | 0x20 : c;
}

/** HTTP token character (RFC 9110 tchar). */
export function isTchar(c: u32): bool {
  if (isAlpha(c) || isDigit(c)) return true;
  // ! # $ % & ' * + - . ^ _ ` | ~
  return c == 0x21 || (c >= 0x23 && c <= 0x27) || c == 0x2a || c == 0x2b || c == 0x2d || c == 0x2e ||
    c == 0x5e || c == 0x5f || c == 0x60 || c == 0x7c || c == 0x7e;
}

/** Offset of the first `b` in [from, len), or -1. */
export function indexOfByte(p: usize, len: i32, from: i32, b: u32): i32 {
  for (let i = from; i < len; i++) if (u8at(p, i) == b) return i;
  return -1;
}

/** Whether bytes [off, off+lit.length) equal the ASCII literal (case-sensitive); false if short. */
export function matchAscii(p: usize, len: i32, off: i32, lit: string): bool {
  const n = lit.length;
  if (off < 0 || off + n > len) return false;
  for (let i = 0; i < n; i++) if (u8at(p, off + i) != <u32>lit.charCodeAt(i)) return false;
  return true;
}

/** Like matchAscii, ASCII case-insensitively (`lit` must be lowercase). */
export function matchAsciiNoCase(p: usize, len: i32, off: i32, lit: string): bool {
  const n = lit.length;
  if (off < 0 || off + n > len) return false;
  for (let i = 0; i < n; i++) if (toLower(u8at(p, off + i)) != <u32>lit.charCodeAt(i)) return false;
  return true;
}

/**
 * Whether the available bytes [off, len) are a prefix of the literal (or contain it whole).
 * Lets recognizers say MAYBE on a partial magic and NO as soon as one byte differs.
 */
export function prefixOfAscii(p: usize, len: i32, off: i32, lit: string): bool {
  const n = lit.length;
  for (let i = 0; i < n && off + i < len; i++) if (u8at(p, off + i) != <u32>lit.charCodeAt(i)) return false;
  return true;
}

/** Case-insensitive search of a lowercase literal in [from, to). Returns the offset or -1. */
export function findNoCase(p: usize, from: i32, to: i32, lit: string): i32 {
  const n = lit.length;
  for (let i = from; i + n <= to; i++) if (matchAsciiNoCase(p, to, i, lit)) return i;
  return -1;
}

/** Lowercases bytes [off, off+n) in place. */
export function lowercaseInPlace(p: usize, off: i32, n: i32): void {
  for (let i = 0; i < n; i++) {
    const a = p + <usize>(off + i);
    const c = <u32>load<u8>(a);
    if (isUpper(c)) store<u8>(a, <u8>(c | 0x20));
  }
}

/**
 * Parses an unsigned decimal in [off, end) with at most maxDigits digits. Returns the value, or -1
 * when empty, non-digit, or too long. (Values stay below 2^31 for maxDigits ≤ 9.)
 */
export function parseDecimal(p: usize, off: i32, end: i32, maxDigits: i32): i64 {
  const n = end - off;
  if (n <= 0 || n > maxDigits) return -1;
  let v: i64 = 0;
  for (let i = off; i < end; i++) {
    const c = u8at(p, i);
    if (!isDigit(c)) return -1;
    v = v * 10 + <i64>(c - 0x30);
  }
  return v;
}

/** Verdict of the best of two recognizers (the more certain one wins). */
// @ts-ignore: decorator
@inline export function best(a: i32, b: i32): i32 {
  return a > b ? a : b;
}
