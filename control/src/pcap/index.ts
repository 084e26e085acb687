// Public API of the capture layer; see README.md.
export * from "./capture.js";
export * from "./frame.js";
export * from "./ip-reassembler.js";
export * from "./tcp-reassembler.js";
export * from "./tcp-strict.js";

import { readCapture, type CaptureReader } from "./capture.js";
import { decodeFrame, type DecodeOptions, type DecodedPacket, type DropCounts } from "./frame.js";

export interface TimedPacket {
  time: number;
  packet: DecodedPacket;
}

/**
 * Decodes every TCP/UDP packet of a capture file, in file order. Frames that are not TCP/UDP over
 * IP are counted in `drops`; file damage is reported by the returned reader's `errors`/`lastError`
 * after iteration. Throws CaptureFormatError only when the bytes are not a capture file.
 */
export function decodeCapture(bytes: Uint8Array, drops: DropCounts = {}, options?: DecodeOptions): { reader: CaptureReader; packets: Iterable<TimedPacket> } {
  const reader = readCapture(bytes);
  function* packets(): Generator<TimedPacket> {
    for (const frame of reader) {
      const packet = decodeFrame(frame.linkType, frame.data, drops, options);
      if (packet) yield { time: frame.time, packet };
    }
  }
  return { reader, packets: { [Symbol.iterator]: packets } };
}
