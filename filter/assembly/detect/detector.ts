// Per-connection protocol detector: buffers the first client and server bytes (bounded, allocated
// once), runs the recognizers over them in priority order, and decides once. See README.md.
import { Claims, HTTP_HEAD_INCOMPLETE, PROXY_NONE, TLS_MALFORMED, TLS_TRUNCATED } from "./claims";
import { classifyCacheReply, classifyTextCommand, parseMemcachedBinary, parseRespArray, TEXT_AMBIGUOUS, TEXT_MEMCACHED, TEXT_REDIS } from "./cache";
import { parseCassandra, parseCassandraFrames, parseKafka, parseMongo, parseMysqlGreeting, parsePostgres } from "./databases";
import { finishHttpClaims, HttpRequestParser, parseHttpResponse } from "./http";
import { Http2Parser } from "./http2";
import { parseAmqpFrame, parseAmqpHeader, parseMqttConnect } from "./messaging";
import { parseDnsTcp, parseLdap } from "./naming";
import {
  PROTO_AMQP, PROTO_CASSANDRA, PROTO_DNS, PROTO_FTP, PROTO_HTTP, PROTO_HTTP2, PROTO_IMAP, PROTO_KAFKA, PROTO_LDAP,
  PROTO_MEMCACHED, PROTO_MONGODB, PROTO_MQTT, PROTO_MYSQL, PROTO_NEED_MORE, PROTO_POP3, PROTO_POSTGRESQL, PROTO_REDIS,
  PROTO_SMTP, PROTO_SSH, PROTO_TLS, PROTO_UNKNOWN,
} from "./protocols";
import { isAlpha, isPrintable, LIKELY, lowercaseInPlace, MAYBE, NO, u8at, YES } from "./scan";
import {
  classifyFirstCommand, classifyGreeting, CMD_FTP, CMD_INCOMPLETE, CMD_POP3, CMD_SMTP, GREET_FTP, GREET_IMAP, GREET_POP3,
  GREET_POP3_BARE, GREET_SMTP, GREET_SMTP_OR_FTP, parseSshBanner,
} from "./text";
import { looksLikeClientHelloRecord, parseClientHello, parseRecordRun, parseSslv2Hello, RecordStripper } from "./tls";

/** Default bytes inspected per direction (a ClientHello with post-quantum key shares is ~2 KiB). */
export const DEFAULT_CLIENT_CAPACITY: i32 = 8192;
export const DEFAULT_SERVER_CAPACITY: i32 = 2048;

// Client-first recognizers, in priority order: a recognizer decides only when every one before it
// has ruled itself out, so the stricter, more specific formats come first.
// @ts-ignore: decorator
@inline const R_TLS: i32 = 0;
// @ts-ignore: decorator
@inline const R_SSLV2: i32 = 1;
// @ts-ignore: decorator
@inline const R_HTTP2: i32 = 2;
// @ts-ignore: decorator
@inline const R_HTTP: i32 = 3;
// @ts-ignore: decorator
@inline const R_POSTGRES: i32 = 4;
// @ts-ignore: decorator
@inline const R_SSH: i32 = 5;
// @ts-ignore: decorator
@inline const R_AMQP: i32 = 6;
// @ts-ignore: decorator
@inline const R_MQTT: i32 = 7;
// @ts-ignore: decorator
@inline const R_MONGO: i32 = 8;
// @ts-ignore: decorator
@inline const R_CASSANDRA: i32 = 9;
// @ts-ignore: decorator
@inline const R_LDAP: i32 = 10;
// @ts-ignore: decorator
@inline const R_DNS: i32 = 11;
// @ts-ignore: decorator
@inline const R_MEMCACHED_BINARY: i32 = 12;
// @ts-ignore: decorator
@inline const R_RESP: i32 = 13;
// @ts-ignore: decorator
@inline const R_TEXT: i32 = 14; // Redis inline / memcached text
// @ts-ignore: decorator
@inline const R_KAFKA: i32 = 15;
// @ts-ignore: decorator
@inline const CLIENT_RECOGNIZERS: i32 = 16;
// @ts-ignore: decorator
@inline const ALL_CLIENT: u32 = 0xffff;
/** Recognizers of protocols that carry a destination claim (SNI, Host, :authority). */
// @ts-ignore: decorator
@inline const CLAIM_RECOGNIZERS: u32 = (1 << R_TLS) | (1 << R_HTTP2) | (1 << R_HTTP);

