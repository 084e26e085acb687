// Capture-file reader: classic libpcap (both byte orders; micro-, nano-second and the "modified"
// Kuznetzov variant) and pcapng (SHB/IDB/EPB/SPB and the obsolete Packet Block; per-interface link
// type and timestamp resolution; byte order per section). Packet data are zero-copy views into the
// caller's bytes. A truncated or corrupt file yields every packet up to the damage, then stops and
// records the error; only a file that is not a capture at all throws (CaptureFormatError).

/** One captured frame, as stored in the file. `data` is a view into the file bytes. */
export interface CapturedPacket {
  /** Capture timestamp, seconds since the epoch (float; sub-microsecond precision may be lost). */
  time: number;
  /** LINKTYPE_* value of the interface that captured the frame (FCS flag bits stripped). */
  linkType: number;
  /** The captured bytes (possibly fewer than origLen when the capture used a snap length). */
  data: Uint8Array;
  /** Length of the frame on the wire. */
  origLen: number;
  /** pcapng interface id (0 for libpcap files). */
  interfaceId: number;
}

export type CaptureFormat = "pcap" | "pcapng";

/** Thrown only when the bytes are not a capture file at all (bad magic, header too short). */
export class CaptureFormatError extends Error {
  override readonly name = "CaptureFormatError";
}

/** Iterates the packets of one capture. Damage after the header is recorded, never thrown. */
export interface CaptureReader extends Iterable<CapturedPacket> {
  readonly format: CaptureFormat;
  /** Number of damaged records / blocks met so far (reading stops at the first fatal one). */
  readonly errors: number;
  /** Human-readable description of the last error (with byte offset), if any. */
  readonly lastError: string | undefined;
}

const PCAP_MAGIC_US = 0xa1b2c3d4;
const PCAP_MAGIC_NS = 0xa1b23c4d;
const PCAP_MAGIC_MODIFIED = 0xa1b2cd34; // Kuznetzov patch: 24-byte record headers
const PCAP_GLOBAL_HEADER = 24;
const PCAPNG_SHB = 0x0a0d0d0a;
const PCAPNG_BYTE_ORDER_MAGIC = 0x1a2b3c4d;
const PCAPNG_IDB = 1;
const PCAPNG_OBSOLETE_PB = 2;
const PCAPNG_SPB = 3;
const PCAPNG_EPB = 6;
/** No real link layer carries frames this large; a bigger record length means corruption. */
export const MAX_RECORD_BYTES = 1 << 24;

/**
 * Opens a capture file. Throws CaptureFormatError if `bytes` is not a pcap/pcapng file;
 * otherwise returns a reader that can be iterated (once or several times).
 */
