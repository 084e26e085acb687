// HTTP/1.x requests (method, Host, CONNECT target, absolute-form URI) and (mid-connection only)
// HTTP/1.x responses. Reference: RFC 9112 §3. HTTP/2 with prior knowledge: http2.ts.
import {
  Claims, HTTP_BODY_AMBIGUOUS, HTTP_CHUNKED, HTTP_HOST_CONFLICT, HTTP_HOST_MALFORMED, HTTP_OBS_FOLD, HTTP_TARGET_CONFLICT,
  HTTP_UPGRADE, HTTP_UPGRADE_H2C, PROXY_ABSOLUTE, PROXY_CONNECT, PROXY_NONE,
} from "./claims";
import {
  indexOfByte, isAlpha, isDigit, isTchar, isUpper, LIKELY, lowercaseInPlace, matchAscii, matchAsciiNoCase, MAYBE, NO,
  parseDecimal, prefixOfAscii, u8at, YES,
} from "./scan";

// @ts-ignore: decorator
@inline const MAX_METHOD: i32 = 32;

/** Incremental HTTP/1 request-head parser: each complete line is examined once. */
export class HttpRequestParser {
  /** 0: request line, 1: header fields, 2: head complete (or stopped looking). */
  stage: i32 = 0;
  /** Start of the first line not yet examined. */
  lineStart: i32 = 0;
  verdict: i32 = MAYBE;
  methodLen: i32 = 0;
  /** The request line was malformed but began with a standard method: the next line must be a header field. */
  loose: bool = false;
  headerLines: i32 = 0;

  reset(): void {
    this.stage = 0;
    this.lineStart = 0;
    this.verdict = MAYBE;
    this.methodLen = 0;
    this.loose = false;
    this.headerLines = 0;
  }

  /** Examines new complete lines in [p, p+len). `full`: no more bytes will come. */
  update(p: usize, len: i32, claims: Claims, full: bool): i32 {
    if (this.verdict == NO || this.verdict == YES) return this.verdict;
    while (this.stage < 2) {
      const lf = indexOfByte(p, len, this.lineStart, 0x0a);
      if (lf < 0) break;
      let lineEnd = lf;
      if (lineEnd > this.lineStart && u8at(p, lineEnd - 1) == 0x0d) lineEnd--;
      if (this.stage == 0) {
        const v = requestLine(p, this.lineStart, lineEnd, claims, this);
        if (v == NO) return this.verdict = NO;
        this.stage = v == YES ? 2 : 1; // YES here: HTTP/0.9-style request, no header block
      } else if (lineEnd == this.lineStart) {
        this.stage = 2;
      } else {
        if (this.loose && this.headerLines == 0 && !isHeaderField(p, this.lineStart, lineEnd)) return this.verdict = NO;
        this.headerLines++;
        const c0 = u8at(p, this.lineStart);
        // A line starting with whitespace continues the previous field (obs-fold) or, before the
        // first field, is one servers may read as a field: either way they disagree on it.
        if (c0 == 0x20 || c0 == 0x09) claims.httpFlags |= HTTP_OBS_FOLD;
        else headerLine(p, this.lineStart, lineEnd, claims);
      }
      this.lineStart = lf + 1;
    }
    if (this.stage == 2) return this.verdict = YES;
    if (this.stage == 1) {
      // A loose request line is only HTTP once a header field follows it.
      if (this.loose && this.headerLines == 0) return this.verdict = full ? NO : MAYBE;
      return this.verdict = LIKELY;
    }
    // Request line still incomplete: is what we have a plausible prefix?
    if (!requestLinePrefix(p, len)) return this.verdict = NO;
    if (!full) return this.verdict = MAYBE;
    // The buffer filled inside the request line (a URL longer than we inspect): HTTP if it
    // starts like one — a standard method and an origin or absolute target.
    let m = 0;
    while (m < len && isTchar(u8at(p, m))) m++;
    if (m < len && u8at(p, m) == 0x20 && isStandardMethod(p, 0, m) && looksLikeRequestTarget(p, skipBlanks(p, m, len), len) && len > 64) {
      return this.verdict = LIKELY;
    }
    return this.verdict = NO;
  }
}

