// HPACK (RFC 7541) for the first header block of an HTTP/2 connection: just enough to find the
// request's `:authority` and `host` fields. Every representation is decoded and checked (integers,
// Huffman strings, static and dynamic indexes, table size updates), because a block this decoder
// cannot read exactly as the server would is an unverifiable claim, never "no claim".
// The dynamic table is bounded at the initial 4,096 bytes (RFC 9113 §6.5.2: all a client may use
// before the server's SETTINGS; a larger size update is refused), so at most 128 entries of at
// least 32 bytes. Entries keep their size and kind, and :authority/host entries their value (later
// requests index them).
// No allocation after construction; never traps (every read is bounds-checked).
import { u8at } from "./scan";

/** Outcome bits of decode(). */
// @ts-ignore: decorator
@inline export const HPACK_OK: i32 = 0;
/** A representation, integer, index or Huffman string the server would reject (or read differently). */
// @ts-ignore: decorator
@inline export const HPACK_MALFORMED: i32 = 1;
/** :authority or host twice, or a pseudo-header after a regular field. */
// @ts-ignore: decorator
@inline export const HPACK_CONFLICT: i32 = 2;
/** An :authority or host value longer than MAX_AUTHORITY (no DNS name is), or empty. */
// @ts-ignore: decorator
@inline export const HPACK_VALUE_BAD: i32 = 4;

/** Longest :authority / host value kept: a 253-byte name, brackets and ":65535". */
// @ts-ignore: decorator
@inline export const MAX_AUTHORITY: i32 = 262;
/** SETTINGS_HEADER_TABLE_SIZE before the server's SETTINGS are acknowledged (RFC 9113 §6.5.2). */
// @ts-ignore: decorator
@inline export const INITIAL_TABLE_SIZE: i32 = 4096;
// @ts-ignore: decorator
@inline const MAX_ENTRIES: i32 = INITIAL_TABLE_SIZE / 32;
// @ts-ignore: decorator
@inline const STATIC_COUNT: i32 = 61;
/** Integers beyond this are never a valid index or length here (and cannot overflow i32). */
// @ts-ignore: decorator
@inline const MAX_INTEGER: i32 = 0x0fffffff;

/** Field kinds. */
// @ts-ignore: decorator
@inline const K_REGULAR: u8 = 0;
// @ts-ignore: decorator
@inline const K_PSEUDO: u8 = 1;
// @ts-ignore: decorator
@inline const K_AUTHORITY: u8 = 2;
// @ts-ignore: decorator
@inline const K_HOST: u8 = 3;

// ---- Huffman code (RFC 7541 §5.2, Appendix B) ----

/**
 * Code length of each symbol 0..255 and EOS (256), from Appendix B. The code is canonical (codes of
 * one length are consecutive, in symbol order, each length continuing the previous one), so the
 * lengths alone define it; the decode tables are derived from them at start-up.
 */
const HUFFMAN_LENGTHS: StaticArray<u8> = [
  13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28,
  6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, 5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10,
  13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6,
  15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5, 6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28,
  20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23, 24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24,
  22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, 21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23,
  26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, 19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27,
  20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23, 26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26,
  30,
];
// @ts-ignore: decorator
@inline const MAX_CODE_LENGTH: i32 = 30;
// @ts-ignore: decorator
@inline const EOS: u32 = 256;
/** Per code length: the first code, how many codes, and where its symbols start in SYMBOLS. */
const FIRST_CODE = new StaticArray<u32>(MAX_CODE_LENGTH + 1);
const CODE_COUNT = new StaticArray<u32>(MAX_CODE_LENGTH + 1);
const FIRST_SYMBOL = new StaticArray<u32>(MAX_CODE_LENGTH + 1);
/**
 * Per code length: the end of its codes left-aligned in 32 bits. In a canonical code every code of
 * length L, left-aligned, sorts below every longer one, so a 32-bit window's code length is the
 * first L whose limit is above it (a few comparisons for the common 5–8-bit symbols).
 */
const LIMIT = new StaticArray<u64>(MAX_CODE_LENGTH + 1);
/** Symbols ordered by (code length, symbol). */
const SYMBOLS = new StaticArray<u16>(257);
buildHuffmanTables();

