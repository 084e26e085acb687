// Protocol ids reported by the detector. STABLE: compiled policy snapshots, reports and tools use
// these numbers; append new protocols at the end, never renumber. Id 0 is "unknown".
// (The order matches the label list in ../policy/protocols.ts.)

// @ts-ignore: decorator
@inline export const PROTO_NEED_MORE: i32 = -1; // not decided yet (feed more bytes, or expire())
// @ts-ignore: decorator
@inline export const PROTO_UNKNOWN: i32 = 0;
// @ts-ignore: decorator
@inline export const PROTO_TLS: i32 = 1;
// @ts-ignore: decorator
@inline export const PROTO_HTTP: i32 = 2;
// @ts-ignore: decorator
@inline export const PROTO_HTTP2: i32 = 3;
// @ts-ignore: decorator
@inline export const PROTO_POSTGRESQL: i32 = 4;
// @ts-ignore: decorator
@inline export const PROTO_MYSQL: i32 = 5;
// @ts-ignore: decorator
@inline export const PROTO_REDIS: i32 = 6;
// @ts-ignore: decorator
@inline export const PROTO_MONGODB: i32 = 7;
// @ts-ignore: decorator
@inline export const PROTO_SSH: i32 = 8;
// @ts-ignore: decorator
@inline export const PROTO_KAFKA: i32 = 9;
// @ts-ignore: decorator
@inline export const PROTO_AMQP: i32 = 10;
// @ts-ignore: decorator
@inline export const PROTO_MQTT: i32 = 11;
// @ts-ignore: decorator
@inline export const PROTO_MEMCACHED: i32 = 12;
// @ts-ignore: decorator
@inline export const PROTO_LDAP: i32 = 13;
// @ts-ignore: decorator
@inline export const PROTO_DNS: i32 = 14;
// @ts-ignore: decorator
@inline export const PROTO_CASSANDRA: i32 = 15;
// @ts-ignore: decorator
@inline export const PROTO_SMTP: i32 = 16;
// @ts-ignore: decorator
@inline export const PROTO_IMAP: i32 = 17;
// @ts-ignore: decorator
@inline export const PROTO_POP3: i32 = 18;
// @ts-ignore: decorator
@inline export const PROTO_FTP: i32 = 19;
/** Number of protocol ids (0 … PROTOCOL_COUNT-1). */
// @ts-ignore: decorator
@inline export const PROTOCOL_COUNT: i32 = 20;

const NAMES: StaticArray<string> = [
  "unknown", "tls", "http", "http2", "postgresql", "mysql", "redis", "mongodb", "ssh", "kafka",
  "amqp", "mqtt", "memcached", "ldap", "dns", "cassandra", "smtp", "imap", "pop3", "ftp",
];

/** The label of a protocol id ("unknown" … "ftp"), or "" when out of range (incl. NEED_MORE). */
export function protocolName(id: i32): string {
  return id >= 0 && id < PROTOCOL_COUNT ? unchecked(NAMES[id]) : "";
}

/** The id of the lowercase label in bytes [ptr, ptr+len), or -1 when it names no protocol. */
export function protocolIdOfName(ptr: usize, len: i32): i32 {
  for (let id = 0; id < PROTOCOL_COUNT; id++) {
    const name = unchecked(NAMES[id]);
    if (name.length != len) continue;
    let same = true;
    for (let i = 0; i < len; i++) {
      if (<u32>load<u8>(ptr + <usize>i) != <u32>name.charCodeAt(i)) { same = false; break; }
    }
    if (same) return id;
  }
  return -1;
}