const PROTOCOL_OF: StaticArray<i32> = [
  PROTO_TLS, PROTO_TLS, PROTO_HTTP2, PROTO_HTTP, PROTO_POSTGRESQL, PROTO_SSH, PROTO_AMQP, PROTO_MQTT, PROTO_MONGODB,
  PROTO_CASSANDRA, PROTO_LDAP, PROTO_DNS, PROTO_MEMCACHED, PROTO_REDIS, PROTO_UNKNOWN /* text: see textKind */, PROTO_KAFKA,
];

// @ts-ignore: decorator
@inline const FIRST_NONE: i32 = 0;
// @ts-ignore: decorator
@inline const FIRST_CLIENT: i32 = 1;
// @ts-ignore: decorator
@inline const FIRST_SERVER: i32 = 2;

export class Detector {
  private readonly clientBuf: StaticArray<u8>;
  private readonly serverBuf: StaticArray<u8>;
  readonly clientCapacity: i32;
  readonly serverCapacity: i32;
  private clientLen: i32 = 0;
  private serverLen: i32 = 0;
  /** No more room: the direction's bytes are final. */
  private clientFull: bool = false;
  private serverFull: bool = false;
  /** Bytes passed to feedClient/feedServer so far (uncapped). */
  private clientFedBytes: i64 = 0;
  private serverFedBytes: i64 = 0;
  private first: i32 = FIRST_NONE;
  /** The client buffer holds TLS handshake bytes (record headers stripped). */
  private tlsMode: bool = false;
  private readonly stripper: RecordStripper = new RecordStripper();
  private readonly http: HttpRequestParser = new HttpRequestParser();
  private readonly http2: Http2Parser = new Http2Parser();
  private alive: u32 = ALL_CLIENT;
  private textKind: i32 = NO;
  private midstream: bool = false;
  private protocol: i32 = PROTO_NEED_MORE;
  /** Claims recorded while parsing (offsets into the client buffer). */
  readonly claims: Claims = new Claims();
  /** The answer is final; later feeds are ignored. */
  done: bool = false;
  /**
   * The bytes ended (deadline or byte limit) while a claim-carrying format (TLS, HTTP/1, HTTP/2)
   * was still possible and unconfirmed: a claim may exist that was not extracted.
   */
  claimCut: bool = false;

  constructor(clientCapacity: i32 = DEFAULT_CLIENT_CAPACITY, serverCapacity: i32 = DEFAULT_SERVER_CAPACITY) {
    const cc = clientCapacity < 64 ? 64 : clientCapacity;
    const sc = serverCapacity < 64 ? 64 : serverCapacity;
    this.clientBuf = new StaticArray<u8>(cc);
    this.serverBuf = new StaticArray<u8>(sc);
    this.clientCapacity = cc;
    this.serverCapacity = sc;
  }

  /** Makes the detector ready for a new connection (no allocation). */
  reset(): void {
    this.clientLen = 0;
    this.serverLen = 0;
    this.clientFull = false;
    this.serverFull = false;
    this.clientFedBytes = 0;
    this.serverFedBytes = 0;
    this.first = FIRST_NONE;
    this.tlsMode = false;
    this.stripper.reset();
    this.http.reset();
    this.http2.reset();
    this.alive = ALL_CLIENT;
    this.textKind = NO;
    this.midstream = false;
    this.protocol = PROTO_NEED_MORE;
    this.claims.reset();
    this.done = false;
    this.claimCut = false;
  }

  /**
   * Offline tools only: the capture starts mid-connection, so also accept continuation traffic
   * (TLS records, HTTP responses, AMQP frames) in either direction. Call right after reset().
   */
  setMidstream(on: bool): void {
    this.midstream = on;
  }

  /** Current answer: PROTO_NEED_MORE until decided. */
  result(): i32 {
    return this.protocol;
  }