/** Is [0, len) (no LF yet) a possible start of a request line? */
function requestLinePrefix(p: usize, len: i32): bool {
  let i = 0;
  while (i < len && isTchar(u8at(p, i))) i++;
  if (i == 0 && len > 0) return false;
  if (i > MAX_METHOD) return false;
  if (i == len) return true;
  if (u8at(p, i) != 0x20) return false;
  // The rest of the line: printable text (the line is judged once complete).
  for (; i < len; i++) {
    const c = u8at(p, i);
    if (c == 0x0d) return i + 1 == len;
    if ((c < 0x20 && c != 0x09) || c == 0x7f) return false;
    if (i > MAX_REQUEST_LINE) return false;
  }
  return true;
}

// @ts-ignore: decorator
@inline const MAX_REQUEST_LINE: i32 = 8192;

/** "name: value" with a token name (RFC 9112 §5.1; no space before the colon). */
function isHeaderField(p: usize, s: i32, e: i32): bool {
  let i = s;
  while (i < e && isTchar(u8at(p, i))) i++;
  return i > s && i < e && u8at(p, i) == 0x3a;
}

/** The registered methods of RFC 9110 §9 plus PATCH: the only ones accepted in loose lines. */
function isStandardMethod(p: usize, s: i32, n: i32): bool {
  const e = s + n;
  if (n == 3) return matchAscii(p, e, s, "GET") || matchAscii(p, e, s, "PUT");
  if (n == 4) return matchAscii(p, e, s, "POST") || matchAscii(p, e, s, "HEAD");
  if (n == 5) return matchAscii(p, e, s, "TRACE") || matchAscii(p, e, s, "PATCH");
  if (n == 6) return matchAscii(p, e, s, "DELETE");
  if (n == 7) return matchAscii(p, e, s, "OPTIONS") || matchAscii(p, e, s, "CONNECT");
  return false;
}

/**
 * Whether the line's last word is "NAME/digit…" for a protocol other than HTTP (RTSP/1.0,
 * SIP/2.0 …): HTTP-like request lines of other protocols are not HTTP.
 */
function endsWithOtherProtocolVersion(p: usize, s: i32, e: i32): bool {
  let w = e;
  while (w > s && u8at(p, w - 1) != 0x20 && u8at(p, w - 1) != 0x09) w--;
  const slash = indexOfByte(p, e, w, 0x2f);
  if (slash <= w || slash + 1 >= e || !isDigit(u8at(p, slash + 1))) return false;
  for (let i = w; i < slash; i++) if (!isUpper(u8at(p, i))) return false;
  return !(slash - w == 4 && matchAscii(p, e, w, "HTTP"));
}

/** A loose line's first word must still look like a request target or an HTTP version. */
function looksLikeRequestTarget(p: usize, t0: i32, e: i32): bool {
  if (t0 >= e) return false;
  const c = u8at(p, t0);
  return c == 0x2f || c == 0x2a || matchAsciiNoCase(p, e, t0, "http");
}

/** Skips a run of spaces/tabs (RFC 9112 §3: recipients may split on whitespace runs). */
function skipBlanks(p: usize, i: i32, e: i32): i32 {
  while (i < e && (u8at(p, i) == 0x20 || u8at(p, i) == 0x09) && i < e) i++;
  return i;
}

// @ts-ignore: decorator
@inline function isTargetChar(c: u32): bool {
  return c > 0x20 && c != 0x7f; // visible ASCII or raw UTF-8 (seen in the wild)
}

function isHttp09Method(p: usize, start: i32, n: i32): bool {
  return (n == 3 && (matchAscii(p, start + n, start, "GET") || matchAscii(p, start + n, start, "PUT"))) ||
    (n == 4 && (matchAscii(p, start + n, start, "POST") || matchAscii(p, start + n, start, "HEAD")));
}

/**
 * Validates "METHOD SP target SP HTTP/1.d" in [s, e): LIKELY (headers follow), YES for an
 * HTTP/0.9-style "GET /path", NO otherwise. A malformed line that starts with a standard method
 * is accepted "loosely" (parser.loose): HTTP only if a header field follows.
 */
