// Offline analysis: the agent's pipeline and observer over a capture file, driven by the capture's
// clock. Used by `egret dns` and by the corpus tests, so both exercise exactly the production path.
import { decodeFrame, readCapture, type DropCounts } from "../pcap/index.js";
import { DnsObserver, type DnsMessageMeta, type DnsObservation, type DnsObserverOptions, type RejectReason } from "./observer.js";
import { DnsPipeline, type PipelineStats } from "./pipeline.js";

export interface OfflineOptions extends Omit<DnsObserverOptions, "now" | "onObservation" | "onReject"> {
  dnsPorts?: readonly number[];
  onObservation?(obs: DnsObservation): void;
  onReject?(reason: RejectReason, meta: DnsMessageMeta): void;
}

export interface OfflineResult {
  observer: DnsObserver;
  pipeline: PipelineStats;
  /** Frames that carried no TCP/UDP over IP, by reason. */
  frameDrops: DropCounts;
  frames: number;
  /** Damage in the capture file: number of bad records and the last description. */
  captureErrors: number;
  captureError: string | undefined;
}

/**
 * Runs the observer over every frame of `bytes` (pcap or pcapng). Throws CaptureFormatError when
 * the bytes are not a capture file, and Error for invalid options; never on packet contents.
 */
export function analyzeCapture(bytes: Uint8Array, options: OfflineOptions): OfflineResult {
  let clock = 0;
  const observer = new DnsObserver({ ...options, now: () => clock });
  const pipeline = new DnsPipeline(observer, options.dnsPorts ? { dnsPorts: options.dnsPorts } : {});
  // Frames are views into the capture. A plain Uint8Array view makes each of them far cheaper to
  // create than Buffer.subarray's Buffer; nothing downstream uses Buffer methods.
  const plain = Buffer.isBuffer(bytes) ? new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength) : bytes;
  const reader = readCapture(plain);
  const frameDrops: DropCounts = {};
  let frames = 0;
  // One context reused for every packet: the pipeline reads it only during push() (and flush(),
  // which sees the last packet's, as before) and copies what it keeps.
  const ctx = { time: 0, frame: 0 };
  for (const frame of reader) {
    frames++;
    const packet = decodeFrame(frame.linkType, frame.data, frameDrops);
    if (!packet) continue;
    const ms = frame.time * 1000;
    // Query expiry follows the capture's clock, which must not run backwards for the observer.
    clock = Math.max(clock, ms);
    ctx.time = ms;
    ctx.frame = frames;
    pipeline.push(packet, ctx);
  }
  pipeline.flush();
  return {
    observer, pipeline: pipeline.stats, frameDrops, frames,
    captureErrors: reader.errors, captureError: reader.lastError,
  };
}