function buildHuffmanTables(): void {
  for (let s = 0; s <= 256; s++) unchecked(CODE_COUNT[HUFFMAN_LENGTHS[s]]++);
  let code: u32 = 0;
  let index: u32 = 0;
  for (let n = 1; n <= MAX_CODE_LENGTH; n++) {
    unchecked(FIRST_CODE[n] = code);
    unchecked(FIRST_SYMBOL[n] = index);
    const count = unchecked(CODE_COUNT[n]);
    unchecked(LIMIT[n] = <u64>(code + count) << <u64>(32 - n));
    for (let s = 0; s <= 256; s++) if (<u32>unchecked(HUFFMAN_LENGTHS[s]) == <u32>n) unchecked(SYMBOLS[index++] = <u16>s);
    code = (code + count) << 1;
  }
}

/**
 * Decodes the Huffman string [off, off+n) of p. Writes at most `cap` bytes to `out` and returns the
 * full decoded length, or -1 when the string is invalid: EOS inside it, or padding that is longer
 * than 7 bits or not the most significant bits of EOS (RFC 7541 §5.2).
 */
export function huffmanDecode(p: usize, off: i32, n: i32, out: usize, cap: i32): i32 {
  let acc: u64 = 0; // unread bits, right-aligned
  let bits: i32 = 0;
  let i = 0;
  let written: i32 = 0;
  while (true) {
    while (bits <= 56 && i < n) {
      acc = (acc << 8) | <u64>u8at(p, off + i++);
      bits += 8;
    }
    if (bits == 0) break;
    // The next 32 bits, left-aligned; past the end they read as ones (the EOS prefix padding uses).
    const window: u64 = bits >= 32 ? (acc >> <u64>(bits - 32)) & 0xffffffff
      : ((acc << <u64>(32 - bits)) | ((<u64>1 << <u64>(32 - bits)) - 1)) & 0xffffffff;
    let len = 5;
    while (window >= unchecked(LIMIT[len])) len++; // LIMIT[30] is 2^32: always stops
    if (len > bits) {
      // Only padding is left: at most 7 bits, all ones.
      const mask: u64 = (<u64>1 << <u64>bits) - 1;
      if (bits > 7 || (acc & mask) != mask) return -1;
      break;
    }
    const symbol = <u32>unchecked(SYMBOLS[unchecked(FIRST_SYMBOL[len]) + (<u32>(window >> <u64>(32 - len)) - unchecked(FIRST_CODE[len]))]);
    if (symbol == EOS) return -1;
    if (written < cap) store<u8>(out + <usize>written, <u8>symbol);
    written++;
    bits -= len;
    acc &= (<u64>1 << <u64>bits) - 1;
  }
  return written;
}

// ---- static table (RFC 7541 Appendix A): names only; values matter for :authority/host (empty) ----

const STATIC_NAMES: StaticArray<string> = [
  "", ":authority", ":method", ":method", ":path", ":path", ":scheme", ":scheme", ":status", ":status", ":status", ":status",
  ":status", ":status", ":status", "accept-charset", "accept-encoding", "accept-language", "accept-ranges", "accept",
  "access-control-allow-origin", "age", "allow", "authorization", "cache-control", "content-disposition", "content-encoding",
  "content-language", "content-length", "content-location", "content-range", "content-type", "cookie", "date", "etag", "expect",
  "expires", "from", "host", "if-match", "if-modified-since", "if-none-match", "if-range", "if-unmodified-since",
  "last-modified", "link", "location", "max-forwards", "proxy-authenticate", "proxy-authorization", "range", "referer",
  "refresh", "retry-after", "server", "set-cookie", "strict-transport-security", "transfer-encoding", "user-agent", "vary",
  "via", "www-authenticate",
];
// @ts-ignore: decorator
@inline const STATIC_AUTHORITY: i32 = 1;
// @ts-ignore: decorator
@inline const STATIC_HOST: i32 = 38;
// @ts-ignore: decorator
@inline const STATIC_LAST_PSEUDO: i32 = 14;

function staticKind(index: i32): u8 {
  if (index == STATIC_AUTHORITY) return K_AUTHORITY;
  if (index == STATIC_HOST) return K_HOST;
  return index <= STATIC_LAST_PSEUDO ? K_PSEUDO : K_REGULAR;
}

/**
 * HPACK decoder of one connection's client header blocks, in order (the dynamic table carries over
 * from block to block), keeping each block's :authority and host values. reset() for a new
 * connection; decode() per block; copyFrom() hands the state to another decoder.
 */
