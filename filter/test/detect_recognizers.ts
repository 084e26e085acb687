// Unit-test harness for filter/assembly/detect (driven by control/test/unit/detect/recognizers.test.ts):
// each recognizer on its own over a static input buffer, and a Detector with small buffers.
// No proxy-wasm ABI.
import { classifyCacheReply, parseMemcachedBinary, parseRespArray } from "../assembly/detect/cache";
import { Claims } from "../assembly/detect/claims";
import { parseCassandra, parseKafka, parseMongo, parseMysqlGreeting, parsePostgres } from "../assembly/detect/databases";
import { Detector } from "../assembly/detect/detector";
import { HttpRequestParser, parseHttpResponse } from "../assembly/detect/http";
import { Http2Parser } from "../assembly/detect/http2";
import { parseAmqpFrame, parseAmqpHeader, parseMqttConnect } from "../assembly/detect/messaging";
import { parseDnsTcp, parseLdap } from "../assembly/detect/naming";
import { protocolIdOfName, protocolName, PROTOCOL_COUNT } from "../assembly/detect/protocols";
import { NO, YES } from "../assembly/detect/scan";
import { classifyGreeting, parseSshBanner } from "../assembly/detect/text";
import { looksLikeClientHelloRecord, parseClientHello, parseRecordRun, parseSslv2Hello } from "../assembly/detect/tls";

const input = memory.data(65536);
const claims = new Claims();
const http = new HttpRequestParser();
const http2 = new Http2Parser();
let small: Detector = new Detector(64, 64);

export function inputPtr(): usize {
  return input;
}

/** Runs recognizer `which` over input[0..len): 0 NO, 1 MAYBE, 2 LIKELY, 3 YES. */
export function recognize(which: i32, len: i32, final: bool): i32 {
  if (len < 0 || len > 65536) return -1;
  const p = input;
  claims.reset();
  switch (which) {
    case 0: return looksLikeClientHelloRecord(p, len);
    case 1: return parseSslv2Hello(p, len, claims);
    case 2: http2.reset(); return http2.update(p, len, final);
    case 3: http.reset(); return http.update(p, len, claims, final);
    case 4: return parsePostgres(p, len);
    case 5: return parseSshBanner(p, len, false);
    case 6: return parseAmqpHeader(p, len);
    case 7: return parseMqttConnect(p, len);
    case 8: return parseMongo(p, len);
    case 9: return parseCassandra(p, len);
    case 10: return parseLdap(p, len);
    case 11: return parseDnsTcp(p, len);
    case 12: return parseMemcachedBinary(p, len);
    case 13: return parseRespArray(p, len);
    case 14: return parseKafka(p, len);
    case 15: return parseMysqlGreeting(p, len);
    case 16: return parseSshBanner(p, len, true);
    case 17: { const g = classifyGreeting(p, len); return g >= 10 ? YES : g; }
    case 18: return parseRecordRun(p, len, final);
    case 19: return parseHttpResponse(p, len);
    case 20: return parseAmqpFrame(p, len);
    case 21: return parseClientHello(p, len, claims, false, final);
    case 22: { const r = classifyCacheReply(p, len); return r >= 10 ? YES : r; }
  }
  return -1;
}

/** The SNI length recorded by the last recognize(21, …) call. */
export function lastSniLen(): i32 {
  return claims.sniLen;
}

/** A fresh detector with the given (small) buffer capacities. */
export function newSmallDetector(clientCapacity: i32, serverCapacity: i32): void {
  small = new Detector(clientCapacity, serverCapacity);
}
export function smallReset(): void {
  small.reset();
}
export function smallFeed(fromServer: bool, len: i32): i32 {
  return fromServer ? small.feedServer(input, len) : small.feedClient(input, len);
}
export function smallExpire(): i32 {
  return small.expire();
}
export function smallClientBytes(): i32 {
  return small.clientBytes();
}

/** Round-trips every protocol id through its name; returns the count that map back (all of them). */
export function protocolNamesRoundTrip(): i32 {
  let ok = 0;
  for (let id = 0; id < PROTOCOL_COUNT; id++) {
    const name = protocolName(id);
    for (let i = 0; i < name.length; i++) store<u8>(input + <usize>i, <u8>name.charCodeAt(i));
    if (protocolIdOfName(input, name.length) == id) ok++;
  }
  store<u8>(input, 0x78);
  if (protocolIdOfName(input, 1) != -1 || protocolName(-1) != "" || protocolName(PROTOCOL_COUNT) != "") return -1;
  return ok;
}

export const VERDICT_NO = NO;