  /** Client→server bytes, in order. Returns result(). */
  feedClient(ptr: usize, len: i32): i32 {
    if (len <= 0) return this.protocol;
    this.clientFedBytes += len;
    if (this.done) return this.protocol;
    if (this.first == FIRST_NONE) this.first = FIRST_CLIENT;
    if (!this.clientFull) {
      const base = changetype<usize>(this.clientBuf);
      if (this.tlsMode) {
        this.clientLen = this.stripper.ingest(ptr, len, base, this.clientLen, this.clientCapacity);
        if (this.clientLen >= this.clientCapacity) this.clientFull = true;
      } else {
        const take = min(len, this.clientCapacity - this.clientLen);
        memory.copy(base + <usize>this.clientLen, ptr, <usize>take);
        this.clientLen += take;
        if (take < len || this.clientLen >= this.clientCapacity) this.clientFull = true;
      }
    }
    this.evaluate(false);
    return this.protocol;
  }

  /** Server→client bytes, in order. Returns result(). */
  feedServer(ptr: usize, len: i32): i32 {
    if (len <= 0) return this.protocol;
    this.serverFedBytes += len;
    if (this.done) return this.protocol;
    if (this.first == FIRST_NONE) this.first = FIRST_SERVER;
    if (!this.serverFull) {
      const take = min(len, this.serverCapacity - this.serverLen);
      memory.copy(changetype<usize>(this.serverBuf) + <usize>this.serverLen, ptr, <usize>take);
      this.serverLen += take;
      if (take < len || this.serverLen >= this.serverCapacity) this.serverFull = true;
    }
    this.evaluate(false);
    return this.protocol;
  }

  /** The detection deadline passed (or both directions ended): decide with what is there. */
  expire(): i32 {
    if (!this.done) {
      this.evaluate(true);
      if (!this.done) this.decide(PROTO_UNKNOWN);
    }
    return this.protocol;
  }

  // ---- claims (valid once done; len 0 = absent) ----
  sniPtr(): usize { return changetype<usize>(this.clientBuf) + <usize>this.claims.sniOff; }
  sniLen(): i32 { return this.claims.sniLen; }
  alpnCount(): i32 { return this.claims.alpnCount; }
  alpnPtr(i: i32): usize {
    return i >= 0 && i < this.claims.alpnCount ? changetype<usize>(this.clientBuf) + <usize>unchecked(this.claims.alpnOff[i]) : 0;
  }
  alpnLen(i: i32): i32 { return i >= 0 && i < this.claims.alpnCount ? unchecked(this.claims.alpnLen[i]) : 0; }
  tlsVersion(): i32 { return this.claims.tlsVersion; }
  echOffered(): bool { return this.claims.ech; }
  tlsFlags(): i32 { return this.claims.tlsFlags; }
  httpHostPtr(): usize { return changetype<usize>(this.clientBuf) + <usize>this.claims.hostOff; }
  httpHostLen(): i32 { return this.claims.hostLen; }
  httpHostPort(): i32 { return this.claims.hostPort; }
  httpFlags(): i32 { return this.claims.httpFlags; }
  /** Bytes of the first request head (through its empty line) once complete, else -1. */
  httpHeadLength(): i32 { return this.protocol == PROTO_HTTP && this.http.stage == 2 ? this.http.lineStart : -1; }
  proxyForm(): i32 { return this.claims.proxyForm; }
  /** h2c: the first request's :authority (else host), host part lowercased; len 0 = absent. */
  h2AuthorityPtr(): usize { return this.http2.claimBuffer + <usize>this.http2.claimOff; }
  h2AuthorityLen(): i32 { return this.protocol == PROTO_HTTP2 ? this.http2.claimLen : 0; }
  h2AuthorityPort(): i32 { return this.protocol == PROTO_HTTP2 ? this.http2.claimPort : -1; }
  /** h2c: H2_* flags of the first request (H2_CLAIM_BROKEN: the claim is unverifiable); 0 when not HTTP/2. */
  h2Flags(): i32 { return this.protocol == PROTO_HTTP2 ? this.http2.flags : 0; }
  /** h2c: the parser of the first request (its HPACK state, stream and end offset carry on in the filter). */
  h2Parser(): Http2Parser { return this.http2; }
  /** Still undecided and the client's bytes so far may be h2c (none yet, or a consistent prefix). */
  clientMayBeH2c(): bool { return !this.done && (this.alive & (1 << R_HTTP2)) != 0; }
  connectTargetPtr(): usize { return changetype<usize>(this.clientBuf) + <usize>this.claims.targetOff; }
  connectTargetLen(): i32 { return this.claims.proxyForm == PROXY_NONE ? 0 : this.claims.targetLen; }
  connectTargetPort(): i32 { return this.claims.proxyForm == PROXY_NONE ? -1 : this.claims.targetPort; }
  /**
   * Bytes fed so far per direction. Envoy re-presents the whole accumulated read buffer after a
   * StopIteration, so the filter feeds only get_buffer_bytes(clientFed(), size - clientFed()).
   */
  clientFed(): i64 { return this.clientFedBytes; }
  serverFed(): i64 { return this.serverFedBytes; }
  /** Bytes buffered per direction (after TLS record stripping for the client). */
  clientBytes(): i32 { return this.clientLen; }
  /** The client bytes buffered (raw for every protocol but TLS). */
  clientBufferPtr(): usize { return changetype<usize>(this.clientBuf); }
  serverBytes(): i32 { return this.serverLen; }

