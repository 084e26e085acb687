// egret.v1 messages the filter sends and receives (proto/egret/v1/filter.proto, common.proto),
// hand-coded over PbReader/PbWriter. Decoders are views: they record byte ranges inside the
// received message and iterate repeated fields on demand, so nothing is copied or allocated.
// Field numbers below must follow the .proto files (a test cross-checks with protobufjs).
import { PbReader, WIRE_VARINT, WIRE_LEN } from "./reader";
import { PbWriter } from "./writer";

// WatchRequest.type / WatchResponse.type / LookupResponse.result
export const WATCH_SUBSCRIBE: u32 = 1;
export const WATCH_ACK: u32 = 2;
export const WATCH_NACK: u32 = 3;
export const WATCH_SNAPSHOT: u32 = 1;
export const WATCH_DELTA: u32 = 2;
export const LOOKUP_FOUND: u32 = 1;
export const LOOKUP_NOT_FOUND: u32 = 2;
export const LOOKUP_UNKNOWN_POD: u32 = 3;

/** A (ptr, len) byte range inside a received message. */
export class Span {
  ptr: usize = 0;
  len: u32 = 0;
  set(r: PbReader): void {
    this.ptr = r.bytesPtr;
    this.len = r.bytesLen;
  }
  clear(): void {
    this.ptr = 0;
    this.len = 0;
  }
  /** UTF-8 decode (allocates: root context only). */
  toString(): string {
    return this.len == 0 ? "" : String.UTF8.decodeUnsafe(this.ptr, this.len);
  }
}

// ---- Watch ----------------------------------------------------------------------------------

/** WatchRequest SUBSCRIBE. `podIps` holds concatenated 4/16-byte addresses with their lengths. */
export function encodeSubscribe(w: PbWriter, podName: string, podNamespace: string, podIps: StaticArray<u8>, podIpLens: StaticArray<u8>, podIpCount: i32, instanceId: string, resumeEpoch: string, resumeVersion: u64): bool {
  w.reset();
  w.uint32(1, WATCH_SUBSCRIBE);
  w.string(2, podName);
  w.string(3, podNamespace);
  let off: usize = 0;
  for (let i = 0; i < podIpCount; i++) {
    const n = <u32>podIpLens[i];
    w.bytes(4, changetype<usize>(podIps) + off, n);
    off += n;
  }
  w.string(5, instanceId);
  if (resumeEpoch.length > 0) {
    w.string(6, resumeEpoch);
    w.uint64(7, resumeVersion);
  }
  return w.ok();
}

/** WatchRequest ACK or NACK of a response. */
export function encodeAck(w: PbWriter, type: u32, version: u64, nonce: Span, errorDetail: string): bool {
  w.reset();
  w.uint32(1, type);
  w.uint64(8, version);
  if (nonce.len > 0) w.bytes(9, nonce.ptr, nonce.len);
  if (errorDetail.length > 0) w.string(10, errorDetail);
  return w.ok();
}

/** Top-level fields of a WatchResponse; repeated fields are iterated with the methods below. */
export class WatchResponseView {
  type: u32 = 0;
  epoch: Span = new Span();
  version: u64 = 0;
  baseVersion: u64 = 0;
  nonce: Span = new Span();
  policy: Span = new Span();
  policyHash: Span = new Span();
  podSelected: bool = false;
  upsertCount: i32 = 0;
  removalCount: i32 = 0;
  serverTimeMs: i64 = 0;
  private msgPtr: usize = 0;
  private msgLen: usize = 0;
  private iter: PbReader = new PbReader();

