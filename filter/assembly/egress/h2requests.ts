// Later requests on an h2c connection whose verdict rested on its first request's :authority: every
// header block the client sends is decoded (the HPACK state carries over from the detector, so
// indexed :authority fields resolve) and each new request is handed back to the stream to judge,
// like requests.ts does for HTTP/1 heads. Other frames are skipped by their length. Header blocks
// are copied (at most BLOCK_CAPACITY bytes, beyond: H2_BAD); the frames themselves are never held.
// A request's END_HEADERS frame is judged before the bytes that carry it are forwarded, and a server
// acts on a request only once its header block has ended. Pure logic; pooled by the root context.
import { HeaderBlockDecoder, HPACK_CONFLICT, HPACK_MALFORMED, HPACK_VALUE_BAD } from "../detect/hpack";
import { Authority, H2_AUTHORITY_MALFORMED, H2_CONFLICT, H2_MALFORMED, requestAuthority } from "../detect/http2";

/** All given bytes were consumed. */
export const H2_NEED_MORE: i32 = 0;
/** A new request's header block ended: judge `authority` / `requestFlags`; `consumed` bytes were used. */
export const H2_REQUEST: i32 = 1;
/** The frames cannot be followed (a protocol error, or a header block over the limit). */
export const H2_BAD: i32 = 2;

/** Largest header block followed (the detector's default maxInspectBytes). */
// @ts-ignore: decorator
@inline const BLOCK_CAPACITY: i32 = 16384;
// @ts-ignore: decorator
@inline const FRAME_HEADER: i32 = 9;
// @ts-ignore: decorator
@inline const T_HEADERS: u32 = 1;
// @ts-ignore: decorator
@inline const T_PUSH_PROMISE: u32 = 5;
// @ts-ignore: decorator
@inline const T_CONTINUATION: u32 = 9;
// @ts-ignore: decorator
@inline const F_END_HEADERS: u32 = 0x4;
// @ts-ignore: decorator
@inline const F_PADDED: u32 = 0x8;
// @ts-ignore: decorator
@inline const F_PRIORITY: u32 = 0x20;

const PREFACE = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

export class H2RequestWalker {
  readonly decoder: HeaderBlockDecoder = new HeaderBlockDecoder();
  /** The authority of the request just reported (len 0: none). */
  readonly authority: Authority = new Authority();
  /** H2_* flags of the request just reported (H2_CLAIM_BROKEN: its claim is unverifiable). */
  requestFlags: i32 = 0;
  /** Bytes used by the last advance() call. */
  consumed: i32 = 0;
  private readonly block: StaticArray<u8> = new StaticArray<u8>(BLOCK_CAPACITY);
  private blockLen: i32 = 0;
  private readonly header: StaticArray<u8> = new StaticArray<u8>(FRAME_HEADER);
  private headerFill: i32 = 0;
  /** Payload bytes of the current frame still to come. */
  private left: i32 = 0;
  private frameType: u32 = 0;
  private frameFlags: u32 = 0;
  /** Where the current frame's payload starts in `block` (when it belongs to a header block). */
  private frameStart: i32 = 0;
  private collecting: bool = false;
  /** A header block began and has not ended: only its CONTINUATION frames may follow. */
  private inBlock: bool = false;
  private blockStream: u32 = 0;
  /** Highest request stream seen; a block on an older stream is trailers. */
  private lastStream: u32 = 0;
  /** Bytes of the client connection preface still expected (after an Upgrade: h2c). */
  private prefaceLeft: i32 = 0;

  reset(): void {
    this.decoder.reset();
    this.requestFlags = 0;
    this.consumed = 0;
    this.blockLen = 0;
    this.headerFill = 0;
    this.left = 0;
    this.frameType = 0;
    this.frameFlags = 0;
    this.frameStart = 0;
    this.collecting = false;
    this.inBlock = false;
    this.blockStream = 0;
    this.lastStream = 0;
    this.prefaceLeft = 0;
  }

  /** Goes on after the detector's first request (its HPACK state and stream). */
  startAfterFirst(decoder: HeaderBlockDecoder, stream: u32): void {
    this.reset();
    this.decoder.copyFrom(decoder);
    this.lastStream = stream;
  }

  /**
   * Goes on after an HTTP/1 request with `Upgrade: h2c` was answered 101: the client's preface
   * comes first, stream 1 is the upgrade request itself (already judged), HPACK starts empty
   * (RFC 7540 §3.2).
   */
  startAfterUpgrade(): void {
    this.reset();
    this.prefaceLeft = PREFACE.length;
    this.lastStream = 1;
  }

