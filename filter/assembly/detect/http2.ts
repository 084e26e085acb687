// HTTP/2 with prior knowledge (h2c): the connection preface, then frames up to the end of the first
// request's header block (HEADERS + CONTINUATION), whose :authority (or host) is the claim.
// RFC 9113 §3.4 (preface), §4.1 (frame layout), §6.2/§6.10 (HEADERS, CONTINUATION), §8.3.1.
// Incremental: each frame is examined once, when it is complete. CONTINUATION fragments are moved
// next to the HEADERS fragment in the detector's own copy of the bytes (never the bytes forwarded),
// so the block is decoded in one piece. Anything the server would reject or might read
// differently makes the claim unverifiable (H2_* flags), never absent.
import { HeaderBlockDecoder, HPACK_CONFLICT, HPACK_MALFORMED, HPACK_VALUE_BAD } from "./hpack";
import { be16, be24, isAlpha, isDigit, LIKELY, lowercaseInPlace, MAYBE, NO, parseDecimal, prefixOfAscii, toLower, u8at, YES } from "./scan";

const PREFACE = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
// @ts-ignore: decorator
@inline const PREFACE_LEN: i32 = 24;
// @ts-ignore: decorator
@inline const FRAME_HEADER: i32 = 9;
/** SETTINGS_MAX_FRAME_SIZE before the server's SETTINGS (RFC 9113 §6.5.2): a client may not exceed it. */
// @ts-ignore: decorator
@inline const MAX_FRAME: i32 = 16384;

// @ts-ignore: decorator
@inline const T_HEADERS: u32 = 1;
// @ts-ignore: decorator
@inline const T_PRIORITY: u32 = 2;
// @ts-ignore: decorator
@inline const T_SETTINGS: u32 = 4;
// @ts-ignore: decorator
@inline const T_PING: u32 = 6;
// @ts-ignore: decorator
@inline const T_WINDOW_UPDATE: u32 = 8;
// @ts-ignore: decorator
@inline const T_CONTINUATION: u32 = 9;
/** Frame types below this are defined by RFC 9113; others are extensions a receiver ignores (§4.1). */
// @ts-ignore: decorator
@inline const T_FIRST_EXTENSION: u32 = 10;
// @ts-ignore: decorator
@inline const F_END_HEADERS: u32 = 0x4;
// @ts-ignore: decorator
@inline const F_PADDED: u32 = 0x8;
// @ts-ignore: decorator
@inline const F_PRIORITY: u32 = 0x20;
// @ts-ignore: decorator
@inline const F_ACK: u32 = 0x1;

/** h2Flags bits. */
/** A frame sequence or header block the server would reject (or might read differently). */
// @ts-ignore: decorator
@inline export const H2_MALFORMED: i32 = 1;
/** The first header block had not ended when the bytes did (deadline or byte limit). */
// @ts-ignore: decorator
@inline export const H2_INCOMPLETE: i32 = 2;
/** :authority or host twice, :authority ≠ host, or a pseudo-header after a regular field. */
// @ts-ignore: decorator
@inline export const H2_CONFLICT: i32 = 4;
/** :authority / host is not "host[:port]" (userinfo, empty, too long, bad characters). */
// @ts-ignore: decorator
@inline export const H2_AUTHORITY_MALFORMED: i32 = 8;
/** Flags that leave the request's destination claim unverifiable. */
// @ts-ignore: decorator
@inline export const H2_CLAIM_BROKEN: i32 = H2_MALFORMED | H2_INCOMPLETE | H2_CONFLICT | H2_AUTHORITY_MALFORMED;

// @ts-ignore: decorator
@inline const S_PREFACE: i32 = 0;
// @ts-ignore: decorator
@inline const S_FRAMES: i32 = 1;
// @ts-ignore: decorator
@inline const S_CONTINUATION: i32 = 2;
// @ts-ignore: decorator
@inline const S_DONE: i32 = 3;