function requestLine(p: usize, s: i32, e: i32, claims: Claims, parser: HttpRequestParser): i32 {
  let i = s;
  while (i < e && isTchar(u8at(p, i))) i++;
  const methodLen = i - s;
  if (methodLen == 0 || methodLen > MAX_METHOD || i >= e || u8at(p, i) != 0x20) return NO;
  for (let j = i; j < e; j++) {
    const c = u8at(p, j);
    if ((c < 0x20 && c != 0x09) || c == 0x7f) return NO;
  }
  parser.methodLen = methodLen;
  const t0 = skipBlanks(p, i, e);
  let t1 = t0;
  while (t1 < e && isTargetChar(u8at(p, t1))) t1++;
  const v0 = skipBlanks(p, t1, e);
  let v1 = v0;
  while (v1 < e && isTargetChar(u8at(p, v1))) v1++;
  const strict = t1 > t0 && v1 == e && v1 - v0 == 8 && matchAscii(p, e, v0, "HTTP/1.") && isDigit(u8at(p, v0 + 7)) &&
    skipBlanks(p, v1, e) == e;
  const standard = isStandardMethod(p, s, methodLen);
  claims.proxyForm = PROXY_NONE;
  if (!strict) {
    if (t1 > t0 && v0 == e && isHttp09Method(p, s, methodLen) && u8at(p, t0) == 0x2f) return YES; // HTTP/0.9 style
    if (!standard || endsWithOtherProtocolVersion(p, s, e) || !looksLikeRequestTarget(p, t0, e)) return NO;
    parser.loose = true;
    if (methodLen == 7 && matchAscii(p, e, s, "CONNECT")) claims.proxyForm = PROXY_CONNECT; // no usable target
    return LIKELY;
  }
  if (methodLen == 7 && matchAscii(p, e, s, "CONNECT")) {
    // authority-form "host:port" (RFC 9112 §3.2.3); anything else leaves the target absent.
    claims.proxyForm = PROXY_CONNECT;
    if (!recordAuthority(p, t0, t1, claims, true, 0)) claims.targetLen = 0;
  } else {
    let scheme = 0;
    if (matchAsciiNoCase(p, t1, t0, "http://")) scheme = 7;
    else if (matchAsciiNoCase(p, t1, t0, "https://")) scheme = 8;
    else if (matchAsciiNoCase(p, t1, t0, "ws://")) scheme = 5;
    else if (matchAsciiNoCase(p, t1, t0, "wss://")) scheme = 6;
    if (scheme > 0) {
      let a1 = t0 + scheme;
      while (a1 < t1) {
        const c = u8at(p, a1);
        if (c == 0x2f || c == 0x3f || c == 0x23) break; // '/', '?', '#'
        a1++;
      }
      const defaultPort = scheme == 8 || scheme == 6 ? 443 : 80;
      claims.proxyForm = PROXY_ABSOLUTE;
      if (!recordAuthority(p, t0 + scheme, a1, claims, false, defaultPort)) claims.targetLen = 0;
    }
  }
  return LIKELY;
}

/**
 * Splits "host[:port]" / "[v6]:port" in [s, e) into the target claim (userinfo is rejected).
 * `needPort`: CONNECT requires one. Returns false when malformed.
 */
function recordAuthority(p: usize, s: i32, e: i32, claims: Claims, needPort: bool, defaultPort: i32): bool {
  if (s >= e) return false;
  if (indexOfByte(p, e, s, 0x40) >= 0) return false; // '@' userinfo: a classic claim-smuggling trick
  let hostStart = s;
  let hostEnd = e;
  let portStart = -1;
  if (u8at(p, s) == 0x5b) { // '['
    const close = indexOfByte(p, e, s, 0x5d);
    if (close < 0) return false;
    hostStart = s + 1;
    hostEnd = close;
    if (close + 1 < e) {
      if (u8at(p, close + 1) != 0x3a) return false;
      portStart = close + 2;
    }
  } else {
    const colon = indexOfByte(p, e, s, 0x3a);
    if (colon >= 0) {
      hostEnd = colon;
      portStart = colon + 1;
    }
  }
  if (hostEnd <= hostStart) return false;
  let port = defaultPort;
  if (portStart >= 0) {
    const v = parseDecimal(p, portStart, e, 5);
    if (v < 0 || v > 65535) return false;
    port = <i32>v;
  } else if (needPort) return false;
  claims.targetOff = hostStart;
  claims.targetLen = hostEnd - hostStart;
  claims.targetPort = port;
  return true;
}

/**
 * Examines one header field line: Host (several different Host fields leave the claim absent,
 * flagged), and the fields that say where the request ends (Content-Length, Transfer-Encoding)
 * or that the connection may stop being HTTP/1 (Upgrade).
 */
