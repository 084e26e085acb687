// Tool exports of the protocol detector, so Node (egret detect, tests) runs the very same compiled
// detector as the filter. Detectors live in a handle table; input goes through one static scratch
// buffer; claims are read as (pointer, length) into the detector's own buffer. Only opening a
// handle for the first time allocates; reopened handles reuse their detector.
import { Detector } from "../detect/detector";
import { PROTOCOL_COUNT, protocolName } from "../detect/protocols";

const SCRATCH_SIZE: i32 = 16384;
const scratch = memory.data(16384);
/** Upper bound on simultaneously open handles (each holds ~10 KiB). */
const MAX_HANDLES: i32 = 65536;
const detectors = new Array<Detector | null>();
const freeHandles = new Array<i32>();
/** isFree[h]: the handle is in freeHandles (so a double close cannot list it twice). */
const isFree = new Array<bool>();

function get(h: i32): Detector | null {
  return h >= 0 && h < detectors.length ? unchecked(detectors[h]) : null;
}

/** The scratch buffer Node writes input bytes into (detect_scratch_size() bytes). */
export function detect_scratch(): usize {
  return scratch;
}
export function detect_scratch_size(): i32 {
  return SCRATCH_SIZE;
}

/** Opens a detector for a new connection; -1 when too many are open. `midstream`: see README. */
export function detect_open(midstream: bool): i32 {
  let h: i32;
  if (freeHandles.length > 0) {
    h = freeHandles.pop();
    unchecked(isFree[h] = false);
  } else {
    if (detectors.length >= MAX_HANDLES) return -1;
    h = detectors.length;
    detectors.push(new Detector());
    isFree.push(false);
  }
  const d = unchecked(detectors[h])!;
  d.reset();
  d.setMidstream(midstream);
  return h;
}

/** Returns the handle's detector to the pool. */
export function detect_close(h: i32): void {
  const d = get(h);
  if (d == null || unchecked(isFree[h])) return;
  d.reset();
  unchecked(isFree[h] = true);
  freeHandles.push(h);
}

/** Feeds scratch[0..len) as client (fromServer = false) or server bytes. Returns the result or -2 for a bad handle. */
export function detect_feed(h: i32, fromServer: bool, len: i32): i32 {
  const d = get(h);
  if (d == null) return -2;
  if (len < 0) len = 0;
  if (len > SCRATCH_SIZE) len = SCRATCH_SIZE;
  return fromServer ? d.feedServer(scratch, len) : d.feedClient(scratch, len);
}

export function detect_expire(h: i32): i32 {
  const d = get(h);
  return d == null ? -2 : d.expire();
}

export function detect_result(h: i32): i32 {
  const d = get(h);
  return d == null ? -2 : d.result();
}

/**
 * Claim accessors. `which`: 0 SNI, 1 HTTP Host, 2 CONNECT/absolute-form target, 3 h2c :authority
 * (else host) of the first request, 10+i ALPN entry i.
 * Pointer and length are into the detector's buffer (valid until the next call on this handle).
 */
export function detect_claim_ptr(h: i32, which: i32): usize {
  const d = get(h);
  if (d == null) return 0;
  if (which == 0) return d.sniPtr();
  if (which == 1) return d.httpHostPtr();
  if (which == 2) return d.connectTargetPtr();
  if (which == 3) return d.h2AuthorityPtr();
  if (which >= 10) return d.alpnPtr(which - 10);
  return 0;
}
export function detect_claim_len(h: i32, which: i32): i32 {
  const d = get(h);
  if (d == null) return 0;
  if (which == 0) return d.sniLen();
  if (which == 1) return d.httpHostLen();
  if (which == 2) return d.connectTargetLen();
  if (which == 3) return d.h2AuthorityLen();
  if (which >= 10) return d.alpnLen(which - 10);
  return 0;
}

/**
 * Integer facts. `which`: 0 ALPN count, 1 TLS version, 2 ECH offered (0/1), 3 TLS flags,
 * 4 HTTP Host port (-1 none), 5 proxy form (0 none, 1 CONNECT, 2 absolute-form), 6 target port,
 * 7 HTTP flags, 8 client bytes buffered, 9 server bytes buffered, 10 h2c flags (H2_*),
 * 11 h2c :authority port (-1 none), 12 claim cut (1: the bytes ended while a claim was still arriving).
 */
export function detect_info(h: i32, which: i32): i32 {
  const d = get(h);
  if (d == null) return -2;
  switch (which) {
    case 0: return d.alpnCount();
    case 1: return d.tlsVersion();
    case 2: return d.echOffered() ? 1 : 0;
    case 3: return d.tlsFlags();
    case 4: return d.httpHostPort();
    case 5: return d.proxyForm();
    case 6: return d.connectTargetPort();
    case 7: return d.httpFlags();
    case 8: return d.clientBytes();
    case 9: return d.serverBytes();
    case 10: return d.h2Flags();
    case 11: return d.h2AuthorityPort();
    case 12: return d.claimCut ? 1 : 0;
  }
  return -1;
}

export function detect_protocol_count(): i32 {
  return PROTOCOL_COUNT;
}

/** Writes the label of protocol `id` into scratch; returns its length (0 when out of range). */
export function detect_protocol_name(id: i32): i32 {
  const name = protocolName(id);
  for (let i = 0; i < name.length; i++) store<u8>(scratch + <usize>i, <u8>name.charCodeAt(i));
  return name.length;
}