export class Http2Parser {
  private stage: i32 = S_PREFACE;
  /** Offset of the next frame header not yet examined. */
  private pos: i32 = 0;
  private settingsSeen: bool = false;
  private stream: u32 = 0;
  /** The first header block, gathered at [blockStart, blockEnd) of the buffer. */
  private blockStart: i32 = 0;
  private blockEnd: i32 = 0;
  readonly block: HeaderBlockDecoder = new HeaderBlockDecoder();
  flags: i32 = 0;
  /** The claim: host part of :authority (else host), lowercased, brackets stripped; len 0 = none. */
  claimOff: i32 = 0;
  claimLen: i32 = 0;
  claimPort: i32 = -1;
  /** The claim's bytes live in this buffer (the decoded :authority or host value). */
  claimBuffer: usize = 0;

  reset(): void {
    this.stage = S_PREFACE;
    this.pos = 0;
    this.settingsSeen = false;
    this.stream = 0;
    this.blockStart = 0;
    this.blockEnd = 0;
    this.block.reset();
    this.flags = 0;
    this.claimOff = 0;
    this.claimLen = 0;
    this.claimPort = -1;
    this.claimBuffer = 0;
  }

  /** Whether the first header block was read to its end (cleanly or not). */
  complete(): bool {
    return this.stage == S_DONE;
  }

  /** Once complete and clean: the offset of the first frame after the first request's header block. */
  framesEnd(): i32 {
    return this.pos;
  }

  /** The first request's stream id. */
  firstStream(): u32 {
    return this.stream;
  }

  /**
   * Examines new complete frames in [p, p+len) (the buffer may be rewritten inside the header
   * block). NO: not HTTP/2; MAYBE: preface incomplete; LIKELY: HTTP/2, first block not yet ended
   * (at `final`, flagged H2_INCOMPLETE); YES: the first block was read.
   */
  update(p: usize, len: i32, final: bool): i32 {
    if (this.stage == S_PREFACE) {
      if (!prefixOfAscii(p, len, 0, PREFACE)) return NO;
      if (len < PREFACE_LEN) return MAYBE;
      this.stage = S_FRAMES;
      this.pos = PREFACE_LEN;
    }
    while (this.stage != S_DONE && this.pos + FRAME_HEADER <= len) {
      const size = <i32>be24(p, this.pos);
      if (size > MAX_FRAME) {
        this.fail(H2_MALFORMED);
        break;
      }
      const next = this.pos + FRAME_HEADER + size;
      if (next > len) break;
      this.frame(p, this.pos, size);
      this.pos = next;
    }
    if (this.stage == S_DONE) return YES;
    if (final) this.flags |= H2_INCOMPLETE;
    return LIKELY;
  }

  private frame(p: usize, at: i32, size: i32): void {
    const type = u8at(p, at + 3);
    const flags = u8at(p, at + 4);
    const stream = (be16(p, at + 5) << 16 | be16(p, at + 7)) & 0x7fffffff;
    const payload = at + FRAME_HEADER;
    if (this.stage == S_CONTINUATION) {
      if (type != T_CONTINUATION || stream != this.stream) {
        this.fail(H2_MALFORMED);
        return;
      }
      memory.copy(p + <usize>this.blockEnd, p + <usize>payload, <usize>size);
      this.blockEnd += size;
      if ((flags & F_END_HEADERS) != 0) this.finishBlock(p);
      return;
    }
    // The client preface is the magic followed by a SETTINGS frame (RFC 9113 §3.4).
    if (!this.settingsSeen && type != T_SETTINGS) {
      this.fail(H2_MALFORMED);
      return;
    }
    if (type == T_SETTINGS) {
      if (stream != 0 || size % 6 != 0 || ((flags & F_ACK) != 0 && size != 0)) this.fail(H2_MALFORMED);
      this.settingsSeen = true;
    } else if (type == T_WINDOW_UPDATE) {
      if (size != 4) this.fail(H2_MALFORMED);
    } else if (type == T_PRIORITY) {
      if (size != 5 || stream == 0) this.fail(H2_MALFORMED);
    } else if (type == T_PING) {
      if (size != 8 || stream != 0) this.fail(H2_MALFORMED);
    } else if (type == T_HEADERS) {
      this.headers(p, payload, size, flags, stream);
    } else if (type < T_FIRST_EXTENSION) {
      // DATA, RST_STREAM, PUSH_PROMISE, GOAWAY or CONTINUATION before any request: not a request.
      this.fail(H2_MALFORMED);
    }
  }