export function readCapture(bytes: Uint8Array): CaptureReader {
  if (bytes.length < 4) throw new CaptureFormatError(`not a capture file: only ${bytes.length} bytes`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const be = view.getUint32(0, false);
  const le = view.getUint32(0, true);
  for (const [magic, little] of [[be, false], [le, true]] as const) {
    if (magic === PCAP_MAGIC_US || magic === PCAP_MAGIC_NS || magic === PCAP_MAGIC_MODIFIED) {
      if (bytes.length < PCAP_GLOBAL_HEADER) {
        throw new CaptureFormatError(`truncated pcap global header: ${bytes.length} of ${PCAP_GLOBAL_HEADER} bytes`);
      }
      return new PcapReader(bytes, view, little, magic);
    }
  }
  if (be === PCAPNG_SHB) {
    if (bytes.length < 12) throw new CaptureFormatError("truncated pcapng section header block");
    const bom = view.getUint32(8, true);
    if (bom !== PCAPNG_BYTE_ORDER_MAGIC && view.getUint32(8, false) !== PCAPNG_BYTE_ORDER_MAGIC) {
      throw new CaptureFormatError("pcapng section header block has no valid byte-order magic");
    }
    return new PcapngReader(bytes, view);
  }
  throw new CaptureFormatError(
    `not a pcap or pcapng file (magic 0x${be.toString(16).padStart(8, "0")}); convert it with "editcap -F pcap IN OUT"`,
  );
}

/** Reads every packet eagerly: convenient for tests and small files. */
export function readAllPackets(bytes: Uint8Array): { format: CaptureFormat; packets: CapturedPacket[]; errors: number; lastError?: string } {
  const reader = readCapture(bytes);
  const packets = [...reader];
  return { format: reader.format, packets, errors: reader.errors, lastError: reader.lastError };
}

abstract class BaseReader implements CaptureReader {
  abstract readonly format: CaptureFormat;
  errors = 0;
  lastError: string | undefined;
  constructor(protected readonly bytes: Uint8Array, protected readonly view: DataView) {}
  protected fail(message: string): void {
    this.errors++;
    this.lastError = message;
  }
  abstract [Symbol.iterator](): Iterator<CapturedPacket>;
}

class PcapReader extends BaseReader {
  readonly format = "pcap" as const;
  private readonly linkType: number;
  private readonly ticksPerSecond: number;
  private readonly recordHeader: number;
  constructor(bytes: Uint8Array, view: DataView, private readonly little: boolean, magic: number) {
    super(bytes, view);
    // The upper bits of the link-type field carry FCS information (pcap-linktype(7)).
    this.linkType = view.getUint32(20, little) & 0x0fff_ffff;
    this.ticksPerSecond = magic === PCAP_MAGIC_NS ? 1e9 : 1e6;
    this.recordHeader = magic === PCAP_MAGIC_MODIFIED ? 24 : 16;
  }
  *[Symbol.iterator](): Iterator<CapturedPacket> {
    this.errors = 0;
    this.lastError = undefined;
    const { bytes, view, little } = this;
    let off = PCAP_GLOBAL_HEADER;
    while (off < bytes.length) {
      if (off + this.recordHeader > bytes.length) {
        this.fail(`truncated pcap record header at offset ${off}`);
        return;
      }
      const sec = view.getUint32(off, little);
      const frac = view.getUint32(off + 4, little);
      const inclLen = view.getUint32(off + 8, little);
      const origLen = view.getUint32(off + 12, little);
      if (inclLen > MAX_RECORD_BYTES) {
        this.fail(`corrupt pcap record at offset ${off}: captured length ${inclLen}`);
        return;
      }
      const start = off + this.recordHeader;
      if (start + inclLen > bytes.length) {
        this.fail(`truncated pcap record at offset ${off}: ${inclLen} bytes announced, ${bytes.length - start} present`);
        return;
      }
      yield {
        time: sec + frac / this.ticksPerSecond,
        linkType: this.linkType,
        data: bytes.subarray(start, start + inclLen),
        origLen,
        interfaceId: 0,
      };
      off = start + inclLen;
    }
  }
}

interface PcapngInterface {
  linkType: number;
  snapLen: number;
  /** Timestamp units per second (if_tsresol; default 10^6). */
  ticksPerSecond: number;
  /** Seconds added to every timestamp (if_tsoffset). */
  offsetSeconds: number;
}

class PcapngReader extends BaseReader {
  readonly format = "pcapng" as const;
  *[Symbol.iterator](): Iterator<CapturedPacket> {
    this.errors = 0;
    this.lastError = undefined;
    const { bytes, view } = this;
    let little = true;
    let interfaces: PcapngInterface[] = [];
    let off = 0;
    while (off < bytes.length) {
      if (off + 12 > bytes.length) {
        this.fail(`truncated pcapng block header at offset ${off}`);
        return;
      }
      const type = view.getUint32(off, little);
      if (view.getUint32(off, false) === PCAPNG_SHB) {
        // A new section may switch byte order; interface ids restart.
        const bom = view.getUint32(off + 8, true);
        if (bom === PCAPNG_BYTE_ORDER_MAGIC) little = true;
        else if (view.getUint32(off + 8, false) === PCAPNG_BYTE_ORDER_MAGIC) little = false;
        else {
          this.fail(`pcapng section header at offset ${off} has no valid byte-order magic`);
          return;
        }
        interfaces = [];
      }
      const total = view.getUint32(off + 4, little);
      if (total < 12 || total % 4 !== 0 || total > MAX_RECORD_BYTES + 64) {
        this.fail(`corrupt pcapng block at offset ${off}: length ${total}`);
        return;
      }
      if (off + total > bytes.length) {
        this.fail(`truncated pcapng block at offset ${off}: ${total} bytes announced, ${bytes.length - off} present`);
        return;
      }
      if (view.getUint32(off + total - 4, little) !== total) {
        this.fail(`corrupt pcapng block at offset ${off}: trailing length does not match ${total}`);
        return;
      }
      const body = off + 8;
      const bodyEnd = off + total - 4;
      if (type === PCAPNG_IDB) {
        if (bodyEnd - body < 8) this.fail(`short pcapng interface block at offset ${off}`);
        else interfaces.push(this.parseInterface(body, bodyEnd, little));
      } else if (type === PCAPNG_EPB || type === PCAPNG_OBSOLETE_PB) {
        const pkt = this.parsePacketBlock(type, body, bodyEnd, little, interfaces, off);
        if (pkt) yield pkt;
      } else if (type === PCAPNG_SPB) {
        const iface = interfaces[0];
        if (!iface || bodyEnd - body < 4) this.fail(`pcapng simple packet block at offset ${off} without interface 0`);
        else {
          const origLen = view.getUint32(body, little);
          let capLen = Math.min(origLen, bodyEnd - body - 4);
          if (iface.snapLen > 0) capLen = Math.min(capLen, iface.snapLen);
          // SPBs carry no timestamp.
          yield { time: 0, linkType: iface.linkType, data: bytes.subarray(body + 4, body + 4 + capLen), origLen, interfaceId: 0 };
        }
      }
      // Other block types (name resolution, statistics, custom, DSB …) carry no packets.
      off += total;
    }
  }

  private parseInterface(body: number, end: number, little: boolean): PcapngInterface {
    const { view } = this;
    const iface: PcapngInterface = {
      linkType: view.getUint16(body, little),
      snapLen: view.getUint32(body + 4, little),
      ticksPerSecond: 1e6,
      offsetSeconds: 0,
    };
    let p = body + 8;
    while (p + 4 <= end) {
      const code = view.getUint16(p, little);
      const len = view.getUint16(p + 2, little);
      const value = p + 4;
      if (code === 0 || value + len > end) break; // opt_endofopt or damaged options
      if (code === 9 && len >= 1) {
        const r = view.getUint8(value);
        // if_tsresol: MSB clear → 10^-r, set → 2^-(r & 0x7f).
        const ticks = r & 0x80 ? 2 ** (r & 0x7f) : 10 ** r;
        if (Number.isFinite(ticks) && ticks > 0) iface.ticksPerSecond = ticks;
      } else if (code === 14 && len >= 8) {
        iface.offsetSeconds = Number(view.getBigInt64(value, little));
      }
      p = value + ((len + 3) & ~3);
    }
    return iface;
  }

  private parsePacketBlock(type: number, body: number, end: number, little: boolean, interfaces: PcapngInterface[], off: number): CapturedPacket | undefined {
    const { view, bytes } = this;
    if (end - body < 20) {
      this.fail(`short pcapng packet block at offset ${off}`);
      return undefined;
    }
    const interfaceId = type === PCAPNG_EPB ? view.getUint32(body, little) : view.getUint16(body, little);
    const iface = interfaces[interfaceId];
    if (!iface) {
      this.fail(`pcapng packet block at offset ${off} names undeclared interface ${interfaceId}`);
      return undefined;
    }
    const tsHigh = view.getUint32(body + 4, little);
    const tsLow = view.getUint32(body + 8, little);
    const capLen = view.getUint32(body + 12, little);
    const origLen = view.getUint32(body + 16, little);
    const data = body + 20;
    if (data + capLen > end) {
      this.fail(`pcapng packet block at offset ${off}: captured length ${capLen} exceeds the block`);
      return undefined;
    }
    // Split to keep precision: whole seconds from the high part, remainder added as a fraction.
    const ticks = iface.ticksPerSecond;
    const hiTicks = tsHigh * 4294967296;
    const wholeSec = Math.floor(hiTicks / ticks) + Math.floor(tsLow / ticks);
    const rem = (hiTicks % ticks) + (tsLow % ticks);
    return {
      time: iface.offsetSeconds + wholeSec + rem / ticks,
      linkType: iface.linkType,
      data: bytes.subarray(data, data + capLen),
      origLen,
      interfaceId,
    };
  }
}
