// Line-oriented protocols: SSH identification strings (either side) and the greetings of
// server-first mail and file-transfer protocols (SMTP, FTP, IMAP, POP3), plus the client's first
// command that disambiguates them. RFC 4253 §4.2, RFC 5321 §4.2, RFC 959 §4.2, RFC 9051 §7.1,
// RFC 1939 §4.
import { isAlpha, isDigit, isPrintable, LIKELY, matchAscii, matchAsciiNoCase, MAYBE, NO, u8at, YES } from "./scan";

// @ts-ignore: decorator
@inline const MAX_LINE: i32 = 1024;

/** Offset of the LF ending the line that starts at s, or -1 (none within MAX_LINE / len). */
function lineEnd(p: usize, len: i32, s: i32): i32 {
  for (let i = s; i < len && i - s <= MAX_LINE; i++) if (u8at(p, i) == 0x0a) return i;
  return -1;
}

// ---------------------------------------------------------------------------------------------
// SSH: "SSH-protoversion-softwareversion [SP comments] CR LF". A server may send other lines
// first (`allowPreamble`); a client may not.

export function parseSshBanner(p: usize, len: i32, allowPreamble: bool): i32 {
  let s = 0;
  for (let lines = 0; ; lines++) {
    if (s >= len) return MAYBE;
    if (matchAscii(p, len, s, "SSH-") || (len - s < 4 && prefixMatches(p, len, s, "SSH-"))) break;
    if (!allowPreamble || lines >= 16) return NO;
    const lf = lineEnd(p, len, s);
    if (lf < 0) return len - s > MAX_LINE ? NO : MAYBE;
    for (let i = s; i < lf; i++) {
      const c = u8at(p, i);
      if (!isPrintable(c) && c != 0x0d && c < 0x80) return NO;
    }
    s = lf + 1;
  }
  if (len - s < 4) return MAYBE;
  let i = s + 4;
  // protoversion: "2.0", "1.99" (compatibility) or "1.x"
  const vs = i;
  while (i < len && (isDigit(u8at(p, i)) || u8at(p, i) == 0x2e)) i++;
  if (i >= len) return i - vs > 5 ? NO : MAYBE;
  if (u8at(p, i) != 0x2d) return NO;
  const vlen = i - vs;
  if (!((vlen == 3 && matchAscii(p, len, vs, "2.0")) || (vlen == 4 && matchAscii(p, len, vs, "1.99")) ||
        (vlen == 3 && matchAscii(p, len, vs, "1.5")))) return NO;
  i++;
  const sw = i;
  while (i < len) {
    const c = u8at(p, i);
    if (c == 0x20 || c == 0x0d || c == 0x0a) break;
    if (c < 0x21 || c > 0x7e) return NO;
    i++;
  }
  if (i - s > 255) return NO;
  if (i >= len) return i > sw ? LIKELY : MAYBE;
  if (i == sw) return NO;
  const lf = lineEnd(p, len, i);
  if (lf < 0) return i - s > 255 ? NO : LIKELY;
  if (lf - s > 255) return NO;
  for (let j = i; j < lf; j++) {
    const c = u8at(p, j);
    if (!isPrintable(c) && !(c == 0x0d && j == lf - 1)) return NO;
  }
  return YES;
}

function prefixMatches(p: usize, len: i32, s: i32, lit: string): bool {
  for (let i = 0; i < lit.length && s + i < len; i++) if (u8at(p, s + i) != <u32>lit.charCodeAt(i)) return false;
  return true;
}

// ---------------------------------------------------------------------------------------------
// Greetings. Result codes for the server-first recognizer.

// @ts-ignore: decorator
@inline export const GREET_SMTP: i32 = 10;
// @ts-ignore: decorator
@inline export const GREET_FTP: i32 = 11;
/** "220" naming neither SMTP nor FTP: the client's first command decides. */
// @ts-ignore: decorator
@inline export const GREET_SMTP_OR_FTP: i32 = 12;
// @ts-ignore: decorator
@inline export const GREET_IMAP: i32 = 13;
// @ts-ignore: decorator
@inline export const GREET_POP3: i32 = 14;
/** Bare "+OK": POP3 unless the client's first command says otherwise. */
// @ts-ignore: decorator
@inline export const GREET_POP3_BARE: i32 = 15;