  /** The first HEADERS frame: strips padding and priority, then waits for END_HEADERS. */
  private headers(p: usize, payload: i32, size: i32, flags: u32, stream: u32): void {
    if (stream == 0 || (stream & 1) == 0) {
      this.fail(H2_MALFORMED); // requests travel on odd, client-initiated streams
      return;
    }
    let start = payload;
    let end = payload + size;
    if ((flags & F_PADDED) != 0) {
      if (size < 1) {
        this.fail(H2_MALFORMED);
        return;
      }
      const pad = <i32>u8at(p, start);
      start++;
      if (pad > end - start) {
        this.fail(H2_MALFORMED);
        return;
      }
      end -= pad;
    }
    if ((flags & F_PRIORITY) != 0) {
      start += 5;
      if (start > end) {
        this.fail(H2_MALFORMED);
        return;
      }
    }
    this.stream = stream;
    this.blockStart = start;
    this.blockEnd = end;
    if ((flags & F_END_HEADERS) != 0) this.finishBlock(p);
    else this.stage = S_CONTINUATION;
  }

  private finishBlock(p: usize): void {
    const r = this.block.decode(p, this.blockStart, this.blockEnd);
    if ((r & HPACK_MALFORMED) != 0) this.flags |= H2_MALFORMED;
    if ((r & HPACK_CONFLICT) != 0) this.flags |= H2_CONFLICT;
    if ((r & HPACK_VALUE_BAD) != 0) this.flags |= H2_AUTHORITY_MALFORMED;
    this.stage = S_DONE;
    if ((this.flags & H2_CLAIM_BROKEN) == 0) this.chooseClaim();
  }

  /** :authority, else host (RFC 9113 §8.3.1); both present must name the same authority. */
  private chooseClaim(): void {
    const flag = requestAuthority(this.block, AUTHORITY);
    if (flag != 0) {
      this.flags |= flag;
      return;
    }
    this.claimBuffer = AUTHORITY.buffer;
    this.claimOff = AUTHORITY.off;
    this.claimLen = AUTHORITY.len;
    this.claimPort = AUTHORITY.port;
  }

  private fail(flag: i32): void {
    this.flags |= flag;
    this.stage = S_DONE;
  }
}

/** Where a request's authority is: host part [off, off+len) of `buffer`, lowercased; len 0 = none. */
export class Authority {
  buffer: usize = 0;
  off: i32 = 0;
  len: i32 = 0;
  port: i32 = -1;
}

const AUTHORITY = new Authority();

/**
 * The authority of a decoded request block: :authority, else host (RFC 9113 §8.3.1), into `out`.
 * Returns 0, or H2_CONFLICT (both, naming different authorities) / H2_AUTHORITY_MALFORMED (not
 * "host[:port]"). Neither field: 0 with out.len 0.
 */
export function requestAuthority(b: HeaderBlockDecoder, out: Authority): i32 {
  out.len = 0;
  out.port = -1;
  const auth = changetype<usize>(b.authority);
  const host = changetype<usize>(b.host);
  if (b.authorityLen > 0 && b.hostLen > 0 && !sameNoCase(auth, b.authorityLen, host, b.hostLen)) return H2_CONFLICT;
  const buf = b.authorityLen > 0 ? auth : host;
  const n = b.authorityLen > 0 ? b.authorityLen : b.hostLen;
  if (n <= 0) return 0;
  if (!splitAuthority(buf, n, out)) {
    out.len = 0;
    return H2_AUTHORITY_MALFORMED;
  }
  out.buffer = buf;
  lowercaseInPlace(buf, out.off, out.len);
  return 0;
}

