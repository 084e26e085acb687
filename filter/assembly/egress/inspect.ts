// Adapter between a connection and the protocol detector (../detect/detector.ts): feeds client
// and server bytes, and once the detector is final exposes the protocol and the claims the policy
// engine verifies (SNI, Host) or evaluates (a forward proxy's CONNECT target / absolute URI).
// Inspectors are pooled by the root context, so connections allocate none in steady state.
import { Detector } from "../detect/detector";
import { PROXY_CONNECT, PROXY_ABSOLUTE, HTTP_HOST_CONFLICT } from "../detect/claims";
import { PROTO_NEED_MORE } from "../detect/protocols";
import { parseIp, parsedHi, parsedLo } from "../resolve/ip";

export const INSPECT_NEED_MORE: u8 = 0;
export const INSPECT_DONE: u8 = 1;

/** One VM-wide buffer the filter copies Envoy's buffer bytes into before feeding the detector. */
let scratch: StaticArray<u8> = new StaticArray<u8>(0);

/** Sizes the copy buffer (root context, configure time). */
export function ensureInspectScratch(bytes: u32): void {
  if (<u32>scratch.length < bytes) scratch = new StaticArray<u8>(<i32>bytes);
}

export class Inspector {
  readonly detector: Detector = new Detector();
  state: u8 = INSPECT_NEED_MORE;
  /** Detector protocol id once done; PROTO_NEED_MORE before. */
  protocol: i32 = PROTO_NEED_MORE;
  /** The answer came from the deadline or a byte limit, not from the bytes themselves. */
  gaveUp: bool = false;
  sniPtr: usize = 0;
  sniLen: u32 = 0;
  hostPtr: usize = 0;
  hostLen: u32 = 0;
  /** Several different Host headers: the request names no single verifiable host. */
  hostConflict: bool = false;
  /** Forward-proxy target (CONNECT host:port or the absolute URI's host); len 0 when none. */
  targetPtr: usize = 0;
  targetLen: u32 = 0;
  targetPort: u32 = 0;
  targetIsIp: bool = false;
  targetHi: u64 = 0;
  targetLo: u64 = 0;

  reset(): void {
    this.detector.reset();
    this.state = INSPECT_NEED_MORE;
    this.protocol = PROTO_NEED_MORE;
    this.gaveUp = false;
    this.sniPtr = 0;
    this.sniLen = 0;
    this.hostPtr = 0;
    this.hostLen = 0;
    this.hostConflict = false;
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
    this.hostConflict = (d.httpFlags() & HTTP_HOST_CONFLICT) != 0;
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
  }
}
