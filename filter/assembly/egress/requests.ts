// Request boundaries on an HTTP/1 connection whose verdict rested on a claim (a shared IP's Host, a
// forward proxy's target): every later request head must be judged too (keep-alive, pipelining,
// CONNECT). Only boundaries are found here — bodies are skipped by count (Content-Length) or by
// chunk headers — and heads are handed back to the stream to judge. Pure logic: no ABI, no
// allocation after construction (framers are pooled by the root context).

/** All given bytes were consumed (a head may be pending: see headPending()). */
export const FRAME_NEED_MORE: i32 = 0;
/** A request head ends at `pos`; it began at `headStart`. Judge it, then call afterHead(). */
export const FRAME_HEAD: i32 = 1;
/** The framing is broken (bad chunk header, a head or trailer beyond the limit). */
export const FRAME_BAD: i32 = 2;
/** Client bytes must wait: after CONNECT or Upgrade, the server's answer says whether HTTP/1 goes on. */
export const FRAME_AWAIT: i32 = 3;

// @ts-ignore: decorator
@inline const M_HEAD: u8 = 0;
// @ts-ignore: decorator
@inline const M_BODY: u8 = 1;
// @ts-ignore: decorator
@inline const M_CHUNK_SIZE: u8 = 2;
// @ts-ignore: decorator
@inline const M_CHUNK_EXT: u8 = 3;
// @ts-ignore: decorator
@inline const M_CHUNK_DATA: u8 = 4;
// @ts-ignore: decorator
@inline const M_CHUNK_END: u8 = 5;
// @ts-ignore: decorator
@inline const M_TRAILER: u8 = 6;
// @ts-ignore: decorator
@inline const M_AWAIT: u8 = 7;
// @ts-ignore: decorator
@inline const M_TUNNEL: u8 = 8;

/** Longest chunk-size line (with extensions) accepted. */
// @ts-ignore: decorator
@inline const MAX_CHUNK_LINE: i32 = 4096;

export class RequestFramer {
  private mode: u8 = M_HEAD;
  /** Offset (in the connection's currently held bytes) of the next byte to examine. */
  pos: u32 = 0;
  /** Where the current (or last complete) head starts. */
  headStart: u32 = 0;
  /** The current head has a non-empty line (leading empty lines are skipped, RFC 9112 §2.2). */
  private headContent: bool = false;
  /** The current line is empty so far (CR ignored). */
  private lineEmpty: bool = true;
  private left: i64 = 0;
  private chunkDigits: i32 = 0;
  private lineBytes: i32 = 0;
  /** The request that led to M_AWAIT was a CONNECT (2xx opens a tunnel) or an Upgrade (101 does). */
  private awaitConnect: bool = false;
  /** ...an Upgrade offering h2c: a 101 switches the connection to HTTP/2 (see switchedToH2c). */
  private awaitH2c: bool = false;
  private h2c: bool = false;
  /** Status-line matcher for the server's answer in M_AWAIT. */
  private statusSeen: i32 = 0;
  private statusCode: i32 = 0;
  /** Client bytes arrived while waiting for the server's answer. */
  heldWhileAwaiting: bool = false;
  limit: u32 = 16384;

  reset(limit: u32): void {
    this.mode = M_HEAD;
    this.pos = 0;
    this.headStart = 0;
    this.headContent = false;
    this.lineEmpty = true;
    this.left = 0;
    this.chunkDigits = 0;
    this.lineBytes = 0;
    this.awaitConnect = false;
    this.awaitH2c = false;
    this.h2c = false;
    this.statusSeen = 0;
    this.statusCode = 0;
    this.heldWhileAwaiting = false;
    this.limit = limit;
  }

  /** The held bytes were forwarded: offsets start again at 0. */
  drained(): void {
    this.pos = 0;
    this.headStart = 0;
  }

  /** A head has begun and not ended: its bytes must stay held. */
  headPending(): bool {
    return this.mode == M_HEAD && this.headContent;
  }

  awaiting(): bool {
    return this.mode == M_AWAIT;
  }

  /** Bytes that can be passed over without looking at them (body, chunk data, tunnel). */
  skippable(): i64 {
    if (this.mode == M_BODY || this.mode == M_CHUNK_DATA) return this.left;
    if (this.mode == M_TUNNEL) return i64.MAX_VALUE;
    return 0;
  }

  skip(n: u32): void {
    this.pos += n;
    if (this.mode == M_TUNNEL) return;
    this.left -= <i64>n;
    if (this.left > 0) return;
    if (this.mode == M_BODY) this.startHead();
    else this.mode = M_CHUNK_END;
  }

  /** The head just reported was judged: what follows it. */
  afterHead(contentLength: i64, chunked: bool, connect: bool, upgrade: bool, h2c: bool = false): void {
    if (connect || upgrade) {
      this.mode = M_AWAIT;
      this.awaitConnect = connect;
      this.awaitH2c = h2c && !connect;
      this.statusSeen = 0;
      this.statusCode = 0;
      this.heldWhileAwaiting = false;
    } else if (chunked) {
      this.startChunk();
    } else if (contentLength > 0) {
      this.mode = M_BODY;
      this.left = contentLength;
    } else {
      this.startHead();
    }
  }