  // ---- decision ----

  private evaluate(final: bool): void {
    if (this.midstream) {
      this.evaluateMidstream(final);
      return;
    }
    if (this.first == FIRST_CLIENT) {
      const ending = final || this.clientFull;
      const claimAlive = (this.alive & CLAIM_RECOGNIZERS) != 0 && this.clientLen > 0;
      const v = this.evaluateClient(ending);
      // Ended with a claim format still open, and not confirmed complete by the bytes themselves.
      if (ending && claimAlive && v != PROTO_TLS && v != PROTO_HTTP && !(v == PROTO_HTTP2 && this.http2.complete())) this.claimCut = true;
      if (v != PROTO_NEED_MORE) this.decide(v);
    } else if (this.first == FIRST_SERVER) {
      const v = this.evaluateServerFirst(final || this.serverFull, final);
      if (v != PROTO_NEED_MORE) this.decide(v);
    }
  }

  /** Client-first protocols on the client bytes. Returns a protocol or PROTO_NEED_MORE. */
  private evaluateClient(final: bool): i32 {
    const p = changetype<usize>(this.clientBuf);
    if (this.clientLen == 0) return final ? PROTO_UNKNOWN : PROTO_NEED_MORE;
    if (!this.tlsMode && (this.alive & (1 << R_TLS)) != 0 && looksLikeClientHelloRecord(p, this.clientLen) == YES) {
      // Commit: strip the record headers in place; nothing else starts like a TLS handshake record.
      this.tlsMode = true;
      this.stripper.reset();
      const raw = this.clientLen;
      this.clientLen = this.stripper.ingest(p, raw, p, 0, this.clientCapacity);
      this.alive = 1 << R_TLS;
    }
    const len = this.clientLen;
    // In priority order: a confirmation decides unless a more specific format is still possible;
    // recognizers after an undecided one are not run (they could not decide anyway).
    for (let i = 0; i < CLIENT_RECOGNIZERS; i++) {
      if ((this.alive & (1 << i)) == 0) continue;
      const v = this.runClient(i, p, len, final);
      if (v == NO) {
        this.alive &= ~(1 << i);
        continue;
      }
      if (i == R_TEXT && v == YES) {
        if (this.textKind == TEXT_REDIS) return PROTO_REDIS;
        if (this.textKind == TEXT_MEMCACHED) return PROTO_MEMCACHED;
        // Ambiguous inline command: the server's reply decides.
        const reply = classifyCacheReply(changetype<usize>(this.serverBuf), this.serverLen);
        if (reply == TEXT_REDIS) return PROTO_REDIS;
        if (reply == TEXT_MEMCACHED) return PROTO_MEMCACHED;
        if (reply == NO || this.serverFull) return PROTO_UNKNOWN;
        return final ? PROTO_UNKNOWN : PROTO_NEED_MORE;
      }
      if (v == YES) return unchecked(PROTOCOL_OF[i]);
      if (final) {
        if (v == LIKELY) return unchecked(PROTOCOL_OF[i]);
        continue; // MAYBE at the end: not confirmed
      }
      return PROTO_NEED_MORE;
    }
    return PROTO_UNKNOWN;
  }

