// Protocol labels a policy may name (`rules[].protocols`), mapped to the detector's protocol ids
// (../detect/protocols.ts, the one table). The snapshot carries labels, not ids, so control and
// filter stay consistent even if ids were renumbered; the decoder maps each label once, at decode
// time. control/src/policy/protocols.ts and the CRD enums are checked against this by a test.
import { PROTOCOL_COUNT, protocolName, protocolIdOfName } from "../detect/protocols";

/** Number of protocol labels known to this build (ids are 0 … count-1; all < 64). */
export function protocolLabelCount(): i32 {
  return PROTOCOL_COUNT;
}

/** The label of a protocol id, or "" when out of range. */
export function protocolLabel(id: i32): string {
  return protocolName(id);
}

/** The id of the label in bytes [ptr, ptr+len) (exact, lowercase), or -1 when unknown. */
export function protocolIdOfLabel(ptr: usize, len: i32): i32 {
  return protocolIdOfName(ptr, len);
}