  /**
   * Examines [p, p+n), the held bytes from offset `pos`. Stops right after a complete head
   * (FRAME_HEAD), at a framing error (FRAME_BAD), or when bytes must wait (FRAME_AWAIT).
   */
  advance(p: usize, n: u32): i32 {
    const end = p + <usize>n;
    while (p < end) {
      const mode = this.mode;
      if (mode == M_AWAIT) {
        this.heldWhileAwaiting = true;
        return FRAME_AWAIT;
      }
      if (mode == M_BODY || mode == M_CHUNK_DATA || mode == M_TUNNEL) {
        const avail = <i64>(end - p);
        const take = mode == M_TUNNEL || this.left > avail ? avail : this.left;
        this.skip(<u32>take);
        p += <usize>take;
        continue;
      }
      const c = <u32>load<u8>(p);
      p++;
      this.pos++;
      if (mode == M_HEAD || mode == M_TRAILER) {
        if (c == 0x0a) {
          if (mode == M_HEAD && !this.headContent) {
            this.headStart = this.pos; // an empty line before the request line
            continue;
          }
          if (this.lineEmpty) {
            if (mode == M_HEAD) return FRAME_HEAD;
            this.startHead(); // end of the trailer section
            continue;
          }
          this.lineEmpty = true;
        } else if (c != 0x0d) {
          this.lineEmpty = false;
          if (mode == M_HEAD) this.headContent = true;
        }
        if (this.pos - this.headStart > this.limit) return FRAME_BAD;
        continue;
      }
      if (mode == M_CHUNK_SIZE) {
        const h = hexValue(c);
        if (h >= 0 && this.chunkDigits < 15) {
          this.left = (this.left << 4) | <i64>h;
          this.chunkDigits++;
        } else if ((c == 0x3b || c == 0x20 || c == 0x09) && this.chunkDigits > 0) {
          this.mode = M_CHUNK_EXT;
        } else if (c == 0x0a && this.chunkDigits > 0) {
          this.endChunkLine();
        } else if (c != 0x0d) {
          return FRAME_BAD;
        }
      } else if (mode == M_CHUNK_EXT) {
        if (c == 0x0a) this.endChunkLine();
        else if (++this.lineBytes > MAX_CHUNK_LINE) return FRAME_BAD;
      } else if (mode == M_CHUNK_END) {
        if (c == 0x0a) this.startChunk();
        else if (c != 0x0d) return FRAME_BAD;
      }
    }
    return FRAME_NEED_MORE;
  }

  /**
   * Server bytes while waiting after CONNECT / Upgrade: 101, or 2xx to a CONNECT, turns the
   * connection into a tunnel (no more heads); any other status goes back to HTTP/1 framing.
   * Returns true once the answer is known.
   */
  serverBytes(p: usize, n: u32): bool {
    if (this.mode != M_AWAIT) return false;
    const prefix = "HTTP/1.";
    for (let i: u32 = 0; i < n; i++) {
      const c = <u32>load<u8>(p + <usize>i);
      const k = this.statusSeen;
      if (k < 7) {
        if (c != <u32>prefix.charCodeAt(k)) return this.answer(0);
      } else if (k == 7) {
        if (c - 0x30 >= 10) return this.answer(0);
      } else if (k == 8) {
        if (c != 0x20) return this.answer(0);
      } else if (k < 12) {
        if (c - 0x30 >= 10) return this.answer(0);
        this.statusCode = this.statusCode * 10 + <i32>(c - 0x30);
        if (k == 11) return this.answer(this.statusCode);
      }
      this.statusSeen++;
    }
    return false;
  }

  /** The server answered an h2c Upgrade with 101: HTTP/2 frames follow, to be walked as such. */
  switchedToH2c(): bool {
    return this.h2c;
  }

  private answer(status: i32): bool {
    const tunnel = status == 101 || (this.awaitConnect && status >= 200 && status < 300);
    this.h2c = status == 101 && this.awaitH2c;
    if (tunnel) this.mode = M_TUNNEL;
    else this.startHead();
    return true;
  }

  private startHead(): void {
    this.mode = M_HEAD;
    this.headStart = this.pos;
    this.headContent = false;
    this.lineEmpty = true;
  }

  private startChunk(): void {
    this.mode = M_CHUNK_SIZE;
    this.left = 0;
    this.chunkDigits = 0;
    this.lineBytes = 0;
  }

  private endChunkLine(): void {
    if (this.left == 0) {
      this.mode = M_TRAILER;
      this.headStart = this.pos; // trailers are bounded like a head
      this.lineEmpty = true;
    } else {
      this.mode = M_CHUNK_DATA;
    }
  }
}

// @ts-ignore: decorator
@inline function hexValue(c: u32): i32 {
  if (c - 0x30 < 10) return <i32>(c - 0x30);
  const l = c | 0x20;
  if (l - 0x61 < 6) return <i32>(l - 0x61 + 10);
  return -1;
}