  private runClient(i: i32, p: usize, len: i32, final: bool): i32 {
    switch (i) {
      case R_TLS: {
        if (!this.tlsMode) return looksLikeClientHelloRecord(p, len);
        const v = parseClientHello(p, len, this.claims, this.stripper.bad, final);
        if (v == LIKELY && final) this.claims.tlsFlags |= TLS_TRUNCATED;
        if (v == NO) {
          // Committed on a valid record + handshake header + version: still TLS, but the body is
          // malformed, so none of its claims can be trusted.
          this.claims.sniLen = 0;
          this.claims.alpnCount = 0;
          this.claims.ech = false;
          this.claims.tlsFlags = TLS_MALFORMED;
          return YES;
        }
        return v;
      }
      case R_SSLV2: return parseSslv2Hello(p, len, this.claims);
      case R_HTTP2: return this.http2.update(p, len, final);
      case R_HTTP: return this.http.update(p, len, this.claims, final);
      case R_POSTGRES: return parsePostgres(p, len);
      case R_SSH: return parseSshBanner(p, len, false);
      case R_AMQP: return parseAmqpHeader(p, len);
      case R_MQTT: return parseMqttConnect(p, len);
      case R_MONGO: return parseMongo(p, len, this.midstream);
      case R_CASSANDRA: return parseCassandra(p, len);
      case R_LDAP: return parseLdap(p, len);
      case R_DNS: return parseDnsTcp(p, len);
      case R_MEMCACHED_BINARY: return parseMemcachedBinary(p, len);
      case R_RESP: return parseRespArray(p, len);
      case R_TEXT: return this.textCommand(p, len, final);
      case R_KAFKA: return parseKafka(p, len);
    }
    return NO;
  }

  /** Redis inline / memcached text: YES once the first line is classified (see textKind). */
  private textCommand(p: usize, len: i32, final: bool): i32 {
    if (len >= 1 && !isAlpha(u8at(p, 0))) return NO;
    let lf = -1;
    for (let i = 0; i < len; i++) {
      const c = u8at(p, i);
      if (c == 0x0a) { lf = i; break; }
      if (!isPrintable(c) && c != 0x0d) return NO;
      if (i >= 2048) return NO;
    }
    if (lf < 0) return final ? NO : MAYBE;
    let e = lf;
    if (e > 0 && u8at(p, e - 1) == 0x0d) e--;
    this.textKind = classifyTextCommand(p, e);
    return this.textKind == NO ? NO : YES;
  }

  /** Server-first protocols on the greeting; the client's first command settles SMTP vs FTP. */
  private evaluateServerFirst(serverFinal: bool, expired: bool): i32 {
    const s = changetype<usize>(this.serverBuf);
    const n = this.serverLen;
    const ssh = parseSshBanner(s, n, true);
    if (ssh == YES) return PROTO_SSH;
    const mysql = parseMysqlGreeting(s, n);
    if (mysql == YES) return PROTO_MYSQL;
    const greet = classifyGreeting(s, n, serverFinal);
    if (greet == GREET_SMTP) return PROTO_SMTP;
    if (greet == GREET_FTP) return PROTO_FTP;
    if (greet == GREET_IMAP) return PROTO_IMAP;
    if (greet == GREET_POP3) return PROTO_POP3;
    if (greet == GREET_SMTP_OR_FTP || greet == GREET_POP3_BARE) {
      const cmd = classifyFirstCommand(changetype<usize>(this.clientBuf), this.clientLen);
      if (this.clientLen == 0 || cmd == CMD_INCOMPLETE) return expired || (this.clientFull && this.clientLen > 0) ? PROTO_UNKNOWN : PROTO_NEED_MORE;
      if (greet == GREET_POP3_BARE) return (cmd & CMD_POP3) != 0 ? PROTO_POP3 : PROTO_UNKNOWN;
      const smtp = (cmd & CMD_SMTP) != 0;
      const ftp = (cmd & CMD_FTP) != 0;
      if (smtp && !ftp) return PROTO_SMTP;
      if (ftp && !smtp) return PROTO_FTP;
      return PROTO_UNKNOWN;
    }
    if (ssh == NO && mysql == NO && greet == NO) return PROTO_UNKNOWN;
    if (serverFinal) {
      if (ssh == LIKELY) return PROTO_SSH;
      if (mysql == LIKELY) return PROTO_MYSQL;
      return PROTO_UNKNOWN;
    }
    return PROTO_NEED_MORE;
  }

