// Message brokers: AMQP (protocol header; mid-connection frames) and MQTT CONNECT.
import { be16, be32, LIKELY, MAYBE, NO, u8at, YES } from "./scan";

// ---------------------------------------------------------------------------------------------
// AMQP protocol header "AMQP" + 4 bytes: 0-9-1 (0,0,9,1), 0-8/0-9 (1,1,8,0 / 1,1,0,9),
// 1.0 (id 0 AMQP, 2 TLS, 3 SASL; version 1.0.0).

export function parseAmqpHeader(p: usize, len: i32): i32 {
  const magic = "AMQP";
  for (let i = 0; i < 4 && i < len; i++) if (u8at(p, i) != <u32>magic.charCodeAt(i)) return NO;
  if (len < 8) return MAYBE;
  const a = u8at(p, 4), b = u8at(p, 5), c = u8at(p, 6), d = u8at(p, 7);
  if (a == 0 && b == 0 && c == 9 && d == 1) return YES;
  if (a == 1 && b == 1 && ((c == 8 && d == 0) || (c == 0 && d == 9))) return YES;
  if ((a == 0 || a == 2 || a == 3) && b == 1 && c == 0 && d == 0) return YES;
  return NO;
}

/**
 * Mid-connection only: an AMQP 0-9-1 frame — type (method 1, header 2, body 3, heartbeat 8),
 * channel, size, payload, frame-end 0xCE. Method frames must name a known class.
 */
export function parseAmqpFrame(p: usize, len: i32): i32 {
  if (len >= 1) {
    const t = u8at(p, 0);
    if (t != 1 && t != 2 && t != 3 && t != 8) return NO;
  }
  if (len < 7) return MAYBE;
  const size = be32(p, 3);
  if (size > (1 << 20)) return NO;
  const t = u8at(p, 0);
  if (t == 8 && (size != 0 || be16(p, 1) != 0)) return NO;
  if (t == 1 && len >= 11) {
    const cls = be16(p, 7);
    if (cls != 10 && cls != 20 && cls != 40 && cls != 50 && cls != 60 && cls != 85 && cls != 90) return NO;
    if (size < 4) return NO;
  }
  const endByte = 7 + <i32>size;
  if (len <= endByte) return LIKELY;
  return u8at(p, endByte) == 0xce ? YES : NO;
}

// ---------------------------------------------------------------------------------------------
// MQTT CONNECT (3.1 "MQIsdp" level 3, 3.1.1 "MQTT" level 4, 5.0 "MQTT" level 5).
// https://docs.oasis-open.org/mqtt/mqtt/v5.0/os/mqtt-v5.0-os.html §3.1

export function parseMqttConnect(p: usize, len: i32): i32 {
  if (len >= 1 && u8at(p, 0) != 0x10) return NO; // CONNECT, flags 0
  // Remaining length: variable byte integer, 1–4 bytes.
  let remaining: u32 = 0;
  let shift: u32 = 0;
  let pos = 1;
  while (true) {
    if (pos >= len) return MAYBE;
    if (pos > 4) return NO;
    const b = u8at(p, pos);
    remaining |= (b & 0x7f) << shift;
    shift += 7;
    pos++;
    if ((b & 0x80) == 0) break;
  }
  if (remaining < 12 || remaining > 65536 * 4) return NO;
  const end = pos + <i32>remaining;
  if (pos + 2 > len) return MAYBE;
  const nameLen = be16(p, pos);
  let level: u32;
  if (nameLen == 4) {
    if (!bytesAre(p, len, pos + 2, "MQTT")) return NO;
    level = 0;
  } else if (nameLen == 6) {
    if (!bytesAre(p, len, pos + 2, "MQIsdp")) return NO;
    level = 3;
  } else return NO;
  pos += 2 + <i32>nameLen;
  if (pos + 4 > len) return MAYBE;
  const lv = u8at(p, pos);
  if (level == 3 ? lv != 3 : (lv != 4 && lv != 5)) return NO;
  const flags = u8at(p, pos + 1);
  if ((flags & 0x01) != 0) return NO; // reserved
  const will = (flags & 0x04) != 0;
  const willQos = (flags >> 3) & 3;
  if (willQos == 3 || (!will && (willQos != 0 || (flags & 0x20) != 0))) return NO;
  if (lv == 4 && (flags & 0x40) != 0 && (flags & 0x80) == 0) return NO; // password needs a user name
  pos += 4; // level, flags, keep alive
  return pos <= end ? YES : NO;
}

function bytesAre(p: usize, len: i32, off: i32, lit: string): bool {
  for (let i = 0; i < lit.length; i++) {
    if (off + i >= len) return true; // consistent so far; caller waits for more
    if (u8at(p, off + i) != <u32>lit.charCodeAt(i)) return false;
  }
  return true;
}