function headerLine(p: usize, s: i32, e: i32, claims: Claims): void {
  let n = s;
  while (n < e && isTchar(u8at(p, n))) n++;
  const nameLen = n - s;
  let colon = n;
  while (colon < e && (u8at(p, colon) == 0x20 || u8at(p, colon) == 0x09)) colon++;
  if (colon >= e || u8at(p, colon) != 0x3a) return; // not a field line
  const spaced = colon > n; // "Name :" — RFC 9112 §5.1: must be rejected; some servers accept it
  let vs = colon + 1;
  let ve = e;
  while (vs < ve && (u8at(p, vs) == 0x20 || u8at(p, vs) == 0x09)) vs++;
  while (ve > vs && (u8at(p, ve - 1) == 0x20 || u8at(p, ve - 1) == 0x09)) ve--;
  if (nameLen == 4 && matchAsciiNoCase(p, n, s, "host")) {
    if (spaced) claims.httpFlags |= HTTP_HOST_MALFORMED;
    hostField(p, vs, ve, claims);
  } else if (nameLen == 14 && matchAsciiNoCase(p, n, s, "content-length")) {
    if (spaced) claims.httpFlags |= HTTP_BODY_AMBIGUOUS;
    contentLengthField(p, vs, ve, claims);
  } else if (nameLen == 17 && matchAsciiNoCase(p, n, s, "transfer-encoding")) {
    if (spaced) claims.httpFlags |= HTTP_BODY_AMBIGUOUS;
    transferEncodingField(p, vs, ve, claims);
  } else if (nameLen == 7 && matchAsciiNoCase(p, n, s, "upgrade")) {
    claims.httpFlags |= HTTP_UPGRADE;
    if (offersH2c(p, vs, ve)) claims.httpFlags |= HTTP_UPGRADE_H2C;
  } else if (spaced) {
    // Any other "Name :" could be a Host a lenient server reads differently; harmless names are not
    // worth the risk of guessing.
    claims.httpFlags |= HTTP_HOST_MALFORMED;
  }
  if ((claims.httpFlags & HTTP_BODY_AMBIGUOUS) == 0 && claims.contentLength >= 0 && (claims.httpFlags & HTTP_CHUNKED) != 0) {
    claims.httpFlags |= HTTP_BODY_AMBIGUOUS; // both framings: request smuggling territory
  }
}

/** Whether an Upgrade value lists the token "h2c" (any case, comma-separated). */
function offersH2c(p: usize, vs: i32, ve: i32): bool {
  let i = vs;
  while (i < ve) {
    while (i < ve && (u8at(p, i) == 0x20 || u8at(p, i) == 0x09 || u8at(p, i) == 0x2c)) i++;
    let e = i;
    while (e < ve && u8at(p, e) != 0x2c && u8at(p, e) != 0x20 && u8at(p, e) != 0x09) e++;
    if (e - i == 3 && matchAsciiNoCase(p, e, i, "h2c")) return true;
    i = e;
  }
  return false;
}

/** Content-Length: digits only; several must agree (RFC 9112 §6.3). */
function contentLengthField(p: usize, vs: i32, ve: i32, claims: Claims): void {
  const v = parseDecimal(p, vs, ve, 15);
  if (v < 0 || (claims.contentLength >= 0 && claims.contentLength != v)) {
    claims.httpFlags |= HTTP_BODY_AMBIGUOUS;
    return;
  }
  claims.contentLength = v;
}

/** Transfer-Encoding: only a list ending in "chunked" frames a request body (RFC 9112 §6.3). */
function transferEncodingField(p: usize, vs: i32, ve: i32, claims: Claims): void {
  if ((claims.httpFlags & HTTP_CHUNKED) != 0 || ve - vs < 7 || !matchAsciiNoCase(p, ve, ve - 7, "chunked") ||
    (ve - vs > 7 && u8at(p, ve - 8) != 0x2c && u8at(p, ve - 8) != 0x20 && u8at(p, ve - 8) != 0x09)) {
    claims.httpFlags |= HTTP_BODY_AMBIGUOUS;
    return;
  }
  claims.httpFlags |= HTTP_CHUNKED;
}

// @ts-ignore: decorator
@inline function isHostChar(c: u32): bool {
  return isAlpha(c) || isDigit(c) || c == 0x2d || c == 0x2e || c == 0x5f;
}