export class HeaderBlockDecoder {
  /** Decoded :authority and host values of the last block (-1: absent; a second one is a conflict). */
  readonly authority: StaticArray<u8> = new StaticArray<u8>(MAX_AUTHORITY);
  readonly host: StaticArray<u8> = new StaticArray<u8>(MAX_AUTHORITY);
  authorityLen: i32 = -1;
  hostLen: i32 = -1;
  /** Dynamic table: a ring of entries, newest at `newest`; :authority/host values in `values`. */
  private readonly entrySize: StaticArray<i32> = new StaticArray<i32>(MAX_ENTRIES);
  private readonly entryKind: StaticArray<u8> = new StaticArray<u8>(MAX_ENTRIES);
  private readonly entryNameLen: StaticArray<i32> = new StaticArray<i32>(MAX_ENTRIES);
  private readonly entryValueOff: StaticArray<i32> = new StaticArray<i32>(MAX_ENTRIES);
  private readonly entryValueLen: StaticArray<i32> = new StaticArray<i32>(MAX_ENTRIES);
  /**
   * Values of :authority/host entries, written in insertion order around a ring: each entry counts
   * its value in its size and the table holds at most INITIAL_TABLE_SIZE bytes, so live values
   * never overlap.
   */
  private readonly values: StaticArray<u8> = new StaticArray<u8>(INITIAL_TABLE_SIZE);
  private valuesHead: i32 = 0;
  private newest: i32 = MAX_ENTRIES - 1;
  private entries: i32 = 0;
  private tableBytes: i32 = 0;
  private maxTableBytes: i32 = INITIAL_TABLE_SIZE;
  /** Scratch for a literal field name (only short names matter: ":authority", "host"). */
  private readonly name: StaticArray<u8> = new StaticArray<u8>(16);
  private pos: i32 = 0;
  private end: i32 = 0;
  private flags: i32 = HPACK_OK;
  private regularSeen: bool = false;

  reset(): void {
    this.authorityLen = -1;
    this.hostLen = -1;
    this.valuesHead = 0;
    this.newest = MAX_ENTRIES - 1;
    this.entries = 0;
    this.tableBytes = 0;
    this.maxTableBytes = INITIAL_TABLE_SIZE;
    this.pos = 0;
    this.end = 0;
    this.flags = HPACK_OK;
    this.regularSeen = false;
  }

  /** Takes over another decoder's dynamic table (the connection goes on elsewhere). */
  copyFrom(o: HeaderBlockDecoder): void {
    memory.copy(changetype<usize>(this.entrySize), changetype<usize>(o.entrySize), <usize>MAX_ENTRIES * 4);
    memory.copy(changetype<usize>(this.entryKind), changetype<usize>(o.entryKind), <usize>MAX_ENTRIES);
    memory.copy(changetype<usize>(this.entryNameLen), changetype<usize>(o.entryNameLen), <usize>MAX_ENTRIES * 4);
    memory.copy(changetype<usize>(this.entryValueOff), changetype<usize>(o.entryValueOff), <usize>MAX_ENTRIES * 4);
    memory.copy(changetype<usize>(this.entryValueLen), changetype<usize>(o.entryValueLen), <usize>MAX_ENTRIES * 4);
    memory.copy(changetype<usize>(this.values), changetype<usize>(o.values), <usize>INITIAL_TABLE_SIZE);
    this.valuesHead = o.valuesHead;
    this.newest = o.newest;
    this.entries = o.entries;
    this.tableBytes = o.tableBytes;
    this.maxTableBytes = o.maxTableBytes;
  }

  /** Decodes the block [start, end) of p. Returns HPACK_* bits (HPACK_OK when it is clean). */
  decode(p: usize, start: i32, end: i32): i32 {
    this.pos = start;
    this.end = end;
    this.flags = HPACK_OK;
    this.authorityLen = -1;
    this.hostLen = -1;
    this.regularSeen = false;
    let fields = 0;
    while (this.pos < this.end && (this.flags & HPACK_MALFORMED) == 0) {
      const b = u8at(p, this.pos);
      if ((b & 0x80) != 0) {
        this.indexedField(p);
        fields++;
      } else if ((b & 0xc0) == 0x40) {
        this.literalField(p, 6, true);
        fields++;
      } else if ((b & 0xe0) == 0x20) {
        // A table size update is allowed only at the start of a block (RFC 7541 §4.2).
        if (fields > 0) this.flags |= HPACK_MALFORMED;
        else this.sizeUpdate(p);
      } else {
        this.literalField(p, 4, false); // without indexing (0000) or never indexed (0001)
        fields++;
      }
    }
    return this.flags;
  }

  /**
   * A size update above the initial 4,096 bytes is refused: a client may go higher only after the
   * server's SETTINGS allow it, and a bounded table is worth a refused connection.
   */
  private sizeUpdate(p: usize): void {
    const size = this.readInteger(p, 5);
    if (size < 0 || size > INITIAL_TABLE_SIZE) {
      this.flags |= HPACK_MALFORMED;
      return;
    }
    this.maxTableBytes = size;
    this.evictTo(size);
  }

