// Protocol labels a policy may name (`rules[].protocols`), mapped to the detector's protocol ids.
// The snapshot carries labels, not ids, so control and filter stay consistent even if ids are
// renumbered; the decoder maps each label once, at decode time.
//
// TODO(detect): ids follow the label order below until filter/assembly/detect/protocols.ts lands;
// then protocolIdOfLabel() delegates to the detector's table (the TS list in
// control/src/policy/protocols.ts is checked against this one by a test).

const LABELS: string[] = [
  "unknown", "tls", "http", "http2", "postgresql", "mysql", "redis", "mongodb", "ssh", "kafka",
  "amqp", "mqtt", "memcached", "ldap", "dns", "cassandra", "smtp", "imap", "pop3", "ftp",
];

/** Number of protocol labels known to this build (ids are 0 … count-1; all < 64). */
export function protocolLabelCount(): i32 {
  return LABELS.length;
}

/** The label of a protocol id, or "" when out of range. */
export function protocolLabel(id: i32): string {
  return id >= 0 && id < LABELS.length ? LABELS[id] : "";
}

/** The id of the label in bytes [ptr, ptr+len) (exact, lowercase), or -1 when unknown. */
export function protocolIdOfLabel(ptr: usize, len: i32): i32 {
  for (let id = 0; id < LABELS.length; id++) {
    const label = LABELS[id];
    if (label.length != len) continue;
    let same = true;
    for (let i = 0; i < len; i++) {
      if (<u32>load<u8>(ptr + <usize>i) != <u32>label.charCodeAt(i)) { same = false; break; }
    }
    if (same) return id;
  }
  return -1;
}
