// One AF_PACKET capture socket with a TPACKET_V3 ring, through the native addon built by
// scripts/build-native.mjs (control/src/agent/native/packet_ring.cc) into dist/native/packet_ring.node.
// Frames start at the IP header; each carries the kernel's packet type and receive timestamp.
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";
import { endianness } from "node:os";
import { fileURLToPath } from "node:url";

const ADDON = fileURLToPath(new URL("../../../native/packet_ring.node", import.meta.url));
const STATUS = fileURLToPath(new URL("../../../native/packet_ring.status", import.meta.url));

export interface RingStats {
  /** Frames the filter accepted (delivered or dropped). */
  packets: number;
  /** Frames lost because no ring block was free (the reader fell behind): tp_drops. */
  drops: number;
  /** Times the ring was full (queue frozen): tp_freeze_q_cnt. */
  freezes: number;
  /** Frames the reader thread took from the ring but could not queue: the shared queue budget was spent. */
  queueDrops: number;
}

interface Addon {
  open(ifname: string, filter: Buffer, blockBytes: number, blockCount: number, retireMs: number, out: Buffer, onRecords: (nbytes: number) => void): object;
  stats(handle: object): RingStats;
  close(handle: object): void;
  ifName(index: number): string | undefined;
  setQueueLimit(bytes: number): void;
}

let addon: Addon | undefined;
let loadError: string | undefined;

/** Loads the addon; throws an explanation (what failed and how to fix it) when unavailable. */
export function loadPacketRing(): Addon {
  if (addon) return addon;
  if (loadError) throw new Error(loadError);
  if (endianness() !== "LE") throw new Error("the packet capture addon's records are read as little-endian; this host is big-endian");
  try {
    addon = createRequire(import.meta.url)(ADDON) as Addon;
    return addon;
  } catch (e) {
    let why = (e as Error).message.split("\n")[0];
    try { why = readFileSync(STATUS, "utf8").trim(); } catch { /* no status file: never attempted */ }
    loadError = `the packet capture addon is unavailable (${ADDON}): ${why}. Run \`npm run build:native\` (needs g++ and Node's headers).`;
    throw new Error(loadError);
  }
}

export interface RingFrame {
  /** From the IP header; a view of the reused record buffer, valid only during the callback. */
  data: Uint8Array;
  /** Length on the wire (data is shorter when cut by the snap length). */
  origLen: number;
  ifindex: number;
  /** Kernel receive time, ms since the epoch. */
  time: number;
  /** Kernel packet type (linux/if_packet.h): 0 host, 1 broadcast, 2 multicast, 3 other host, 4 outgoing. */
  pktType: number;
  /** Link-level protocol (ETH_P_IP 0x0800, ETH_P_IPV6 0x86dd). */
  ethProto: number;
}

export interface RingOptions {
  /** Interface name, or "" for every interface of the network namespace. */
  ifname: string;
  /** `struct sock_filter[]` bytes (see bpf.ts). */
  filter: Buffer;
  /** Total ring size; split into blocks of `blockBytes`. */
  bufferBytes: number;
  /** Block size (power of two ≥ 64 KiB). A block is handed over when full or after `retireMs`. */
  blockBytes?: number;
  /** Longest a captured frame waits in a partly filled block (ms, ≥ 1): the added latency. */
  retireMs?: number;
}

export const DEFAULT_BLOCK_BYTES = 128 * 1024;
export const DEFAULT_RETIRE_MS = 1;
const RECORD_HEADER = 24;

/** Calls `fn` for every record of `buf[0, nbytes)` (the addon's layout, host byte order = LE). */
export function forEachRecord(buf: Buffer, nbytes: number, fn: (frame: RingFrame) => void): void {
  let off = 0;
  while (off + RECORD_HEADER <= nbytes) {
    const cap = buf.readUInt32LE(off);
    fn({
      data: buf.subarray(off + RECORD_HEADER, off + RECORD_HEADER + cap),
      origLen: buf.readUInt32LE(off + 4),
      ifindex: buf.readUInt32LE(off + 8),
      time: buf.readUInt32LE(off + 12) * 1000 + buf.readUInt32LE(off + 16) / 1e6,
      pktType: buf.readUInt16LE(off + 20),
      ethProto: buf.readUInt16LE(off + 22),
    });
    off += RECORD_HEADER + ((cap + 3) & ~3);
  }
}

/** An open capture ring. `onFrame` runs synchronously for each frame, in arrival order. */
export class PacketRing {
  private handle: object | undefined;
  private final: RingStats | undefined;
  private readonly out = Buffer.alloc(1 << 20);

  constructor(opts: RingOptions, onFrame: (frame: RingFrame) => void) {
    const a = loadPacketRing();
    const blockBytes = opts.blockBytes ?? DEFAULT_BLOCK_BYTES;
    const blockCount = Math.max(4, Math.floor(opts.bufferBytes / blockBytes));
    this.handle = a.open(opts.ifname, opts.filter, blockBytes, blockCount, opts.retireMs ?? DEFAULT_RETIRE_MS, this.out, (nbytes) => {
      forEachRecord(this.out, nbytes, onFrame);
    });
  }

  /** Cumulative kernel counters (still readable after close). */
  stats(): RingStats {
    if (this.final) return this.final;
    return this.handle ? loadPacketRing().stats(this.handle) : { packets: 0, drops: 0, freezes: 0, queueDrops: 0 };
  }

  close(): void {
    if (!this.handle) return;
    const a = loadPacketRing();
    this.final = a.stats(this.handle);
    a.close(this.handle);
    this.handle = undefined;
  }
}

/**
 * The byte budget of frames read from the kernel rings and not yet handed to JavaScript, shared by
 * every capture socket of the process (default 64 MiB).
 */
export function setCaptureQueueLimit(bytes: number): void {
  loadPacketRing().setQueueLimit(bytes);
}

const names = new Map<number, string>();
/** Interface name of an index (cached; looked up again when unknown: interfaces come and go). */
export function interfaceName(index: number): string {
  let n = names.get(index);
  if (n === undefined) {
    n = loadPacketRing().ifName(index) ?? `if${index}`;
    if (names.size > 4096) names.clear();
    names.set(index, n);
  }
  return n;
}