  /** Decodes the scalars and counts the repeated fields; false when malformed. */
  decode(ptr: usize, len: usize): bool {
    this.type = 0;
    this.epoch.clear();
    this.version = 0;
    this.baseVersion = 0;
    this.nonce.clear();
    this.policy.clear();
    this.policyHash.clear();
    this.podSelected = false;
    this.upsertCount = 0;
    this.removalCount = 0;
    this.serverTimeMs = 0;
    this.msgPtr = ptr;
    this.msgLen = len;
    const r = this.iter.reset(ptr, len);
    while (r.next()) {
      const f = r.field;
      if (f == 1 && r.expect(WIRE_VARINT)) this.type = r.varint32();
      else if (f == 2 && r.expect(WIRE_LEN)) { r.bytes(); this.epoch.set(r); }
      else if (f == 3 && r.expect(WIRE_VARINT)) this.version = r.varint64();
      else if (f == 4 && r.expect(WIRE_VARINT)) this.baseVersion = r.varint64();
      else if (f == 5 && r.expect(WIRE_LEN)) { r.bytes(); this.nonce.set(r); }
      else if (f == 6 && r.expect(WIRE_LEN)) { r.bytes(); this.policy.set(r); }
      else if (f == 7 && r.expect(WIRE_LEN)) { r.bytes(); this.policyHash.set(r); }
      else if (f == 8 && r.expect(WIRE_VARINT)) this.podSelected = r.bool();
      else if (f == 9 && r.expect(WIRE_LEN)) { r.bytes(); this.upsertCount++; }
      else if (f == 10 && r.expect(WIRE_LEN)) { r.bytes(); this.removalCount++; }
      else if (f == 11 && r.expect(WIRE_VARINT)) this.serverTimeMs = <i64>r.varint64();
      else r.skip();
    }
    return !r.failed;
  }

  /** Restarts iteration over upserts/removals. */
  rewind(): void {
    this.iter.reset(this.msgPtr, this.msgLen);
  }

  /** Advances to the next upsert and points `res` at it; false when there is none. */
  nextUpsert(res: ResolutionView): bool {
    const r = this.iter;
    while (r.next()) {
      if (r.field == 9 && r.wire == WIRE_LEN) {
        r.bytes();
        return res.decode(r.bytesPtr, r.bytesLen);
      }
      r.skip();
    }
    return false;
  }

  /** Advances to the next removal; its IP bytes are in `out`. */
  nextRemoval(out: Span): bool {
    const r = this.iter;
    while (r.next()) {
      if (r.field == 10 && r.wire == WIRE_LEN) {
        r.bytes();
        out.set(r);
        return true;
      }
      r.skip();
    }
    return false;
  }
}

/** egret.v1.Resolution: ip, names (iterated), expires. */
export class ResolutionView {
  ip: Span = new Span();
  /** The last nextName's ResolvedName.ech_public_names (the first two: resolve/table.ts ECH_NAMES_PER_ENTRY). */
  readonly echNames: StaticArray<Span> = [new Span(), new Span()];
  echCount: i32 = 0;
  expiresMs: i64 = 0;
  nameCount: i32 = 0;
  valid: bool = false;
  private ptr: usize = 0;
  private len: usize = 0;
  private iter: PbReader = new PbReader();
  private inner: PbReader = new PbReader();

  decode(ptr: usize, len: usize): bool {
    this.ptr = ptr;
    this.len = len;
    this.ip.clear();
    this.expiresMs = 0;
    this.nameCount = 0;
    const r = this.iter.reset(ptr, len);
    while (r.next()) {
      if (r.field == 1 && r.expect(WIRE_LEN)) { r.bytes(); this.ip.set(r); }
      else if (r.field == 2 && r.expect(WIRE_LEN)) { r.bytes(); this.nameCount++; }
      else if (r.field == 3 && r.expect(WIRE_VARINT)) this.expiresMs = <i64>r.varint64();
      else r.skip();
    }
    this.valid = !r.failed;
    this.iter.reset(ptr, len);
    return this.valid;
  }