/** Whether the text line [s, e) is printable (UTF-8 bytes allowed). */
function printableLine(p: usize, s: i32, e: i32): bool {
  for (let i = s; i < e; i++) {
    const c = u8at(p, i);
    if (!isPrintable(c) && c < 0x80) return false;
  }
  return true;
}

/**
 * Classifies the server's greeting: GREET_* when complete, MAYBE when incomplete, NO otherwise.
 * SMTP and FTP greetings are "220" replies, possibly multi-line: "220-…" lines, then "220 …"
 * (RFC 959 lets the lines in between carry no code). `final`: no more bytes will come — a
 * multi-line greeting cut short is judged by the lines seen.
 */
export function classifyGreeting(p: usize, len: i32, final: bool = false): i32 {
  if (len < 1) return MAYBE;
  const c0 = u8at(p, 0);
  if (c0 == 0x2a) return untaggedImap(p, len);
  if (c0 == 0x2b) return pop3Ok(p, len);
  if (c0 != 0x32) return NO; // '2'
  let s = 0;
  let smtp = false;
  let ftp = false;
  for (let lines = 0; lines < 64; lines++) {
    const coded = s + 3 <= len && u8at(p, s) == 0x32 && u8at(p, s + 1) == 0x32 && u8at(p, s + 2) == 0x30;
    if (lines == 0) {
      // The first line must be "220": check what is there so far.
      for (let i = 0; i < 3 && s + i < len; i++) if (u8at(p, s + i) != (i == 2 ? <u32>0x30 : <u32>0x32)) return NO;
    }
    const lf = lineEnd(p, len, s);
    if (lf < 0) {
      if (len - s > MAX_LINE) return NO;
      if (lines == 0 && s + 3 < len) {
        const sep = u8at(p, s + 3);
        if (sep != 0x20 && sep != 0x2d && sep != 0x0d) return NO;
      }
      if (final && lines > 0) return smtp && !ftp ? GREET_SMTP : ftp && !smtp ? GREET_FTP : GREET_SMTP_OR_FTP;
      return MAYBE;
    }
    let e = lf;
    if (e > s && u8at(p, e - 1) == 0x0d) e--;
    if (!printableLine(p, s, e)) return NO;
    // A coded line ends the reply unless its code is followed by '-'.
    let more = true;
    if (coded) {
      more = e > s + 3 && u8at(p, s + 3) == 0x2d;
      if (e > s + 3 && !more && u8at(p, s + 3) != 0x20) return NO;
    } else if (lines == 0) return NO;
    scanWords(p, coded ? s + 4 : s, e);
    smtp = smtp || sawSmtp;
    ftp = ftp || sawFtp;
    s = lf + 1;
    if (!more) {
      if (smtp && !ftp) return GREET_SMTP;
      if (ftp && !smtp) return GREET_FTP;
      return GREET_SMTP_OR_FTP;
    }
  }
  return NO;
}

let sawSmtp = false;
let sawFtp = false;

/** Looks for the words "SMTP"/"ESMTP" and for words containing "FTP" (ProFTPD, vsFTPd, …). */
function scanWords(p: usize, s: i32, e: i32): void {
  sawSmtp = false;
  sawFtp = false;
  let i = s;
  while (i < e) {
    while (i < e && !isAlpha(u8at(p, i))) i++;
    const w = i;
    while (i < e && isAlpha(u8at(p, i))) i++;
    const n = i - w;
    if ((n == 4 && matchAsciiNoCase(p, e, w, "smtp")) || (n == 5 && matchAsciiNoCase(p, e, w, "esmtp"))) sawSmtp = true;
    for (let j = w; j + 3 <= i; j++) if (matchAsciiNoCase(p, e, j, "ftp")) sawFtp = true;
  }
}

/** "* OK …", "* PREAUTH …" or "* BYE …" — IMAP's untagged greeting. */
function untaggedImap(p: usize, len: i32): i32 {
  const lf = lineEnd(p, len, 0);
  const e0 = lf < 0 ? len : lf;
  if (!(prefixMatches(p, e0, 0, "* OK") || prefixMatches(p, e0, 0, "* PREAUTH") || prefixMatches(p, e0, 0, "* BYE"))) return NO;
  if (lf < 0) return len > MAX_LINE ? NO : MAYBE;
  let e = lf;
  if (e > 0 && u8at(p, e - 1) == 0x0d) e--;
  if (!printableLine(p, 0, e)) return NO;
  const kw = matchAscii(p, e, 0, "* OK") ? 4 : (matchAscii(p, e, 0, "* BYE") ? 5 : 9);
  if (e < kw || (e > kw && u8at(p, kw) != 0x20)) return NO;
  return GREET_IMAP;
}

