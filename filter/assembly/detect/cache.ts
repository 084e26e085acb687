// Redis (RESP arrays and inline commands) and memcached (text and binary protocols).
// Inline Redis and memcached text share commands ("get k"): such a first line is AMBIGUOUS and the
// server's first reply decides (RESP type byte vs. memcached reply keyword).
// References: https://redis.io/docs/latest/develop/reference/protocol-spec/,
// https://github.com/memcached/memcached/blob/master/doc/protocol.txt (and protocol_binary.h).
import { isAlpha, isDigit, LIKELY, matchAscii, MAYBE, NO, parseDecimal, toLower, u8at, YES } from "./scan";

/** Result of classifyTextCommand beyond the shared NO/MAYBE. */
// @ts-ignore: decorator
@inline export const TEXT_REDIS: i32 = 10;
// @ts-ignore: decorator
@inline export const TEXT_MEMCACHED: i32 = 11;
// @ts-ignore: decorator
@inline export const TEXT_AMBIGUOUS: i32 = 12;

// @ts-ignore: decorator
@inline const MAX_TEXT_LINE: i32 = 2048;
// @ts-ignore: decorator
@inline const MAX_TOKENS: i32 = 8;

// ---------------------------------------------------------------------------------------------
// RESP: "*<n>\r\n" then n bulk strings "$<len>\r\n<bytes>\r\n"; the first is a command name.

/** Reads "<digits>\r\n" at pos; returns the value (≥ 0), -1 malformed, -2 incomplete. `next` gets the offset after. */
function respNumber(p: usize, len: i32, pos: i32, maxDigits: i32): i64 {
  let i = pos;
  while (i < len && isDigit(u8at(p, i))) {
    if (i - pos >= maxDigits) return -1;
    i++;
  }
  if (i >= len) return -2;
  if (i == pos || u8at(p, i) != 0x0d) return -1;
  if (i + 1 >= len) return -2;
  if (u8at(p, i + 1) != 0x0a) return -1;
  numberEnd = i + 2;
  return parseDecimal(p, pos, i, maxDigits);
}
let numberEnd: i32 = 0;

export function parseRespArray(p: usize, len: i32): i32 {
  if (len >= 1 && u8at(p, 0) != 0x2a) return NO; // '*'
  if (len < 2) return MAYBE;
  const count = respNumber(p, len, 1, 7);
  if (count == -2) return MAYBE;
  if (count < 1 || count > 1048576) return NO;
  let pos = numberEnd;
  for (let i: i64 = 0; i < count; i++) {
    if (pos >= len) return i > 0 ? LIKELY : MAYBE;
    if (u8at(p, pos) != 0x24) return NO; // '$' — clients send commands as bulk strings
    const n = respNumber(p, len, pos + 1, 9);
    if (n == -2) return i > 0 ? LIKELY : MAYBE;
    if (n < 0 || n > 536870912) return NO;
    pos = numberEnd;
    if (i == 0) {
      // The command name: 1–32 letters (with '.', '_', '-', '|' in module commands).
      if (n < 1 || n > 32) return NO;
      for (let j = pos; j < pos + <i32>n && j < len; j++) {
        const c = u8at(p, j);
        if (!(isAlpha(c) || (j > pos && (isDigit(c) || c == 0x2e || c == 0x5f || c == 0x2d || c == 0x7c)))) return NO;
      }
    }
    const after = <i64>pos + n;
    if (after + 2 > <i64>len) {
      if (i == 0) return after >= <i64>len ? MAYBE : (u8at(p, <i32>after) == 0x0d ? MAYBE : NO);
      return LIKELY;
    }
    if (u8at(p, <i32>after) != 0x0d || u8at(p, <i32>after + 1) != 0x0a) return NO;
    pos = <i32>after + 2;
  }
  return YES;
}

// ---------------------------------------------------------------------------------------------
// Text first lines: Redis inline commands and memcached's text protocol.