  /**
   * Mid-connection captures: client-first recognizers on the client bytes, server-first ones on
   * the server bytes, and continuation recognizers on both. Any confirmation decides; unknown
   * once every recognizer has ruled itself out on both sides.
   */
  private evaluateMidstream(final: bool): void {
    const c = changetype<usize>(this.clientBuf);
    const s = changetype<usize>(this.serverBuf);
    let pending = false;
    if (this.clientLen > 0) {
      const v = this.evaluateClient(final || this.clientFull);
      if (v != PROTO_NEED_MORE && v != PROTO_UNKNOWN) { this.decide(v); return; }
      if (v == PROTO_NEED_MORE) pending = true;
    }
    if (this.serverLen > 0) {
      const v = this.evaluateServerFirst(final || this.serverFull, final);
      if (v != PROTO_NEED_MORE && v != PROTO_UNKNOWN) { this.decide(v); return; }
      if (v == PROTO_NEED_MORE) pending = true;
    }
    // Continuation traffic. The client side is inspected raw only if it was not TLS-committed.
    let best = PROTO_NEED_MORE;
    for (let side = 0; side < 2; side++) {
      const p = side == 0 ? c : s;
      const n = side == 0 ? (this.tlsMode ? 0 : this.clientLen) : this.serverLen;
      if (n == 0) continue;
      const sideFinal = final || (side == 0 ? this.clientFull : this.serverFull);
      const tls = parseRecordRun(p, n, sideFinal);
      const resp = parseHttpResponse(p, n);
      const amqp = parseAmqpFrame(p, n);
      const cql = parseCassandraFrames(p, n, sideFinal);
      const mongo = side == 1 ? parseMongo(p, n, true) : NO; // the client side already ran it
      if (tls == YES) { this.decide(PROTO_TLS); return; }
      if (resp == YES) { this.decide(PROTO_HTTP); return; }
      if (amqp == YES) { this.decide(PROTO_AMQP); return; }
      if (cql == YES) { this.decide(PROTO_CASSANDRA); return; }
      if (mongo == YES) { this.decide(PROTO_MONGODB); return; }
      if (tls == MAYBE || resp == MAYBE || amqp == MAYBE || cql == MAYBE || mongo == MAYBE || tls == LIKELY || amqp == LIKELY || cql == LIKELY) pending = true;
      if (best == PROTO_NEED_MORE) {
        if (tls == LIKELY) best = PROTO_TLS;
        else if (amqp == LIKELY) best = PROTO_AMQP;
        else if (cql == LIKELY) best = PROTO_CASSANDRA;
      }
    }
    if (final) {
      this.decide(best == PROTO_NEED_MORE ? PROTO_UNKNOWN : best);
      return;
    }
    // Both directions seen and nothing left to wait for: unknown. With one direction only, the
    // other may still settle it.
    if (!pending && this.clientLen > 0 && this.serverLen > 0) this.decide(PROTO_UNKNOWN);
  }

  private decide(protocol: i32): void {
    this.protocol = protocol;
    this.done = true;
    const c = this.claims;
    if (protocol == PROTO_TLS && this.tlsMode) {
      if (c.sniLen > 0) lowercaseInPlace(changetype<usize>(this.clientBuf), c.sniOff, c.sniLen);
    } else if (protocol != PROTO_TLS) {
      c.sniLen = 0;
      c.alpnCount = 0;
      c.tlsVersion = 0;
      c.ech = false;
      c.tlsFlags = 0;
    } else {
      c.sniLen = 0; // SSLv2 hello or mid-connection records: no claims
      c.alpnCount = 0;
    }
    if (protocol == PROTO_HTTP) {
      if (this.http.stage != 2) c.httpFlags |= HTTP_HEAD_INCOMPLETE;
      finishHttpClaims(changetype<usize>(this.clientBuf), c);
    } else {
      c.hostLen = 0;
      c.hostPort = -1;
      c.httpFlags = 0;
      c.proxyForm = PROXY_NONE;
      c.targetLen = 0;
      c.targetPort = -1;
    }
  }
}
