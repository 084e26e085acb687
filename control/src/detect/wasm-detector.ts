// Node-side handle on the detector compiled into egret.wasm (filter/assembly/tools/detect.ts):
// the same code the filter runs, driven through its tool exports.
import { instantiateTools, type ToolModule } from "../wasm/tools.js";

/** Claims extracted from a connection's first bytes (null where absent). */
export interface DetectedClaims {
  sni: string | null;
  alpn: string[] | null;
  tlsVersion: number | null;
  ech: boolean;
  httpHost: string | null;
  httpHostPort: number | null;
  /** "connect" (CONNECT host:port), "absolute" (GET http://host/…), or null. */
  proxyForm: "connect" | "absolute" | null;
  connectTarget: string | null;
  connectTargetPort: number | null;
  /** h2c: the first request's :authority (else host), host part; null when absent or unverifiable. */
  h2Authority: string | null;
  /** h2c: flags of the first request (1 malformed, 2 incomplete, 4 conflict, 8 authority malformed). */
  h2Flags: number;
}

type Fn<A extends unknown[], R> = (...a: A) => R;

const CLAIM_SNI = 0;
const CLAIM_HOST = 1;
const CLAIM_TARGET = 2;
const CLAIM_H2_AUTHORITY = 3;
const CLAIM_ALPN = 10;
const INFO = { alpnCount: 0, tlsVersion: 1, ech: 2, hostPort: 4, proxyForm: 5, targetPort: 6, h2Flags: 10 } as const;

export const PROTO_NEED_MORE = -1;

/** One instance of egret.wasm's detector table. Not thread-safe; cheap to keep for a process. */
export class DetectorEngine {
  private readonly tools: ToolModule;
  private readonly scratch: number;
  private readonly scratchSize: number;
  readonly protocolNames: readonly string[];
  private readonly f: {
    open: Fn<[number], number>; close: Fn<[number], void>; feed: Fn<[number, number, number], number>;
    expire: Fn<[number], number>; result: Fn<[number], number>; claimPtr: Fn<[number, number], number>;
    claimLen: Fn<[number, number], number>; info: Fn<[number, number], number>;
  };

  constructor(tools: ToolModule = instantiateTools()) {
    this.tools = tools;
    this.scratch = tools.fn<() => number>("detect_scratch")();
    this.scratchSize = tools.fn<() => number>("detect_scratch_size")();
    this.f = {
      open: tools.fn("detect_open"), close: tools.fn("detect_close"), feed: tools.fn("detect_feed"),
      expire: tools.fn("detect_expire"), result: tools.fn("detect_result"), claimPtr: tools.fn("detect_claim_ptr"),
      claimLen: tools.fn("detect_claim_len"), info: tools.fn("detect_info"),
    };
    const count = tools.fn<() => number>("detect_protocol_count")();
    const nameOf = tools.fn<(id: number) => number>("detect_protocol_name");
    const names: string[] = [];
    for (let id = 0; id < count; id++) {
      const n = nameOf(id);
      names.push(Buffer.from(tools.u8().subarray(this.scratch, this.scratch + n)).toString("latin1"));
    }
    this.protocolNames = names;
  }

  /** Bytes of wasm linear memory (to check that detection does not grow it). */
  get memoryBytes(): number {
    return this.tools.memory.buffer.byteLength;
  }

  /** The label of a protocol id ("unknown" for anything out of range). */
  protocolName(id: number): string {
    return this.protocolNames[id] ?? "unknown";
  }

  /** Starts detection for a new connection. `midstream`: the capture missed its start. */
  open(midstream = false): DetectionSession {
    const h = this.f.open(midstream ? 1 : 0);
    if (h < 0) throw new Error("too many open detector sessions (close finished ones)");
    return new DetectionSession(this, h);
  }

  /** @internal */
  feed(h: number, fromServer: boolean, bytes: Uint8Array): number {
    let r = this.f.result(h);
    for (let off = 0; off < bytes.length && r === PROTO_NEED_MORE; off += this.scratchSize) {
      const chunk = bytes.subarray(off, off + this.scratchSize);
      this.tools.u8().set(chunk, this.scratch);
      r = this.f.feed(h, fromServer ? 1 : 0, chunk.length);
    }
    return r;
  }
  /** @internal */
  expire(h: number): number { return this.f.expire(h); }
  /** @internal */
  result(h: number): number { return this.f.result(h); }
  /** @internal */
  close(h: number): void { this.f.close(h); }
  /** @internal */
  claims(h: number): DetectedClaims {
    const text = (which: number): string | null => {
      const len = this.f.claimLen(h, which);
      if (len <= 0) return null;
      const ptr = this.f.claimPtr(h, which);
      return Buffer.from(this.tools.u8().subarray(ptr, ptr + len)).toString("latin1");
    };
    const alpnCount = this.f.info(h, INFO.alpnCount);
    const alpn: string[] = [];
    for (let i = 0; i < alpnCount; i++) alpn.push(text(CLAIM_ALPN + i) ?? "");
    const tlsVersion = this.f.info(h, INFO.tlsVersion);
    const hostPort = this.f.info(h, INFO.hostPort);
    const form = this.f.info(h, INFO.proxyForm);
    const targetPort = this.f.info(h, INFO.targetPort);
    const httpHost = text(CLAIM_HOST);
    return {
      sni: text(CLAIM_SNI),
      alpn: alpnCount > 0 ? alpn : null,
      tlsVersion: tlsVersion > 0 ? tlsVersion : null,
      ech: this.f.info(h, INFO.ech) === 1,
      httpHost,
      httpHostPort: httpHost !== null && hostPort >= 0 ? hostPort : null,
      proxyForm: form === 1 ? "connect" : form === 2 ? "absolute" : null,
      connectTarget: form !== 0 ? text(CLAIM_TARGET) : null,
      connectTargetPort: form !== 0 && targetPort >= 0 ? targetPort : null,
      h2Authority: text(CLAIM_H2_AUTHORITY),
      h2Flags: this.f.info(h, INFO.h2Flags),
    };
  }
}

/** Detection state of one connection. Close it when done so the engine can reuse it. */
export class DetectionSession {
  private closed = false;
  constructor(private readonly engine: DetectorEngine, private readonly handle: number) {}

  /** Feeds bytes in arrival order; returns the protocol id or PROTO_NEED_MORE. */
  feedClient(bytes: Uint8Array): number { return this.live().feed(this.handle, false, bytes); }
  feedServer(bytes: Uint8Array): number { return this.live().feed(this.handle, true, bytes); }
  /** The deadline passed or the connection ended: the final protocol id. */
  expire(): number { return this.live().expire(this.handle); }
  get result(): number { return this.live().result(this.handle); }
  get done(): boolean { return this.result !== PROTO_NEED_MORE; }
  get protocol(): string { return this.engine.protocolName(this.result); }
  claims(): DetectedClaims { return this.live().claims(this.handle); }
  close(): void {
    if (!this.closed) this.engine.close(this.handle);
    this.closed = true;
  }
  private live(): DetectorEngine {
    if (this.closed) throw new Error("detection session already closed");
    return this.engine;
  }
}