const tokenStart = new StaticArray<i32>(MAX_TOKENS);
const tokenEnd = new StaticArray<i32>(MAX_TOKENS);

/** Splits [0, lineEnd) on spaces; returns the token count (capped at MAX_TOKENS + 1). */
function tokenize(p: usize, lineEnd: i32): i32 {
  let n = 0;
  let i = 0;
  while (i < lineEnd) {
    while (i < lineEnd && u8at(p, i) == 0x20) i++;
    if (i >= lineEnd) break;
    const s = i;
    while (i < lineEnd && u8at(p, i) != 0x20) i++;
    if (n >= MAX_TOKENS) return MAX_TOKENS + 1;
    unchecked(tokenStart[n] = s);
    unchecked(tokenEnd[n] = i);
    n++;
  }
  return n;
}

function tokenIs(p: usize, t: i32, lit: string): bool {
  const s = unchecked(tokenStart[t]);
  const e = unchecked(tokenEnd[t]);
  return e - s == lit.length && matchAscii(p, e, s, lit);
}

function tokenIsNumber(p: usize, t: i32, maxDigits: i32): bool {
  return parseDecimal(p, unchecked(tokenStart[t]), unchecked(tokenEnd[t]), maxDigits) >= 0;
}

/** Signed decimal (memcached exptime may be negative). */
function tokenIsSignedNumber(p: usize, t: i32): bool {
  const s = unchecked(tokenStart[t]);
  const e = unchecked(tokenEnd[t]);
  if (e > s && u8at(p, s) == 0x2d) return parseDecimal(p, s + 1, e, 10) >= 0;
  return parseDecimal(p, s, e, 10) >= 0;
}

/** A memcached key: 1–250 bytes, no control characters. */
function tokenIsKey(p: usize, t: i32): bool {
  const s = unchecked(tokenStart[t]);
  const e = unchecked(tokenEnd[t]);
  if (e - s < 1 || e - s > 250) return false;
  for (let i = s; i < e; i++) {
    const c = u8at(p, i);
    if (c < 0x21 || c == 0x7f) return false;
  }
  return true;
}

/** Case-insensitive comparison of token t with a lowercase literal. */
function tokenIsNoCase(p: usize, t: i32, lit: string): bool {
  const s = unchecked(tokenStart[t]);
  const e = unchecked(tokenEnd[t]);
  if (e - s != lit.length) return false;
  for (let i = 0; i < lit.length; i++) if (toLower(u8at(p, s + i)) != <u32>lit.charCodeAt(i)) return false;
  return true;
}

/** Redis commands (lowercase) that memcached does not have. Inline use is case-insensitive. */
const REDIS_ONLY: StaticArray<string> = [
  "ping", "echo", "auth", "select", "info", "hello", "client", "command", "config", "keys", "scan", "exists",
  "del", "type", "ttl", "pttl", "expire", "pexpire", "expireat", "persist", "mget", "mset", "msetnx", "hget",
  "hset", "hsetnx", "hgetall", "hdel", "hmget", "hmset", "hkeys", "hvals", "hlen", "hincrby", "hexists", "lpush",
  "rpush", "lpop", "rpop", "lrange", "llen", "lindex", "lset", "lrem", "ltrim", "blpop", "brpop", "sadd", "srem",
  "smembers", "sismember", "scard", "spop", "zadd", "zrange", "zrem", "zscore", "zcard", "zincrby", "zrangebyscore",
  "subscribe", "psubscribe", "unsubscribe", "publish", "monitor", "dbsize", "flushdb", "flushall", "multi", "exec",
  "discard", "setex", "psetex", "setnx", "getset", "getdel", "getex", "strlen", "eval", "evalsha", "script",
  "xadd", "xread", "xrange", "xlen", "sync", "psync", "replconf", "slaveof", "replicaof", "save", "bgsave",
  "bgrewriteaof", "lastsave", "time", "role", "object", "dump", "restore", "rename", "renamenx", "incrby",
  "decrby", "incrbyfloat", "getrange", "setrange", "randomkey", "move", "sort", "unlink", "wait", "cluster",
  "readonly", "readwrite", "memory", "latency", "slowlog", "acl", "module", "function", "fcall", "setbit",
  "getbit", "bitcount", "pfadd", "pfcount", "geoadd", "reset", "asking", "copy", "lmove", "blmove", "swapdb",
];