  private indexedField(p: usize): void {
    const index = this.readInteger(p, 7);
    if (index <= 0) {
      this.flags |= HPACK_MALFORMED;
      return;
    }
    const kind = this.kindOf(index);
    if (kind < 0) return;
    this.noteOrder(<u8>kind);
    if (kind != K_AUTHORITY && kind != K_HOST) return;
    if (index <= STATIC_COUNT) {
      this.flags |= HPACK_VALUE_BAD; // the static :authority and host entries have empty values
      return;
    }
    const slot = this.slot(index - STATIC_COUNT - 1);
    this.takeValue(<u8>kind, changetype<usize>(this.values), unchecked(this.entryValueOff[slot]), unchecked(this.entryValueLen[slot]), true);
  }

  private literalField(p: usize, prefixBits: i32, indexing: bool): void {
    const index = this.readInteger(p, prefixBits);
    if (index < 0) {
      this.flags |= HPACK_MALFORMED;
      return;
    }
    let kind: i32;
    let nameLen: i32;
    if (index == 0) {
      nameLen = this.readString(p, changetype<usize>(this.name), 16);
      if (nameLen <= 0) {
        this.flags |= HPACK_MALFORMED; // invalid, or an empty name
        return;
      }
      kind = this.literalNameKind(nameLen);
    } else {
      kind = this.kindOf(index);
      if (kind < 0) return;
      nameLen = index <= STATIC_COUNT ? unchecked(STATIC_NAMES[index]).length : this.dynamicNameLen(index);
    }
    this.noteOrder(<u8>kind);
    const valueLen = this.readValue(p, <u8>kind);
    if (valueLen < 0) return;
    if (indexing) this.insert(nameLen + valueLen + 32, <u8>kind, nameLen, valueLen);
  }

  /** Reads a literal value; :authority and host values are kept (a second one is a conflict). */
  private readValue(p: usize, kind: u8): i32 {
    if (kind != K_AUTHORITY && kind != K_HOST) {
      const len = this.readString(p, 0, 0);
      if (len < 0) this.flags |= HPACK_MALFORMED;
      return len;
    }
    const buf = kind == K_AUTHORITY ? this.authority : this.host;
    const len = this.readString(p, changetype<usize>(buf), MAX_AUTHORITY);
    if (len < 0) {
      this.flags |= HPACK_MALFORMED;
      return -1;
    }
    this.takeValue(kind, changetype<usize>(buf), 0, len, false);
    return len;
  }

  /**
   * Records the block's :authority / host value at [off, off+len) of `src` (a ring when `ring`):
   * a second one in the block is a conflict, an empty or overlong one is malformed.
   */
  private takeValue(kind: u8, src: usize, off: i32, len: i32, ring: bool): void {
    const seen = kind == K_AUTHORITY ? this.authorityLen >= 0 : this.hostLen >= 0;
    if (seen) {
      this.flags |= HPACK_CONFLICT;
      return;
    }
    if (len == 0 || len > MAX_AUTHORITY) {
      this.flags |= HPACK_VALUE_BAD;
      len = 0;
    }
    const dst = changetype<usize>(kind == K_AUTHORITY ? this.authority : this.host);
    if (ring) {
      for (let i = 0; i < len; i++) store<u8>(dst + <usize>i, load<u8>(src + <usize>((off + i) % INITIAL_TABLE_SIZE)));
    } else if (src != dst) {
      memory.copy(dst, src + <usize>off, <usize>len);
    }
    if (kind == K_AUTHORITY) this.authorityLen = len;
    else this.hostLen = len;
  }

  /** Pseudo-header fields must all precede regular ones (RFC 9113 §8.3). */
  private noteOrder(kind: u8): void {
    if (kind == K_REGULAR || kind == K_HOST) this.regularSeen = true;
    else if (this.regularSeen) this.flags |= HPACK_CONFLICT;
  }

  /** Kind of the field at `index` (static or dynamic); -1 (and MALFORMED) when no such entry. */
  private kindOf(index: i32): i32 {
    if (index <= STATIC_COUNT) return staticKind(index);
    const k = index - STATIC_COUNT - 1;
    if (k >= this.entries) {
      this.flags |= HPACK_MALFORMED;
      return -1;
    }
    return <i32>unchecked(this.entryKind[this.slot(k)]);
  }

