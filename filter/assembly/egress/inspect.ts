// Adapter between a connection and the protocol detector (../detect/detector.ts): feeds client
// and server bytes, and once the detector is final exposes the protocol and the claims the policy
// engine verifies (SNI, Host) or evaluates (a forward proxy's CONNECT target / absolute URI).
// Inspectors are pooled by the root context, so connections allocate none in steady state.
import { Detector, DEFAULT_SERVER_CAPACITY } from "../detect/detector";
import { PROXY_CONNECT, PROXY_ABSOLUTE, PROXY_NONE, HTTP_CLAIM_BROKEN, TLS_CLAIM_BROKEN } from "../detect/claims";
import { H2_CLAIM_BROKEN } from "../detect/http2";
import { PROTO_NEED_MORE, PROTO_TLS, PROTO_HTTP, PROTO_HTTP2 } from "../detect/protocols";
import { CLAIM_NONE, CLAIM_SNI, CLAIM_HOST } from "../policy/engine";
import { parseIp, parsedHi, parsedLo } from "../resolve/ip";

export const INSPECT_NEED_MORE: u8 = 0;
export const INSPECT_DONE: u8 = 1;

/** One VM-wide buffer the filter copies Envoy's buffer bytes into before feeding the detector. */
let scratch: StaticArray<u8> = new StaticArray<u8>(0);

export function inspectScratchPtr(): usize {
  return changetype<usize>(scratch);
}

export function inspectScratchSize(): u32 {
  return <u32>scratch.length;
}

/** Sizes the copy buffer (root context, configure time). */
export function ensureInspectScratch(bytes: u32): void {
  if (<u32>scratch.length < bytes) scratch = new StaticArray<u8>(<i32>bytes);
}

export class Inspector {
  readonly detector: Detector;
  state: u8 = INSPECT_NEED_MORE;
  /** Detector protocol id once done; PROTO_NEED_MORE before. */
  protocol: i32 = PROTO_NEED_MORE;
  /** The answer came from the deadline or a byte limit, not from the bytes themselves. */
  gaveUp: bool = false;
  sniPtr: usize = 0;
  sniLen: u32 = 0;
  hostPtr: usize = 0;
  hostLen: u32 = 0;
  /**
   * The destination claim of a direct connection: CLAIM_NONE (the protocol carries none), CLAIM_SNI
   * or CLAIM_HOST at [claimPtr, claimPtr + claimLen).
   */
  claimKind: i32 = CLAIM_NONE;
  claimPtr: usize = 0;
  claimLen: u32 = 0;
  /**
   * A claim should exist but could not be extracted or is ambiguous (conflicting or malformed TLS
   * or Host, a head cut by the deadline or byte limit, obs-fold, absolute target ≠ Host, an h2c
   * first request that cannot be decoded exactly, ECH): the connection names no destination any resolution can support.
   */
  claimUnverifiable: bool = false;
  /** The ClientHello offered encrypted_client_hello (its SNI is only the outer, public name). */
  ech: bool = false;
  /** A well-formed ClientHello whose claim is unverifiable only because it offers ECH. */
  echOnly: bool = false;
  /** Forward-proxy target (CONNECT host:port or the absolute URI's host); len 0 when none. */
  targetPtr: usize = 0;
  targetLen: u32 = 0;
  targetPort: u32 = 0;
  targetIsIp: bool = false;
  targetHi: u64 = 0;
  targetLo: u64 = 0;

  /** `clientCapacity`: bytes of client stream the detector keeps (the filter's maxInspectBytes). */
  constructor(clientCapacity: i32) {
    this.detector = new Detector(clientCapacity, clientCapacity < DEFAULT_SERVER_CAPACITY ? clientCapacity : DEFAULT_SERVER_CAPACITY);
  }

  reset(): void {
    this.detector.reset();
    this.state = INSPECT_NEED_MORE;
    this.protocol = PROTO_NEED_MORE;
    this.gaveUp = false;
    this.sniPtr = 0;
    this.sniLen = 0;
    this.hostPtr = 0;
    this.hostLen = 0;
    this.claimKind = CLAIM_NONE;
    this.claimPtr = 0;
    this.claimLen = 0;
    this.claimUnverifiable = false;
    this.ech = false;
    this.echOnly = false;
    this.targetPtr = 0;
    this.targetLen = 0;
    this.targetPort = 0;
    this.targetIsIp = false;
  }

