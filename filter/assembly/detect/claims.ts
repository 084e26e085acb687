// Claims a connection makes about its destination, recorded by the recognizers as byte ranges of
// the detector's client buffer (offsets, not pointers, so a pooled detector stays valid).

// @ts-ignore: decorator
@inline export const MAX_ALPN: i32 = 16;

/** proxyForm values. */
// @ts-ignore: decorator
@inline export const PROXY_NONE: i32 = 0;
// @ts-ignore: decorator
@inline export const PROXY_CONNECT: i32 = 1;
// @ts-ignore: decorator
@inline export const PROXY_ABSOLUTE: i32 = 2;

/** httpFlags / tlsFlags bits. */
// @ts-ignore: decorator
@inline export const HTTP_HOST_CONFLICT: i32 = 1;
// @ts-ignore: decorator
@inline export const TLS_SNI_CONFLICT: i32 = 1;
// @ts-ignore: decorator
@inline export const TLS_SSLV2_HELLO: i32 = 2;
/** Record and handshake headers were valid but the ClientHello body is malformed: no claims. */
// @ts-ignore: decorator
@inline export const TLS_MALFORMED: i32 = 8;
/** ClientHello larger than the inspected bytes: claims come from its first part only. */
// @ts-ignore: decorator
@inline export const TLS_TRUNCATED: i32 = 4;

export class Claims {
  sniOff: i32 = 0;
  sniLen: i32 = 0;
  alpnCount: i32 = 0;
  alpnOff: StaticArray<i32> = new StaticArray<i32>(MAX_ALPN);
  alpnLen: StaticArray<i32> = new StaticArray<i32>(MAX_ALPN);
  /** Highest offered version (0x0304 = TLS 1.3), 0 when not TLS. */
  tlsVersion: i32 = 0;
  ech: bool = false;
  tlsFlags: i32 = 0;
  hostOff: i32 = 0;
  hostLen: i32 = 0;
  hostPort: i32 = -1;
  proxyForm: i32 = PROXY_NONE;
  targetOff: i32 = 0;
  targetLen: i32 = 0;
  targetPort: i32 = -1;
  httpFlags: i32 = 0;

  reset(): void {
    this.sniOff = 0;
    this.sniLen = 0;
    this.alpnCount = 0;
    this.tlsVersion = 0;
    this.ech = false;
    this.tlsFlags = 0;
    this.hostOff = 0;
    this.hostLen = 0;
    this.hostPort = -1;
    this.proxyForm = PROXY_NONE;
    this.targetOff = 0;
    this.targetLen = 0;
    this.targetPort = -1;
    this.httpFlags = 0;
  }

  addAlpn(off: i32, len: i32): void {
    if (this.alpnCount >= MAX_ALPN) return;
    unchecked(this.alpnOff[this.alpnCount] = off);
    unchecked(this.alpnLen[this.alpnCount] = len);
    this.alpnCount++;
  }
}