function isRedisOnly(p: usize, t: i32): bool {
  for (let i = 0; i < REDIS_ONLY.length; i++) if (tokenIsNoCase(p, t, unchecked(REDIS_ONLY[i]))) return true;
  return false;
}

/**
 * Inline commands people type (health checks, telnet/nc sessions) with their arity:
 * name, minimum and maximum argument count (-1: no maximum), first argument numeric.
 */
const INLINE_NAMES: StaticArray<string> = [
  "ping", "echo", "auth", "select", "info", "quit", "hello", "dbsize", "time", "role", "monitor", "flushall",
  "flushdb", "del", "exists", "keys", "type", "ttl", "mget", "mset", "hget", "hset", "hgetall", "lpush", "rpush",
  "lpop", "rpop", "lrange", "sadd", "smembers", "zadd", "expire", "scan", "subscribe", "publish", "client", "config",
];
const INLINE_MIN: StaticArray<i32> = [0, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 2, 2, 3, 1, 2, 2, 1, 1, 3, 2, 1, 3, 2, 1, 1, 2, 1, 1];
const INLINE_MAX: StaticArray<i32> = [1, 1, 2, 1, 8, 0, 6, 0, 0, 0, 0, 1, 1, -1, -1, 1, 1, 1, -1, -1, 2, -1, 1, -1, -1, 2, 2, 3, -1, 1, -1, 3, 7, -1, 2, -1, -1];
const INLINE_NUMERIC_FIRST: StaticArray<bool> = [
  false, false, false, true, false, false, true, false, false, false, false, false, false, false, false, false, false, false,
  false, false, false, false, false, false, false, false, false, false, false, false, false, false, true, false, false, false, false,
];

function inlineShapeMatches(p: usize, n: i32): bool {
  const args = n - 1;
  for (let i = 0; i < INLINE_NAMES.length; i++) {
    if (!tokenIsNoCase(p, 0, unchecked(INLINE_NAMES[i]))) continue;
    const lo = unchecked(INLINE_MIN[i]);
    const hi = unchecked(INLINE_MAX[i]);
    if (args < lo || (hi >= 0 && args > hi)) return false;
    if (unchecked(INLINE_NUMERIC_FIRST[i]) && args > 0 && !tokenIsNumber(p, 1, 20)) return false;
    return true;
  }
  return false;
}

/** memcached storage command: <cmd> <key> <flags> <exptime> <bytes> [cas unique] [noreply]. */
function memcachedStorage(p: usize, n: i32, withCas: bool): bool {
  const base = withCas ? 6 : 5;
  if (n != base && !(n == base + 1 && tokenIs(p, n - 1, "noreply"))) return false;
  return tokenIsKey(p, 1) && tokenIsNumber(p, 2, 10) && tokenIsSignedNumber(p, 3) && tokenIsNumber(p, 4, 10) &&
    (!withCas || tokenIsNumber(p, 5, 20));
}

/**
 * Classifies the client's first text line [0, lineEnd) (lineEnd excludes CR LF):
 * TEXT_REDIS, TEXT_MEMCACHED, TEXT_AMBIGUOUS, or NO.
 */