/** "+OK …" — POP3's greeting. */
function pop3Ok(p: usize, len: i32): i32 {
  if (!prefixMatches(p, len, 0, "+OK")) return NO;
  const lf = lineEnd(p, len, 0);
  if (lf < 0) return len > MAX_LINE ? NO : MAYBE;
  let e = lf;
  if (e > 0 && u8at(p, e - 1) == 0x0d) e--;
  if (e < 3 || !printableLine(p, 0, e)) return NO;
  if (e == 3) return GREET_POP3_BARE;
  if (u8at(p, 3) != 0x20) return NO;
  return e > 4 ? GREET_POP3 : GREET_POP3_BARE;
}

// ---------------------------------------------------------------------------------------------
// The client's first command after a greeting.

/** Bits of classifyFirstCommand: which protocols the client's first command belongs to. */
// @ts-ignore: decorator
@inline export const CMD_SMTP: i32 = 1;
// @ts-ignore: decorator
@inline export const CMD_FTP: i32 = 2;
// @ts-ignore: decorator
@inline export const CMD_POP3: i32 = 4;
// @ts-ignore: decorator
@inline export const CMD_IMAP: i32 = 8;
/** The line is not complete yet. */
// @ts-ignore: decorator
@inline export const CMD_INCOMPLETE: i32 = -1;

const SMTP_VERBS: StaticArray<string> = ["ehlo", "helo", "mail", "rcpt", "lhlo", "starttls"];
const FTP_VERBS: StaticArray<string> = ["user", "pass", "auth", "feat", "syst", "opts", "pbsz", "prot", "clnt", "host", "acct"];
const POP3_VERBS: StaticArray<string> = ["user", "pass", "apop", "capa", "stls", "auth", "uidl", "stat", "list", "retr"];
const IMAP_VERBS: StaticArray<string> = ["capability", "login", "authenticate", "starttls", "id", "noop", "select", "logout", "enable"];

function verbIn(p: usize, s: i32, e: i32, verbs: StaticArray<string>): bool {
  for (let i = 0; i < verbs.length; i++) {
    const v = unchecked(verbs[i]);
    if (e - s == v.length && matchAsciiNoCase(p, e, s, v)) return true;
  }
  return false;
}

/** Classifies the client's first line: CMD_* bits (0 when none), CMD_INCOMPLETE while partial. */
export function classifyFirstCommand(p: usize, len: i32): i32 {
  const lf = lineEnd(p, len, 0);
  if (lf < 0) return len > MAX_LINE ? 0 : CMD_INCOMPLETE;
  let e = lf;
  if (e > 0 && u8at(p, e - 1) == 0x0d) e--;
  if (!printableLine(p, 0, e)) return 0;
  let w = 0;
  while (w < e && isAlpha(u8at(p, w))) w++;
  let bits = 0;
  if (w > 0 && (w == e || u8at(p, w) == 0x20)) {
    if (verbIn(p, 0, w, SMTP_VERBS)) bits |= CMD_SMTP;
    if (verbIn(p, 0, w, FTP_VERBS)) bits |= CMD_FTP;
    if (verbIn(p, 0, w, POP3_VERBS)) bits |= CMD_POP3;
  }
  // IMAP: "<tag> COMMAND"
  let t = 0;
  while (t < e && isTagChar(u8at(p, t))) t++;
  if (t > 0 && t < e && u8at(p, t) == 0x20) {
    let c1 = t + 1;
    while (c1 < e && isAlpha(u8at(p, c1))) c1++;
    if ((c1 == e || u8at(p, c1) == 0x20) && verbIn(p, t + 1, c1, IMAP_VERBS)) bits |= CMD_IMAP;
  }
  return bits;
}

/** IMAP tag characters: letters, digits and a few marks (no space, '(', '{', '*', '%', '+'). */
function isTagChar(c: u32): bool {
  return isAlpha(c) || isDigit(c) || c == 0x2e || c == 0x2d || c == 0x5f || c == 0x3a || c == 0x2f || c == 0x21 || c == 0x40 || c == 0x24 || c == 0x7e;
}