  /**
   * Next ResolvedName: its name bytes, expiry (expires[0]) and egret.v1.NameSource (expires[1];
   * 0 when unset); false at the end or when malformed.
   */
  nextName(name: Span, expires: StaticArray<i64>): bool {
    const r = this.iter;
    while (r.next()) {
      if (r.field == 2 && r.wire == WIRE_LEN) {
        r.bytes();
        const n = this.inner.enter(r);
        name.clear();
        unchecked((expires[0] = 0));
        unchecked((expires[1] = 0));
        this.echCount = 0;
        while (n.next()) {
          if (n.field == 1 && n.expect(WIRE_LEN)) { n.bytes(); name.set(n); }
          else if (n.field == 6 && n.expect(WIRE_LEN)) {
            n.bytes();
            if (this.echCount < this.echNames.length) unchecked(this.echNames[this.echCount++]).set(n);
          }
          else if (n.field == 3 && n.expect(WIRE_VARINT)) unchecked((expires[0] = <i64>n.varint64()));
          else if (n.field == 4 && n.expect(WIRE_VARINT)) unchecked((expires[1] = <i64>n.varint32()));
          else n.skip();
        }
        return !n.failed;
      }
      r.skip();
    }
    return false;
  }
}

// ---- Lookup ---------------------------------------------------------------------------------

export function encodeLookup(w: PbWriter, srcIp: usize, srcIpLen: u32, dstIp: usize, dstIpLen: u32, podName: string, podNamespace: string, waitMs: u32, instanceId: string, claimPtr: usize = 0, claimLen: u32 = 0): bool {
  w.reset();
  w.bytes(1, srcIp, srcIpLen);
  w.bytes(2, dstIp, dstIpLen);
  w.string(3, podName);
  w.string(4, podNamespace);
  w.uint32(5, waitMs);
  w.string(6, instanceId);
  if (claimLen > 0) w.bytes(7, claimPtr, claimLen);
  return w.ok();
}

export class LookupResponseView {
  result: u32 = 0;
  resolution: Span = new Span();
  serverTimeMs: i64 = 0;
  private r: PbReader = new PbReader();

  decode(ptr: usize, len: usize): bool {
    this.result = 0;
    this.resolution.clear();
    this.serverTimeMs = 0;
    const r = this.r.reset(ptr, len);
    while (r.next()) {
      if (r.field == 1 && r.expect(WIRE_VARINT)) this.result = r.varint32();
      else if (r.field == 2 && r.expect(WIRE_LEN)) { r.bytes(); this.resolution.set(r); }
      else if (r.field == 3 && r.expect(WIRE_VARINT)) this.serverTimeMs = <i64>r.varint64();
      else r.skip();
    }
    return !r.failed;
  }
}

// ---- Report ---------------------------------------------------------------------------------
// A ReportRequest is `repeated VerdictEvent events = 1; uint64 dropped_events = 2;`. The filter
// appends each event, already encoded, to a batch buffer (field 1 of ReportRequest), so a batch is
// sent as-is and deciding a connection only writes bytes.

export const EV_TIME: u32 = 1;
export const EV_POD_NAME: u32 = 2;
export const EV_POD_NAMESPACE: u32 = 3;
export const EV_SOURCE_IP: u32 = 4;
export const EV_SOURCE_PORT: u32 = 5;
export const EV_DESTINATION_IP: u32 = 6;
export const EV_DESTINATION_PORT: u32 = 7;
export const EV_NAMES: u32 = 8;
export const EV_PROTOCOL: u32 = 9;
export const EV_SNI: u32 = 10;
export const EV_HOST: u32 = 11;
export const EV_VERDICT: u32 = 12;
export const EV_REASON: u32 = 13;
export const EV_POLICY: u32 = 14;
export const EV_RULE: u32 = 15;
export const EV_MODE: u32 = 16;
export const EV_MATCHED_NAME: u32 = 17;
export const EV_INSTANCE_ID: u32 = 18;
export const EV_DETAIL: u32 = 19;
export const EV_EVIDENCE: u32 = 20;
export const EV_CLUSTER: u32 = 21;
export const REPORT_EVENTS: u32 = 1;
export const REPORT_DROPPED: u32 = 2;
export const REPORT_OPENED: u32 = 3;
export const OPENED_SOURCE_IP: u32 = 1;
export const OPENED_DESTINATION_IP: u32 = 2;
export const OPENED_DESTINATION_PORT: u32 = 3;
export const OPENED_TIME: u32 = 4;