export function classifyTextCommand(p: usize, lineEnd: i32): i32 {
  if (lineEnd <= 0 || lineEnd > MAX_TEXT_LINE) return NO;
  for (let i = 0; i < lineEnd; i++) {
    const c = u8at(p, i);
    if (c < 0x20 && c != 0x09) return NO;
  }
  const n = tokenize(p, lineEnd);
  if (n == 0 || n > MAX_TOKENS) return n > MAX_TOKENS && isRedisOnly(p, 0) ? TEXT_REDIS : NO;
  if (unchecked(tokenStart[0]) != 0) return NO; // commands start the line
  // memcached is case-sensitive (lowercase); Redis accepts any case.
  if (tokenIs(p, 0, "get")) return n == 2 ? (tokenIsKey(p, 1) ? TEXT_AMBIGUOUS : NO) : (n > 2 ? TEXT_MEMCACHED : NO);
  if (tokenIs(p, 0, "gets")) return n >= 2 ? TEXT_MEMCACHED : NO;
  if (tokenIs(p, 0, "gat") || tokenIs(p, 0, "gats")) return n >= 3 && tokenIsSignedNumber(p, 1) ? TEXT_MEMCACHED : NO;
  if (tokenIs(p, 0, "set")) {
    if (memcachedStorage(p, n, false)) return TEXT_MEMCACHED;
    return n >= 3 ? TEXT_REDIS : NO;
  }
  if (tokenIs(p, 0, "add") || tokenIs(p, 0, "replace") || tokenIs(p, 0, "prepend")) return memcachedStorage(p, n, false) ? TEXT_MEMCACHED : NO;
  if (tokenIs(p, 0, "cas")) return memcachedStorage(p, n, true) ? TEXT_MEMCACHED : NO;
  if (tokenIs(p, 0, "append")) {
    if (memcachedStorage(p, n, false)) return TEXT_MEMCACHED;
    return n == 3 ? TEXT_REDIS : NO;
  }
  if (tokenIs(p, 0, "incr") || tokenIs(p, 0, "decr")) {
    if (n == 2) return TEXT_REDIS;
    return (n == 3 || (n == 4 && tokenIs(p, 3, "noreply"))) && tokenIsKey(p, 1) && tokenIsNumber(p, 2, 20) ? TEXT_MEMCACHED : NO;
  }
  if (tokenIs(p, 0, "touch")) {
    if (n == 2) return TEXT_REDIS;
    return n == 3 && tokenIsSignedNumber(p, 2) ? TEXT_AMBIGUOUS : (n > 3 ? TEXT_REDIS : NO);
  }
  if (tokenIs(p, 0, "delete")) return n >= 2 && n <= 4 && tokenIsKey(p, 1) ? TEXT_MEMCACHED : NO;
  if (tokenIs(p, 0, "stats") || tokenIs(p, 0, "version") || tokenIs(p, 0, "flush_all") || tokenIs(p, 0, "verbosity") ||
      tokenIs(p, 0, "mn") || tokenIs(p, 0, "mg") || tokenIs(p, 0, "ms") || tokenIs(p, 0, "md") || tokenIs(p, 0, "ma") ||
      tokenIs(p, 0, "me") || tokenIs(p, 0, "lru_crawler") || tokenIs(p, 0, "slabs") || tokenIs(p, 0, "cache_memlimit")) {
    return TEXT_MEMCACHED;
  }
  if (tokenIs(p, 0, "quit") || tokenIs(p, 0, "shutdown")) return n == 1 ? TEXT_AMBIGUOUS : NO;
  if (tokenIs(p, 0, "watch")) return TEXT_AMBIGUOUS;
  // Anything else must be a Redis command (any case). Inline commands with a known shape are
  // Redis outright; other Redis command words wait for a RESP reply (plain text often starts
  // with words like "hello" or "info").
  if (inlineShapeMatches(p, n)) return TEXT_REDIS;
  if (isRedisOnly(p, 0)) return TEXT_AMBIGUOUS;
  if (tokenIsNoCase(p, 0, "get")) return n == 2 ? TEXT_REDIS : NO;
  if (tokenIsNoCase(p, 0, "set")) return n >= 3 ? TEXT_REDIS : NO;
  if (tokenIsNoCase(p, 0, "incr") || tokenIsNoCase(p, 0, "decr")) return n == 2 ? TEXT_REDIS : NO;
  if (tokenIsNoCase(p, 0, "append")) return n == 3 ? TEXT_REDIS : NO;
  if (tokenIsNoCase(p, 0, "quit") || tokenIsNoCase(p, 0, "shutdown") || tokenIsNoCase(p, 0, "watch") || tokenIsNoCase(p, 0, "touch")) return TEXT_REDIS;
  return NO;
}

