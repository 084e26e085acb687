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
/** The request head did not end within the inspected bytes or before the deadline. */
// @ts-ignore: decorator
@inline export const HTTP_HEAD_INCOMPLETE: i32 = 2;
/** A header line continues the previous one (obs-fold, RFC 9112 §5.2): servers differ on it. */
// @ts-ignore: decorator
@inline export const HTTP_OBS_FOLD: i32 = 4;
/** "Host :" (whitespace before the colon) or a Host value that is not a host[:port]. */
// @ts-ignore: decorator
@inline export const HTTP_HOST_MALFORMED: i32 = 8;
/** The absolute-form / CONNECT target names another host than the Host header. */
// @ts-ignore: decorator
@inline export const HTTP_TARGET_CONFLICT: i32 = 16;
/** Content-Length and Transfer-Encoding together, several Content-Lengths, or a bad one: where the body ends is ambiguous. */
// @ts-ignore: decorator
@inline export const HTTP_BODY_AMBIGUOUS: i32 = 32;
/** The request carries an Upgrade header (the connection may stop being HTTP/1 after it). */
// @ts-ignore: decorator
@inline export const HTTP_UPGRADE: i32 = 64;
/** The Upgrade header offers "h2c": after a 101 the connection speaks HTTP/2 (RFC 7540 §3.2). */
// @ts-ignore: decorator
@inline export const HTTP_UPGRADE_H2C: i32 = 256;
/** Transfer-Encoding ends in chunked: the body is a chunk sequence. */
// @ts-ignore: decorator
@inline export const HTTP_CHUNKED: i32 = 128;
/** Flags that leave the request's destination claim unverifiable. */
// @ts-ignore: decorator
@inline export const HTTP_CLAIM_BROKEN: i32 = HTTP_HOST_CONFLICT | HTTP_HEAD_INCOMPLETE | HTTP_OBS_FOLD | HTTP_HOST_MALFORMED |
  HTTP_TARGET_CONFLICT | HTTP_BODY_AMBIGUOUS;
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
/** TLS flags that leave the ClientHello's SNI unverifiable. */
// @ts-ignore: decorator
@inline export const TLS_CLAIM_BROKEN: i32 = TLS_SNI_CONFLICT | TLS_TRUNCATED | TLS_MALFORMED;

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
  /** Content-Length of the request body; -1 when absent. */
  contentLength: i64 = -1;

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
    this.contentLength = -1;
  }

  addAlpn(off: i32, len: i32): void {
    if (this.alpnCount >= MAX_ALPN) return;
    unchecked(this.alpnOff[this.alpnCount] = off);
    unchecked(this.alpnLen[this.alpnCount] = len);
    this.alpnCount++;
  }
}