/** Host: "name[:port]" or "[v6][:port]"; anything else is a malformed claim. */
function hostField(p: usize, vs: i32, ve: i32, claims: Claims): void {
  let hostEnd = ve;
  let port = -1;
  let ok = true;
  let portStart = -1;
  if (vs < ve && u8at(p, vs) == 0x5b) {
    const close = indexOfByte(p, ve, vs, 0x5d);
    if (close <= vs + 1) ok = false;
    else {
      for (let i = vs + 1; i < close; i++) {
        const c = u8at(p, i);
        if (!(isDigit(c) || ((c | 0x20) - 0x61) < 6 || c == 0x3a || c == 0x2e)) ok = false;
      }
      hostEnd = close + 1;
      if (hostEnd < ve) {
        if (u8at(p, hostEnd) != 0x3a) ok = false;
        else portStart = hostEnd + 1;
      }
    }
  } else {
    const colon = indexOfByte(p, ve, vs, 0x3a);
    if (colon >= 0) {
      hostEnd = colon;
      portStart = colon + 1;
    }
    for (let i = vs; i < hostEnd; i++) if (!isHostChar(u8at(p, i))) ok = false;
  }
  if (portStart >= 0) {
    const v = parseDecimal(p, portStart, ve, 5);
    if (v < 0 || v > 65535) ok = false;
    else port = <i32>v;
  }
  if (hostEnd <= vs && portStart >= 0) ok = false; // ":80" names no host
  if (!ok) claims.httpFlags |= HTTP_HOST_MALFORMED;
  // Strip IPv6 brackets from the reported host.
  let hs = vs;
  let he = hostEnd;
  if (he - hs >= 2 && u8at(p, hs) == 0x5b && u8at(p, he - 1) == 0x5d) { hs++; he--; }
  if (claims.httpFlags & HTTP_HOST_CONFLICT) return;
  if (claims.hostLen > 0 || claims.hostPort != -1) {
    if (!sameBytesNoCase(p, claims.hostOff, claims.hostLen, hs, he - hs) || claims.hostPort != port) {
      claims.httpFlags |= HTTP_HOST_CONFLICT;
      claims.hostLen = 0;
      claims.hostPort = -1;
    }
    return;
  }
  claims.hostOff = hs;
  claims.hostLen = he - hs;
  claims.hostPort = port;
}

function sameBytesNoCase(p: usize, a: i32, an: i32, b: i32, bn: i32): bool {
  if (an != bn) return false;
  for (let i = 0; i < an; i++) {
    let x = u8at(p, a + i);
    let y = u8at(p, b + i);
    if (isUpper(x)) x |= 0x20;
    if (isUpper(y)) y |= 0x20;
    if (x != y) return false;
  }
  return true;
}

/** Lowercases the recorded host and target in place (once the decision is made). */
export function finishHttpClaims(p: usize, claims: Claims): void {
  // An absolute-form or CONNECT target is what an origin server routes on (RFC 9112 §3.2.2); a
  // Host naming another host makes the request's destination ambiguous.
  if (claims.proxyForm != PROXY_NONE && claims.targetLen > 0 && claims.hostLen > 0 &&
    !sameBytesNoCase(p, claims.targetOff, claims.targetLen, claims.hostOff, claims.hostLen)) {
    claims.httpFlags |= HTTP_TARGET_CONFLICT;
  }
  if (claims.hostLen > 0) lowercaseInPlace(p, claims.hostOff, claims.hostLen);
  if (claims.targetLen > 0) lowercaseInPlace(p, claims.targetOff, claims.targetLen);
}

/** Mid-connection only: an HTTP/1.x status line "HTTP/1.d NNN ..." (version case-insensitive). */
export function parseHttpResponse(p: usize, len: i32): i32 {
  const lit = "http/1.";
  for (let i = 0; i < lit.length && i < len; i++) {
    let c = u8at(p, i);
    if (isUpper(c)) c |= 0x20;
    if (c != <u32>lit.charCodeAt(i)) return NO;
  }
  if (len >= 8 && !isDigit(u8at(p, 7))) return NO;
  if (len >= 9 && u8at(p, 8) != 0x20) return NO;
  for (let i = 9; i < 12 && i < len; i++) if (!isDigit(u8at(p, i))) return NO;
  if (len >= 13) {
    const c = u8at(p, 12);
    if (c != 0x20 && c != 0x0d && c != 0x0a) return NO;
  }
  return len >= 13 ? YES : MAYBE;
}