/** A server's first reply after an ambiguous text command: TEXT_REDIS, TEXT_MEMCACHED, MAYBE or NO. */
export function classifyCacheReply(p: usize, len: i32): i32 {
  if (len < 1) return MAYBE;
  let lf = -1;
  for (let i = 0; i < len && i < 1024; i++) if (u8at(p, i) == 0x0a) { lf = i; break; }
  if (lf < 0) return len >= 1024 ? NO : MAYBE;
  if (lf < 2 || u8at(p, lf - 1) != 0x0d) return NO;
  const e = lf - 1;
  const c = u8at(p, 0);
  if (matchAscii(p, e, 0, "VALUE ") || matchAscii(p, e, 0, "STAT ") || matchAscii(p, e, 0, "VERSION ") ||
      matchAscii(p, e, 0, "CLIENT_ERROR") || matchAscii(p, e, 0, "SERVER_ERROR")) return TEXT_MEMCACHED;
  if (e == 3 && matchAscii(p, e, 0, "END")) return TEXT_MEMCACHED;
  if ((e == 5 && matchAscii(p, e, 0, "ERROR")) || (e == 6 && matchAscii(p, e, 0, "STORED")) || (e == 10 && matchAscii(p, e, 0, "NOT_STORED")) ||
      (e == 6 && matchAscii(p, e, 0, "EXISTS")) || (e == 9 && matchAscii(p, e, 0, "NOT_FOUND")) || (e == 7 && matchAscii(p, e, 0, "DELETED")) ||
      (e == 7 && matchAscii(p, e, 0, "TOUCHED")) || (e == 2 && matchAscii(p, e, 0, "OK"))) return TEXT_MEMCACHED;
  // RESP2/3 reply types
  if (c == 0x2b || c == 0x2d) return TEXT_REDIS; // + simple string, - error
  if (c == 0x3a || c == 0x24 || c == 0x2a || c == 0x25 || c == 0x7e || c == 0x3e || c == 0x7c) {
    // : integer, $ bulk, * array, % map, ~ set, > push, | attribute: a (signed) number follows
    let i = 1;
    if (i < e && u8at(p, i) == 0x2d) i++;
    if (i >= e) return NO;
    for (; i < e; i++) if (!isDigit(u8at(p, i))) return NO;
    return TEXT_REDIS;
  }
  if (c == 0x5f) return e == 1 ? TEXT_REDIS : NO; // _ null
  return NO;
}

// ---------------------------------------------------------------------------------------------
// memcached binary protocol request header (24 bytes): magic 0x80, opcode, key length, extras
// length, data type 0, vbucket, total body length, opaque, CAS.

export function parseMemcachedBinary(p: usize, len: i32): i32 {
  if (len >= 1 && u8at(p, 0) != 0x80) return NO;
  if (len >= 2 && u8at(p, 1) > 0x48) return NO;
  if (len >= 6 && u8at(p, 5) != 0) return NO;
  if (len < 12) return MAYBE;
  const keyLen = (u8at(p, 2) << 8) | u8at(p, 3);
  const extLen = u8at(p, 4);
  const body = (u8at(p, 8) << 24) | (u8at(p, 9) << 16) | (u8at(p, 10) << 8) | u8at(p, 11);
  if (keyLen > 250 || extLen > 64 || body < keyLen + extLen || body > (1 << 20) + 512) return NO;
  return len >= 24 ? YES : MAYBE;
}