  /** Consumes bytes until a new request's header block ends (H2_REQUEST) or all are used. */
  advance(p: usize, n: i32): i32 {
    let i = 0;
    while (i < n) {
      if (this.prefaceLeft > 0) {
        if (<u32>load<u8>(p + <usize>i) != <u32>PREFACE.charCodeAt(PREFACE.length - this.prefaceLeft)) return this.bad(i);
        this.prefaceLeft--;
        i++;
        continue;
      }
      if (this.headerFill < FRAME_HEADER) {
        unchecked(this.header[this.headerFill++] = load<u8>(p + <usize>i));
        i++;
        if (this.headerFill < FRAME_HEADER) continue;
        if (!this.startFrame()) return this.bad(i);
      } else {
        const take = min(this.left, n - i);
        if (this.collecting) {
          if (this.blockLen + take > BLOCK_CAPACITY) return this.bad(i);
          memory.copy(changetype<usize>(this.block) + <usize>this.blockLen, p + <usize>i, <usize>take);
          this.blockLen += take;
        }
        i += take;
        this.left -= take;
      }
      if (this.headerFill == FRAME_HEADER && this.left == 0) {
        this.headerFill = 0;
        const r = this.endFrame();
        if (r != H2_NEED_MORE) {
          this.consumed = i;
          return r;
        }
      }
    }
    this.consumed = i;
    return H2_NEED_MORE;
  }

  private startFrame(): bool {
    const h = changetype<usize>(this.header);
    const size = (<i32>load<u8>(h) << 16) | (<i32>load<u8>(h, 1) << 8) | <i32>load<u8>(h, 2);
    this.frameType = <u32>load<u8>(h, 3);
    this.frameFlags = <u32>load<u8>(h, 4);
    const stream = ((<u32>load<u8>(h, 5) << 24) | (<u32>load<u8>(h, 6) << 16) | (<u32>load<u8>(h, 7) << 8) | <u32>load<u8>(h, 8)) & 0x7fffffff;
    this.left = size;
    this.collecting = false;
    if (this.inBlock) {
      // RFC 9113 §6.10: nothing but the block's CONTINUATION frames until END_HEADERS.
      if (this.frameType != T_CONTINUATION || stream != this.blockStream) return false;
      this.collecting = true;
      this.frameStart = this.blockLen;
      return true;
    }
    if (this.frameType == T_CONTINUATION || this.frameType == T_PUSH_PROMISE) return false;
    if (this.frameType == T_HEADERS) {
      if (stream == 0 || (stream & 1) == 0) return false;
      this.inBlock = true;
      this.blockStream = stream;
      this.blockLen = 0;
      this.frameStart = 0;
      this.collecting = true;
    }
    return true;
  }

  /** The current frame ended: strips a HEADERS frame's padding and priority; decodes a finished block. */
  private endFrame(): i32 {
    if (!this.collecting) return H2_NEED_MORE;
    if (this.frameType == T_HEADERS && !this.stripHeadersFields()) return H2_BAD;
    if ((this.frameFlags & F_END_HEADERS) == 0) return H2_NEED_MORE;
    this.inBlock = false;
    this.collecting = false;
    const r = this.decoder.decode(changetype<usize>(this.block), 0, this.blockLen);
    let flags = 0;
    if ((r & HPACK_MALFORMED) != 0) flags |= H2_MALFORMED;
    if ((r & HPACK_CONFLICT) != 0) flags |= H2_CONFLICT;
    if ((r & HPACK_VALUE_BAD) != 0) flags |= H2_AUTHORITY_MALFORMED;
    if (this.blockStream <= this.lastStream) {
      // Trailers of an open stream: no pseudo-header, so no :authority, may appear (RFC 9113 §8.1).
      if (flags != 0 || this.decoder.authorityLen >= 0) return H2_BAD;
      return H2_NEED_MORE;
    }
    this.lastStream = this.blockStream;
    if (flags == 0) flags = requestAuthority(this.decoder, this.authority);
    else this.authority.len = 0;
    this.requestFlags = flags;
    return H2_REQUEST;
  }

  /** Removes the pad length, priority fields and padding of the HEADERS frame just collected. */
  private stripHeadersFields(): bool {
    const base = changetype<usize>(this.block);
    let start = this.frameStart;
    let end = this.blockLen;
    if ((this.frameFlags & F_PADDED) != 0) {
      if (end - start < 1) return false;
      const pad = <i32>load<u8>(base + <usize>start);
      start++;
      if (pad > end - start) return false;
      end -= pad;
    }
    if ((this.frameFlags & F_PRIORITY) != 0) {
      start += 5;
      if (start > end) return false;
    }
    memory.copy(base + <usize>this.frameStart, base + <usize>start, <usize>(end - start));
    this.blockLen = this.frameStart + end - start;
    return true;
  }

  private bad(at: i32): i32 {
    this.consumed = at;
    return H2_BAD;
  }
}