/** "name[:port]" or "[v6][:port]" (no userinfo, RFC 9113 §8.3.1) into out's off/len/port. */
function splitAuthority(p: usize, n: i32, out: Authority): bool {
  let hostStart = 0;
  let hostEnd = n;
  let portStart = -1;
  if (u8at(p, 0) == 0x5b) { // '['
    let close = -1;
    for (let i = 1; i < n; i++) {
      const c = u8at(p, i);
      if (c == 0x5d) { close = i; break; }
      if (!(isDigit(c) || ((c | 0x20) - 0x61) < 6 || c == 0x3a || c == 0x2e)) return false;
    }
    if (close <= 1) return false;
    hostStart = 1;
    hostEnd = close;
    if (close + 1 < n) {
      if (u8at(p, close + 1) != 0x3a) return false;
      portStart = close + 2;
    }
  } else {
    for (let i = 0; i < n; i++) {
      const c = u8at(p, i);
      if (c == 0x3a) { hostEnd = i; portStart = i + 1; break; }
      if (!(isAlpha(c) || isDigit(c) || c == 0x2d || c == 0x2e || c == 0x5f)) return false;
    }
  }
  if (hostEnd <= hostStart) return false;
  let port = -1;
  if (portStart >= 0) {
    const v = parseDecimal(p, portStart, n, 5);
    if (v < 0 || v > 65535) return false;
    port = <i32>v;
  }
  out.off = hostStart;
  out.len = hostEnd - hostStart;
  out.port = port;
  return true;
}

function sameNoCase(a: usize, an: i32, b: usize, bn: i32): bool {
  if (an != bn) return false;
  for (let i = 0; i < an; i++) if (toLower(u8at(a, i)) != toLower(u8at(b, i))) return false;
  return true;
}

/** Most server-preface bytes the filter holds before a verdict (SETTINGS + WINDOW_UPDATE fit many times over). */
// @ts-ignore: decorator
@inline export const H2_SERVER_PREFACE_HOLD: i32 = 512;

/**
 * Whether `len` bytes at `p` are, so far, only an HTTP/2 server's connection preface (RFC 9113
 * §3.4: a SETTINGS frame first, then connection-level frames): non-ACK SETTINGS (length a multiple
 * of 6) and WINDOW_UPDATE (length 4), all on stream 0; the last frame may be incomplete. Such bytes
 * carry no response: a filter may hold them while the client's first request is still coming.
 */
export function h2ServerPrefaceOnly(p: usize, len: i32): bool {
  if (len <= 0 || len > H2_SERVER_PREFACE_HOLD) return false;
  let at = 0;
  let first = true;
  while (at < len) {
    if (len - at < 9) return prefixOfFrameHeader(p + <usize>at, len - at, first);
    const frameLen = (<i32>load<u8>(p + <usize>at) << 16) | (<i32>load<u8>(p + <usize>at, 1) << 8) | <i32>load<u8>(p + <usize>at, 2);
    const type = load<u8>(p + <usize>at, 3);
    const flags = load<u8>(p + <usize>at, 4);
    const stream = load<u32>(p + <usize>at, 5); // any byte order: must be 0
    if (stream != 0 || flags != 0) return false;
    if (type == 4) { if (frameLen % 6 != 0) return false; }
    else if (type == 8 && !first) { if (frameLen != 4) return false; }
    else return false;
    first = false;
    at += 9 + frameLen;
  }
  return true;
}

/** A frame header cut after `n` (< 9) bytes: the bytes present are consistent with the rules above. */
function prefixOfFrameHeader(p: usize, n: i32, first: bool): bool {
  if (n >= 4) {
    const type = load<u8>(p, 3);
    if (type != 4 && (type != 8 || first)) return false;
  }
  for (let i = 4; i < n; i++) if (load<u8>(p + <usize>i) != 0) return false; // flags and stream id are all 0
  return true;
}