  scratchPtr(): usize {
    return changetype<usize>(scratch);
  }

  scratchSize(): u32 {
    return <u32>scratch.length;
  }

  feedClient(ptr: usize, len: u32): void {
    if (this.state != INSPECT_NEED_MORE) return;
    const r = this.detector.feedClient(ptr, <i32>len);
    if (r != PROTO_NEED_MORE) this.finish(r);
  }

  feedServer(ptr: usize, len: u32): void {
    if (this.state != INSPECT_NEED_MORE) return;
    const r = this.detector.feedServer(ptr, <i32>len);
    if (r != PROTO_NEED_MORE) this.finish(r);
  }

  /** Deadline, byte limit or end of stream: take the detector's best final answer. */
  giveUp(): void {
    if (this.state != INSPECT_NEED_MORE) return;
    this.gaveUp = true;
    this.finish(this.detector.expire());
  }

  private finish(protocol: i32): void {
    const d = this.detector;
    this.state = INSPECT_DONE;
    this.protocol = protocol;
    this.sniPtr = d.sniPtr();
    this.sniLen = <u32>d.sniLen();
    this.hostPtr = d.httpHostPtr();
    this.hostLen = <u32>d.httpHostLen();
    this.ech = d.echOffered();
    const form = d.proxyForm();
    if (form == PROXY_CONNECT || form == PROXY_ABSOLUTE) {
      this.targetPtr = d.connectTargetPtr();
      this.targetLen = <u32>d.connectTargetLen();
      const port = d.connectTargetPort();
      this.targetPort = port > 0 ? <u32>port : 0;
      let p = this.targetPtr;
      let n = this.targetLen;
      // "[v6]" literals come bracketed.
      if (n >= 2 && load<u8>(p) == 0x5b && load<u8>(p + n - 1) == 0x5d) {
        p++;
        n -= 2;
      }
      this.targetIsIp = n > 0 && parseIp(p, n);
      if (this.targetIsIp) {
        this.targetHi = parsedHi;
        this.targetLo = parsedLo;
      }
    }
    this.deriveClaim(protocol);
  }

  /** What the connection claims as its destination when it goes straight to the server. */
  private deriveClaim(protocol: i32): void {
    const d = this.detector;
    if (d.claimCut) {
      this.claimUnverifiable = true;
    } else if (protocol == PROTO_TLS) {
      // GREASE and real ECH look alike; either way the outer SNI is the client's free choice.
      this.echOnly = this.ech && (d.tlsFlags() & TLS_CLAIM_BROKEN) == 0;
      if ((d.tlsFlags() & TLS_CLAIM_BROKEN) != 0 || this.ech) this.claimUnverifiable = true;
      else if (this.sniLen > 0) this.setClaim(CLAIM_SNI, this.sniPtr, this.sniLen);
    } else if (protocol == PROTO_HTTP) {
      if ((d.httpFlags() & HTTP_CLAIM_BROKEN) != 0) this.claimUnverifiable = true;
      else if (d.proxyForm() != PROXY_NONE) {
        // Absolute-form / CONNECT target: what an origin server routes on (RFC 9112 §3.2.2).
        if (this.targetLen == 0) this.claimUnverifiable = true;
        else this.setClaim(CLAIM_HOST, this.targetPtr, this.targetLen);
      } else if (this.hostLen > 0) this.setClaim(CLAIM_HOST, this.hostPtr, this.hostLen);
    } else if (protocol == PROTO_HTTP2) {
      // h2c prior knowledge: the first request's :authority (else host), decoded from HPACK.
      if ((d.h2Flags() & H2_CLAIM_BROKEN) != 0) this.claimUnverifiable = true;
      else if (d.h2AuthorityLen() > 0) {
        this.hostPtr = d.h2AuthorityPtr(); // reported as the request's host
        this.hostLen = <u32>d.h2AuthorityLen();
        this.setClaim(CLAIM_HOST, this.hostPtr, this.hostLen);
      }
    }
  }

  private setClaim(kind: i32, ptr: usize, len: u32): void {
    this.claimKind = kind;
    this.claimPtr = ptr;
    this.claimLen = len;
  }
}