  private dynamicNameLen(index: i32): i32 {
    return unchecked(this.entryNameLen[this.slot(index - STATIC_COUNT - 1)]);
  }

  /** Ring slot of the k-th newest entry. */
  private slot(k: i32): i32 {
    const s = this.newest - k;
    return s < 0 ? s + MAX_ENTRIES : s;
  }

  /** The kind of a literal name held in `name` (`n` decoded bytes, only the first 16 kept). */
  private literalNameKind(n: i32): u8 {
    const p = changetype<usize>(this.name);
    // Field names are lowercase in HTTP/2 (RFC 9113 §8.2.1); an uppercase one is malformed.
    for (let i = 0; i < n && i < 16; i++) {
      const c = u8at(p, i);
      if (c - 0x41 < 26) this.flags |= HPACK_MALFORMED;
    }
    if (n == 10 && bytesEqual(p, ":authority")) return K_AUTHORITY;
    if (n == 4 && bytesEqual(p, "host")) return K_HOST;
    return u8at(p, 0) == 0x3a ? K_PSEUDO : K_REGULAR;
  }

  /** Adds an entry (RFC 7541 §4.4): evicts the oldest until it fits; one larger than the table empties it. */
  private insert(size: i32, kind: u8, nameLen: i32, valueLen: i32): void {
    if (size > this.maxTableBytes) {
      this.evictTo(0);
      return;
    }
    this.evictTo(this.maxTableBytes - size);
    this.newest = this.newest + 1 == MAX_ENTRIES ? 0 : this.newest + 1;
    unchecked(this.entrySize[this.newest] = size);
    unchecked(this.entryKind[this.newest] = kind);
    unchecked(this.entryNameLen[this.newest] = nameLen);
    unchecked(this.entryValueOff[this.newest] = this.valuesHead);
    unchecked(this.entryValueLen[this.newest] = 0);
    if ((kind == K_AUTHORITY || kind == K_HOST) && valueLen <= MAX_AUTHORITY) {
      const src = changetype<usize>(kind == K_AUTHORITY ? this.authority : this.host);
      const ring = changetype<usize>(this.values);
      for (let i = 0; i < valueLen; i++) store<u8>(ring + <usize>((this.valuesHead + i) % INITIAL_TABLE_SIZE), load<u8>(src + <usize>i));
      unchecked(this.entryValueLen[this.newest] = valueLen);
      this.valuesHead = (this.valuesHead + valueLen) % INITIAL_TABLE_SIZE;
    }
    this.entries++;
    this.tableBytes += size;
  }

  private evictTo(limit: i32): void {
    while (this.tableBytes > limit && this.entries > 0) {
      this.tableBytes -= unchecked(this.entrySize[this.slot(this.entries - 1)]);
      this.entries--;
    }
  }

  /** An integer with an N-bit prefix (RFC 7541 §5.1); -1 (MALFORMED) when cut or too large. */
  private readInteger(p: usize, prefixBits: i32): i32 {
    if (this.pos >= this.end) return this.malformed();
    const mask = (1 << prefixBits) - 1;
    let value = <i32>u8at(p, this.pos++) & mask;
    if (value < mask) return value;
    let shift = 0;
    while (true) {
      if (this.pos >= this.end || shift > 21) return this.malformed();
      const b = <i32>u8at(p, this.pos++);
      value += (b & 0x7f) << shift;
      shift += 7;
      if ((b & 0x80) == 0) break;
    }
    return value > MAX_INTEGER ? this.malformed() : value;
  }

  /**
   * A string literal (RFC 7541 §5.2): writes at most `cap` decoded bytes to `out`; returns the
   * decoded length, or -1 when cut or invalid.
   */
  private readString(p: usize, out: usize, cap: i32): i32 {
    if (this.pos >= this.end) return this.malformed();
    const huffman = (u8at(p, this.pos) & 0x80) != 0;
    const n = this.readInteger(p, 7);
    if (n < 0 || n > this.end - this.pos) return this.malformed();
    const off = this.pos;
    this.pos += n;
    if (huffman) {
      const len = huffmanDecode(p, off, n, out, cap);
      return len < 0 ? this.malformed() : len;
    }
    if (cap > 0) memory.copy(out, p + <usize>off, <usize>(n < cap ? n : cap));
    return n;
  }

  private malformed(): i32 {
    this.flags |= HPACK_MALFORMED;
    return -1;
  }
}

function bytesEqual(p: usize, lit: string): bool {
  for (let i = 0; i < lit.length; i++) if (u8at(p, i) != <u32>lit.charCodeAt(i)) return false;
  return true;
}
