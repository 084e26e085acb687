// The compiled policy snapshot of one pod: decoder and verified read-only accessors. The format —
// sizes, offsets and codes — is layout.ts, which control/src/policy/compile.ts encodes with; bump
// FORMAT_VERSION there on any change.
import { protocolIdOfLabel } from "./protocols";
import { equalFold } from "./match";
import {
  SNAPSHOT_MAGIC as L_MAGIC, FORMAT_VERSION as L_VERSION, HEADER_SIZE as L_HEADER,
  PROTOCOL_ENTRY_SIZE as L_PROTOCOL, POLICY_ENTRY_SIZE as L_POLICY, RULE_ENTRY_SIZE as L_RULE,
  PATTERN_ENTRY_SIZE as L_PATTERN, CIDR_ENTRY_SIZE as L_CIDR, PORT_ENTRY_SIZE as L_PORT,
  HDR_MAGIC, HDR_VERSION, HDR_FLAGS, HDR_TOTAL, HDR_CHECKSUM, HDR_CHECKSUM_FROM, HDR_POLICY_COUNT,
  HDR_PROTOCOL_COUNT, HDR_RULE_COUNT, HDR_PATTERN_COUNT, HDR_CIDR_COUNT, HDR_PORT_COUNT,
  HDR_STRINGS_LENGTH, HDR_CLUSTER_COUNT, HDR_RESERVED,
  PROTO_OFF, PROTO_LEN, PROTO_RESERVED,
  POL_REF_OFF, POL_REF_LEN, POL_TIER, POL_MODE, POL_FIRST_RULE, POL_RULE_COUNT, POL_GRACE,
  POL_UNATTRIBUTED, POL_KIND, POL_MESH_CONFIG, POL_RESERVED,
  RULE_ACTION, RULE_FIELDS, RULE_POLICY, RULE_NAME_OFF, RULE_NAME_LEN, RULE_INDEX,
  RULE_PATTERN_START, RULE_PATTERN_COUNT, RULE_CIDR_START, RULE_CIDR_COUNT, RULE_PORT_START,
  RULE_PORT_COUNT, RULE_PROTOCOL_BITS, RULE_FIELDS_ALL,
  PAT_KIND, PAT_RESERVED, PAT_LEN, PAT_OFF,
  CIDR_FAMILY, CIDR_PREFIX, CIDR_EXCEPT, CIDR_RESERVED, CIDR_HI, CIDR_LO,
  PORT_FIRST, PORT_LAST,
  TIER_BASELINE, TIER_NAMESPACE, UNATTRIBUTED_ALLOW as L_UNATTRIBUTED_ALLOW, MESH_CONFIG_IGNORE,
  KIND_NAMESPACED,
  RULE_DOMAINS as L_RULE_DOMAINS, RULE_CIDRS as L_RULE_CIDRS, RULE_EXTERNAL as L_RULE_EXTERNAL,
  RULE_PORTS as L_RULE_PORTS, RULE_PROTOCOLS as L_RULE_PROTOCOLS, RULE_ECH_ALLOWED as L_RULE_ECH_ALLOWED,
  ACTION_ALLOW as L_ACTION_ALLOW, ACTION_DENY as L_ACTION_DENY, ACTION_ALERT as L_ACTION_ALERT,
  ACTION_PASS as L_ACTION_PASS, MODE_ENFORCE as L_MODE_ENFORCE, MODE_MONITOR as L_MODE_MONITOR,
  PATTERN_EXACT as L_PATTERN_EXACT, PATTERN_ONE_LABEL as L_PATTERN_ONE_LABEL,
  PATTERN_MULTI_LABEL as L_PATTERN_MULTI_LABEL,
} from "./layout";

// The layout's values with the types the engine reads them as.
// @ts-ignore: decorator
@inline export const SNAPSHOT_MAGIC: u32 = <u32>L_MAGIC;
// @ts-ignore: decorator
@inline export const FORMAT_VERSION: u32 = <u32>L_VERSION;
// @ts-ignore: decorator
@inline export const HEADER_SIZE: u32 = <u32>L_HEADER;
// @ts-ignore: decorator
@inline export const PROTOCOL_ENTRY_SIZE: u32 = <u32>L_PROTOCOL;
// @ts-ignore: decorator
@inline export const POLICY_ENTRY_SIZE: u32 = <u32>L_POLICY;
// @ts-ignore: decorator
@inline export const RULE_ENTRY_SIZE: u32 = <u32>L_RULE;
// @ts-ignore: decorator
@inline export const PATTERN_ENTRY_SIZE: u32 = <u32>L_PATTERN;
// @ts-ignore: decorator
@inline export const CIDR_ENTRY_SIZE: u32 = <u32>L_CIDR;
// @ts-ignore: decorator
@inline export const PORT_ENTRY_SIZE: u32 = <u32>L_PORT;
// @ts-ignore: decorator
@inline export const RULE_DOMAINS: u32 = <u32>L_RULE_DOMAINS;
// @ts-ignore: decorator
@inline export const RULE_CIDRS: u32 = <u32>L_RULE_CIDRS;
// @ts-ignore: decorator
@inline export const RULE_EXTERNAL: u32 = <u32>L_RULE_EXTERNAL;
// @ts-ignore: decorator
@inline export const RULE_PORTS: u32 = <u32>L_RULE_PORTS;
// @ts-ignore: decorator
@inline export const RULE_PROTOCOLS: u32 = <u32>L_RULE_PROTOCOLS;
/** `encryptedClientHello: Allow`: an ECH ClientHello may be judged by this rule's names (needs RULE_DOMAINS). */
// @ts-ignore: decorator
@inline export const RULE_ECH_ALLOWED: u32 = <u32>L_RULE_ECH_ALLOWED;
// @ts-ignore: decorator
@inline export const ACTION_ALLOW: u8 = <u8>L_ACTION_ALLOW;
// @ts-ignore: decorator
@inline export const ACTION_DENY: u8 = <u8>L_ACTION_DENY;
// @ts-ignore: decorator
@inline export const ACTION_ALERT: u8 = <u8>L_ACTION_ALERT;
/** Skip the rest of this tier (network-policy-api "Pass"); only in ClusterEgressPolicy rules. */
// @ts-ignore: decorator
@inline export const ACTION_PASS: u8 = <u8>L_ACTION_PASS;
// @ts-ignore: decorator
@inline export const MODE_ENFORCE: u8 = <u8>L_MODE_ENFORCE;
// @ts-ignore: decorator
@inline export const MODE_MONITOR: u8 = <u8>L_MODE_MONITOR;
// @ts-ignore: decorator
@inline export const PATTERN_EXACT: u8 = <u8>L_PATTERN_EXACT;
// @ts-ignore: decorator
@inline export const PATTERN_ONE_LABEL: u8 = <u8>L_PATTERN_ONE_LABEL;
// @ts-ignore: decorator
@inline export const PATTERN_MULTI_LABEL: u8 = <u8>L_PATTERN_MULTI_LABEL;

// Bounds a snapshot may not exceed (a corrupt count must not drive a huge allocation).
// @ts-ignore: decorator
@inline export const MAX_SNAPSHOT_BYTES: u32 = 32 << 20;
// @ts-ignore: decorator
@inline const MAX_POLICIES: u32 = 4096;
// @ts-ignore: decorator
@inline const MAX_RULES: u32 = 65535;
// @ts-ignore: decorator
@inline const MAX_PROTOCOL_LABELS: u32 = 64;
// @ts-ignore: decorator
@inline const MAX_PATTERNS: u32 = 1 << 20;
// @ts-ignore: decorator
@inline const MAX_GRACE_SECONDS: u32 = 86400 * 7;

// Suffix index slots: 4 × u32 (hash, text address, length | SLOT_LONGER, head pattern).
// @ts-ignore: decorator
@inline const SLOT_WORDS: i32 = 4;
// @ts-ignore: decorator
@inline const SLOT_SHIFT: usize = 4;
// @ts-ignore: decorator
@inline const SLOT_LONGER: u32 = 0x10000;
// @ts-ignore: decorator
@inline const SLOT_LENGTH_MASK: u32 = 0xffff;
// Label suffixes the index may hold (a pattern of n bytes has at most n/2+1): bounds its memory.
// @ts-ignore: decorator
@inline const MAX_SUFFIXES: u32 = 1 << 22;

// Decode error codes (lastDecodeError()); 0 = none.
export const enum DecodeError {
  None = 0, TooShort = 1, BadMagic = 2, BadVersion = 3, LengthMismatch = 4, Checksum = 5,
  Limit = 6, Layout = 7, BadString = 8, UnknownProtocol = 9, BadPolicy = 10, BadRule = 11,
  BadPattern = 12, BadCidr = 13, BadPort = 14, TooLarge = 15,
}

let decodeError: i32 = 0;
let decodeErrorOffset: i32 = 0;

/** Why the last decodeSnapshot() returned null (DecodeError), 0 after a success. */
export function lastDecodeError(): i32 { return decodeError; }
/** Byte offset in the snapshot where the last decode failed (best effort). */
export function lastDecodeErrorOffset(): i32 { return decodeErrorOffset; }

function fail(code: DecodeError, offset: u32): PolicySnapshot | null {
  decodeError = code;
  decodeErrorOffset = <i32>offset;
  return null;
}

/** FNV-1a, 32 bit, over [ptr, ptr+len). */
export function fnv1a32(ptr: usize, len: usize): u32 {
  let h: u32 = 0x811c9dc5;
  for (let i: usize = 0; i < len; i++) {
    h ^= <u32>load<u8>(ptr + i);
    h *= 0x01000193;
  }
  return h;
}

/**
 * A decoded, verified snapshot: an owned copy of the bytes plus section offsets and the per-rule
 * protocol masks remapped to detector ids. Immutable after decode; every offset the engine reads
 * was checked by the decoder, so evaluation needs no bounds checks.
 */
export class PolicySnapshot {
  /** False when no policy selects the pod: nothing is enforced. */
  selected: bool = false;
  policyCount: i32 = 0;
  ruleCount: i32 = 0;
  clusterCidrCount: i32 = 0;
  /** Largest per-policy resolution grace; keep expired resolutions at least this long. */
  maxGraceSeconds: i32 = 0;
  /** True when every policy is in Monitor mode (default-deny becomes would-deny). */
  allMonitor: bool = false;
  /** Some policy accepts mesh-configuration evidence (meshConfigEvidence: Use, the default). */
  anyPolicyUsesMeshConfig: bool = false;
  /**
   * The policy a deny no policy decided (default-deny, unattributed) is attributed to in reports:
   * the last policy in evaluation order whose mode is the one that verdict follows (the last
   * Enforce policy, or the last policy when every policy is Monitor); -1 when there is none.
   */
  defaultDenyPolicy: i32 = -1;
  // Owned bytes and absolute addresses of each section inside them.
  raw: StaticArray<u8>;
  base: usize = 0;
  policies: usize = 0;
  rules: usize = 0;
  patterns: usize = 0;
  cidrs: usize = 0;
  clusterCidrs: usize = 0;
  ports: usize = 0;
  strings: usize = 0;
  /** Per rule: allowed detector protocol ids as bits. */
  ruleProtocols: StaticArray<u64>;

  // Suffix index over the domain patterns, so a candidate name is matched against every pattern
  // at once instead of pattern by pattern. It holds every label suffix of every pattern's text
  // ("example.com" and "com" for "**.example.com"), so a walk over a name's labels from the right
  // stops at the first suffix no pattern ends with: a name under a TLD no pattern mentions costs one
  // label. Patterns with the same text form a chain from the slot's head.
  /** Rule owning each pattern. */
  patternRule: StaticArray<i32>;
  /** Next pattern with the same text, -1 at the end of a chain. */
  patternNext: StaticArray<i32>;
  /**
   * Open-addressing table (power-of-two slots of SLOT_WORDS u32): suffix hash, text address, text
   * length | SLOT_LONGER (a longer label suffix exists; 0 = empty slot), head pattern (-1: none,
   * only a suffix of longer patterns).
   */
  suffixSlots: StaticArray<u32>;
  suffixMask: u32 = 0;

  // Per-evaluation scratch, valid while ruleStamp[r] == stamp (no clearing between evaluations).
  stamp: u32 = 0;
  ruleStamp: StaticArray<u32>;
  /** Smallest staleSeconds among the candidates matching the rule's domains. */
  ruleBestStale: StaticArray<i32>;
  /** The candidate with that staleness. */
  ruleBestCandidate: StaticArray<i32>;

  constructor(raw: StaticArray<u8>, ruleCount: i32, patternCount: i32 = 0) {
    this.raw = raw;
    this.base = changetype<usize>(raw);
    this.ruleProtocols = new StaticArray<u64>(ruleCount);
    this.patternRule = new StaticArray<i32>(patternCount);
    this.patternNext = new StaticArray<i32>(patternCount);
    this.suffixSlots = new StaticArray<u32>(8 * SLOT_WORDS);
    this.suffixMask = 7;
    this.ruleStamp = new StaticArray<u32>(ruleCount);
    this.ruleBestStale = new StaticArray<i32>(ruleCount);
    this.ruleBestCandidate = new StaticArray<i32>(ruleCount);
  }

  /** Sizes the (empty) suffix index for up to `suffixes` distinct suffixes, load ≤ 1/2. */
  sizeSuffixIndex(suffixes: i32): void {
    let size = 8;
    while (size < suffixes * 2) size <<= 1;
    this.suffixSlots = new StaticArray<u32>(size * SLOT_WORDS);
    this.suffixMask = <u32>(size - 1);
  }

  /** Address of the suffix index's slots (see findSuffix). */
  @inline get suffixSlotsAddr(): usize { return changetype<usize>(this.suffixSlots); }


  /** Starts a new evaluation's scratch (stamps wrap after 2^32 evaluations: then clear). */
  nextStamp(): u32 {
    let s = this.stamp + 1;
    if (s == 0) {
      for (let r = 0; r < this.ruleCount; r++) unchecked(this.ruleStamp[r] = 0);
      s = 1;
    }
    this.stamp = s;
    return s;
  }

  // Policy accessors (i < policyCount).
  @inline policyTier(i: i32): u8 { return load<u8>(this.policies + <usize>i * POLICY_ENTRY_SIZE, POL_TIER); }
  @inline policyMode(i: i32): u8 { return load<u8>(this.policies + <usize>i * POLICY_ENTRY_SIZE, POL_MODE); }
  @inline policyFirstRule(i: i32): i32 { return <i32>load<u32>(this.policies + <usize>i * POLICY_ENTRY_SIZE, POL_FIRST_RULE); }
  @inline policyRuleCount(i: i32): i32 { return <i32>load<u32>(this.policies + <usize>i * POLICY_ENTRY_SIZE, POL_RULE_COUNT); }
  @inline policyGrace(i: i32): i32 { return <i32>load<u32>(this.policies + <usize>i * POLICY_ENTRY_SIZE, POL_GRACE); }
  @inline policyUnattributed(i: i32): u8 { return load<u8>(this.policies + <usize>i * POLICY_ENTRY_SIZE, POL_UNATTRIBUTED); }
  @inline policyKind(i: i32): u8 { return load<u8>(this.policies + <usize>i * POLICY_ENTRY_SIZE, POL_KIND); }
  /** The policy set `meshConfigEvidence: Ignore`: it matches names on pod DNS evidence only. */
  @inline policyIgnoresMeshConfig(i: i32): bool { return load<u8>(this.policies + <usize>i * POLICY_ENTRY_SIZE, POL_MESH_CONFIG) == MESH_CONFIG_IGNORE; }
  /** Address and length of the policy's reference ("name" or "namespace/name"). */
  @inline policyRefPtr(i: i32): usize { return this.strings + <usize>load<u32>(this.policies + <usize>i * POLICY_ENTRY_SIZE, POL_REF_OFF); }
  @inline policyRefLen(i: i32): i32 { return <i32>load<u16>(this.policies + <usize>i * POLICY_ENTRY_SIZE, POL_REF_LEN); }

  // Rule accessors (r < ruleCount; r is the global rule index).
  @inline ruleAddr(r: i32): usize { return this.rules + <usize>r * RULE_ENTRY_SIZE; }
  @inline ruleAction(r: i32): u8 { return load<u8>(this.ruleAddr(r), RULE_ACTION); }
  @inline ruleFields(r: i32): u32 { return <u32>load<u8>(this.ruleAddr(r), RULE_FIELDS); }
  @inline rulePolicy(r: i32): i32 { return <i32>load<u16>(this.ruleAddr(r), RULE_POLICY); }
  @inline ruleNamePtr(r: i32): usize { return this.strings + <usize>load<u32>(this.ruleAddr(r), RULE_NAME_OFF); }
  @inline ruleNameLen(r: i32): i32 { return <i32>load<u16>(this.ruleAddr(r), RULE_NAME_LEN); }
  @inline ruleIndexInPolicy(r: i32): i32 { return <i32>load<u16>(this.ruleAddr(r), RULE_INDEX); }
  @inline rulePatternStart(r: i32): i32 { return <i32>load<u32>(this.ruleAddr(r), RULE_PATTERN_START); }
  @inline rulePatternCount(r: i32): i32 { return <i32>load<u32>(this.ruleAddr(r), RULE_PATTERN_COUNT); }
  @inline ruleCidrStart(r: i32): i32 { return <i32>load<u32>(this.ruleAddr(r), RULE_CIDR_START); }
  @inline ruleCidrCount(r: i32): i32 { return <i32>load<u32>(this.ruleAddr(r), RULE_CIDR_COUNT); }
  @inline rulePortStart(r: i32): i32 { return <i32>load<u32>(this.ruleAddr(r), RULE_PORT_START); }
  @inline rulePortCount(r: i32): i32 { return <i32>load<u32>(this.ruleAddr(r), RULE_PORT_COUNT); }
  @inline ruleProtocolMask(r: i32): u64 { return unchecked(this.ruleProtocols[r]); }

  // Pattern, CIDR and port entries.
  @inline patternKind(p: i32): u8 { return load<u8>(this.patterns + <usize>p * PATTERN_ENTRY_SIZE, PAT_KIND); }
  @inline patternLen(p: i32): i32 { return <i32>load<u16>(this.patterns + <usize>p * PATTERN_ENTRY_SIZE, PAT_LEN); }
  @inline patternPtr(p: i32): usize { return this.strings + <usize>load<u32>(this.patterns + <usize>p * PATTERN_ENTRY_SIZE, PAT_OFF); }
  @inline cidrAddr(c: i32): usize { return this.cidrs + <usize>c * CIDR_ENTRY_SIZE; }
  @inline clusterCidrAddr(c: i32): usize { return this.clusterCidrs + <usize>c * CIDR_ENTRY_SIZE; }
  @inline portFirst(p: i32): u32 { return <u32>load<u16>(this.ports + <usize>p * PORT_ENTRY_SIZE, PORT_FIRST); }
  @inline portLast(p: i32): u32 { return <u32>load<u16>(this.ports + <usize>p * PORT_ENTRY_SIZE, PORT_LAST); }

  /** The policy's reference as a string (reporting path only: allocates). */
  policyName(i: i32): string {
    if (i < 0 || i >= this.policyCount) return "";
    return String.UTF8.decodeUnsafe(this.policyRefPtr(i), <usize>this.policyRefLen(i));
  }

  /** The rule's label for reports: its name, or "#N" (0-based index in its policy). Allocates. */
  ruleLabel(r: i32): string {
    if (r < 0 || r >= this.ruleCount) return "";
    const n = this.ruleNameLen(r);
    if (n > 0) return String.UTF8.decodeUnsafe(this.ruleNamePtr(r), <usize>n);
    return "#" + this.ruleIndexInPolicy(r).toString();
  }
}

/**
 * The address of the suffix index slot (table at `slots`, `mask` + 1 slots) holding text
 * [text, text+len) — `h` its suffixHash; the text compared
 * case-insensitively — or 0 when no pattern ends with it. Takes raw addresses so the per-name walk
 * touches no managed reference.
 */
// @ts-ignore: decorator
@inline export function findSuffix(slots: usize, mask: u32, h: u32, text: usize, len: i32): usize {
  let slot = h & mask;
  while (true) {
    const at = slots + (<usize>slot << SLOT_SHIFT);
    const word = load<u32>(at, 8);
    if (word == 0) return 0;
    if (load<u32>(at) == h && <i32>(word & SLOT_LENGTH_MASK) == len && equalFold(text, <usize>load<u32>(at, 4), len)) return at;
    slot = (slot + 1) & mask;
  }
}
/** First pattern of the slot's chain, -1 when no pattern has exactly this text. */
// @ts-ignore: decorator
@inline export function slotHead(at: usize): i32 { return load<i32>(at, 12); }
/** Whether some pattern text extends the slot's suffix by at least one more label. */
// @ts-ignore: decorator
@inline export function slotHasLonger(at: usize): bool { return (load<u32>(at, 8) & SLOT_LONGER) != 0; }

// Checks [off, off+len) lies inside the strings section and holds printable ASCII.
function stringOk(strings: usize, stringsLen: u32, off: u32, len: u32): bool {
  if (<u64>off + <u64>len > <u64>stringsLen) return false;
  for (let i: u32 = 0; i < len; i++) {
    const c = load<u8>(strings + <usize>(off + i));
    if (c < 0x21 || c > 0x7e) return false;
  }
  return true;
}

function cidrEntryOk(addr: usize, allowExcept: bool): bool {
  const family = load<u8>(addr, CIDR_FAMILY);
  const prefix = <u32>load<u8>(addr, CIDR_PREFIX);
  const isExcept = load<u8>(addr, CIDR_EXCEPT);
  if (load<u8>(addr, CIDR_RESERVED) != 0 || isExcept > 1 || (isExcept == 1 && !allowExcept)) return false;
  if (prefix > 128) return false;
  if (family == 4) {
    // IPv4 entries live inside ::ffff:0:0/96.
    if (prefix < 96 || load<u64>(addr, CIDR_HI) != 0 || (load<u64>(addr, CIDR_LO) >> 32) != 0xffff) return false;
  } else if (family != 6) return false;
  return true;
}

/**
 * FNV-1a 32 of [ptr, ptr+len) read from the last byte to the first (suffix hashes grow leftwards),
 * each byte with bit 0x20 set: names that are equal ignoring ASCII case hash alike without a
 * lowercasing step (equality is then checked exactly, case-insensitively).
 */
export function suffixHash(ptr: usize, len: i32): u32 {
  let h: u32 = 0x811c9dc5;
  for (let i = len - 1; i >= 0; i--) {
    h ^= <u32>load<u8>(ptr + <usize>i) | 0x20;
    h *= 0x01000193;
  }
  return h;
}

// Finds or adds the slot for suffix text [text, text+n) (lowercase); returns the slot.
function suffixSlot(snap: PolicySnapshot, text: usize, n: i32): usize {
  const h = suffixHash(text, n);
  const slots = changetype<usize>(snap.suffixSlots);
  let slot = h & snap.suffixMask;
  while (true) {
    const at = slots + (<usize>slot << SLOT_SHIFT);
    const word = load<u32>(at, 8);
    if (word == 0) {
      store<u32>(at, h);
      store<u32>(at, <u32>text, 4);
      store<u32>(at, <u32>n, 8);
      store<i32>(at, -1, 12);
      return at;
    }
    if (load<u32>(at) == h && <i32>(word & SLOT_LENGTH_MASK) == n && memory.compare(<usize>load<u32>(at, 4), text, <usize>n) == 0) return at;
    slot = (slot + 1) & snap.suffixMask;
  }
}

// Adds pattern p (text [text, text+n)) to the suffix index: its own slot heads a chain of the
// patterns with this text; each shorter label suffix gets a slot saying that longer ones exist.
function indexPattern(snap: PolicySnapshot, p: i32, text: usize, n: i32): void {
  const own = suffixSlot(snap, text, n);
  unchecked(snap.patternNext[p] = load<i32>(own, 12));
  store<i32>(own, p, 12);
  for (let i = 0; i < n - 1; i++) {
    if (load<u8>(text + <usize>i) != 0x2e) continue;
    const at = suffixSlot(snap, text + <usize>(i + 1), n - i - 1);
    store<u32>(at, load<u32>(at, 8) | SLOT_LONGER, 8);
  }
}

// Label suffixes indexPattern may add for the patterns (an upper bound: shared ones count each time).
function countSuffixes(patterns: usize, strings: usize, count: u32): u64 {
  let total: u64 = 0;
  for (let p: u32 = 0; p < count; p++) {
    const e = patterns + <usize>p * PATTERN_ENTRY_SIZE;
    const n = <u32>load<u16>(e, 2);
    const text = strings + <usize>load<u32>(e, 4);
    total++;
    for (let i: u32 = 0; i + 1 < n; i++) if (load<u8>(text + <usize>i) == 0x2e) total++;
  }
  return total;
}

/** Header counts and the section offsets they imply, in u64 so corrupt counts cannot overflow. */
class Sections {
  flags: u32 = 0;
  policyCount: u32 = 0;
  protocolCount: u32 = 0;
  ruleCount: u32 = 0;
  patternCount: u32 = 0;
  cidrCount: u32 = 0;
  portCount: u32 = 0;
  stringsLen: u32 = 0;
  clusterCidrCount: u32 = 0;
  offProtocols: u64 = 0;
  offPolicies: u64 = 0;
  offRules: u64 = 0;
  offPatterns: u64 = 0;
  offCidrs: u64 = 0;
  offClusterCidrs: u64 = 0;
  offPorts: u64 = 0;
  offStrings: u64 = 0;
}

/**
 * Decodes and verifies a snapshot from [ptr, ptr+len). Allocates (root context only). Returns null
 * on any inconsistency (see lastDecodeError()); never traps on any input.
 */
export function decodeSnapshot(ptr: usize, len: u32): PolicySnapshot | null {
  decodeError = 0;
  decodeErrorOffset = 0;
  const s = readHeader(ptr, len);
  if (s == null) return null;
  // From here on every section is inside the buffer; copy it so the caller may free its bytes.
  const raw = new StaticArray<u8>(<i32>len);
  memory.copy(changetype<usize>(raw), ptr, <usize>len);
  if (s.patternCount > MAX_PATTERNS) return fail(DecodeError.Limit, HDR_PATTERN_COUNT);
  const snap = new PolicySnapshot(raw, <i32>s.ruleCount, <i32>s.patternCount);
  placeSections(snap, s);
  const protocolIds = decodeProtocols(snap, s);
  if (protocolIds == null) return null;
  if (!checkPolicies(snap, s) || !decodeRules(snap, s, protocolIds) || !checkPatterns(snap, s)) return null;
  if (!indexPatterns(snap, s) || !checkClusterCidrs(snap, s) || !checkPorts(snap, s)) return null;
  return snap;
}

function reject(code: DecodeError, offset: u32): bool {
  fail(code, offset);
  return false;
}

/** Checks the header and that the sections it declares exactly fill the buffer. */
function readHeader(ptr: usize, len: u32): Sections | null {
  if (len < HEADER_SIZE) { fail(DecodeError.TooShort, 0); return null; }
  if (len > MAX_SNAPSHOT_BYTES) { fail(DecodeError.TooLarge, 0); return null; }
  if (load<u32>(ptr, HDR_MAGIC) != SNAPSHOT_MAGIC) { fail(DecodeError.BadMagic, HDR_MAGIC); return null; }
  if (<u32>load<u16>(ptr, HDR_VERSION) != FORMAT_VERSION) { fail(DecodeError.BadVersion, HDR_VERSION); return null; }
  if (load<u32>(ptr, HDR_TOTAL) != len) { fail(DecodeError.LengthMismatch, HDR_TOTAL); return null; }
  if (fnv1a32(ptr + HDR_CHECKSUM_FROM, <usize>(len - HDR_CHECKSUM_FROM)) != load<u32>(ptr, HDR_CHECKSUM)) { fail(DecodeError.Checksum, HDR_CHECKSUM); return null; }
  const s = new Sections();
  s.flags = <u32>load<u16>(ptr, HDR_FLAGS);
  s.policyCount = <u32>load<u16>(ptr, HDR_POLICY_COUNT);
  s.protocolCount = <u32>load<u16>(ptr, HDR_PROTOCOL_COUNT);
  s.ruleCount = load<u32>(ptr, HDR_RULE_COUNT);
  s.patternCount = load<u32>(ptr, HDR_PATTERN_COUNT);
  s.cidrCount = load<u32>(ptr, HDR_CIDR_COUNT);
  s.portCount = load<u32>(ptr, HDR_PORT_COUNT);
  s.stringsLen = load<u32>(ptr, HDR_STRINGS_LENGTH);
  s.clusterCidrCount = <u32>load<u16>(ptr, HDR_CLUSTER_COUNT);
  if (s.flags > 1 || load<u16>(ptr, HDR_RESERVED) != 0) { fail(DecodeError.BadVersion, HDR_FLAGS); return null; }
  if (s.policyCount > MAX_POLICIES || s.ruleCount > MAX_RULES || s.protocolCount > MAX_PROTOCOL_LABELS) { fail(DecodeError.Limit, HDR_POLICY_COUNT); return null; }
  s.offProtocols = HEADER_SIZE;
  s.offPolicies = s.offProtocols + <u64>s.protocolCount * PROTOCOL_ENTRY_SIZE;
  s.offRules = s.offPolicies + <u64>s.policyCount * POLICY_ENTRY_SIZE;
  s.offPatterns = s.offRules + <u64>s.ruleCount * RULE_ENTRY_SIZE;
  s.offCidrs = s.offPatterns + <u64>s.patternCount * PATTERN_ENTRY_SIZE;
  s.offClusterCidrs = s.offCidrs + <u64>s.cidrCount * CIDR_ENTRY_SIZE;
  s.offPorts = s.offClusterCidrs + <u64>s.clusterCidrCount * CIDR_ENTRY_SIZE;
  s.offStrings = s.offPorts + <u64>s.portCount * PORT_ENTRY_SIZE;
  if (s.offStrings + <u64>s.stringsLen != <u64>len) { fail(DecodeError.Layout, HDR_RULE_COUNT); return null; }
  return s;
}

function placeSections(snap: PolicySnapshot, s: Sections): void {
  const base = snap.base;
  snap.selected = (s.flags & 1) != 0;
  snap.policyCount = <i32>s.policyCount;
  snap.ruleCount = <i32>s.ruleCount;
  snap.clusterCidrCount = <i32>s.clusterCidrCount;
  snap.policies = base + <usize>s.offPolicies;
  snap.rules = base + <usize>s.offRules;
  snap.patterns = base + <usize>s.offPatterns;
  snap.cidrs = base + <usize>s.offCidrs;
  snap.clusterCidrs = base + <usize>s.offClusterCidrs;
  snap.ports = base + <usize>s.offPorts;
  snap.strings = base + <usize>s.offStrings;
}

/** The protocol label table → detector ids. */
function decodeProtocols(snap: PolicySnapshot, s: Sections): StaticArray<i32> | null {
  const protocolIds = new StaticArray<i32>(<i32>s.protocolCount);
  for (let i: u32 = 0; i < s.protocolCount; i++) {
    const e = snap.base + <usize>s.offProtocols + <usize>i * PROTOCOL_ENTRY_SIZE;
    const off = load<u32>(e, PROTO_OFF);
    const n = <u32>load<u16>(e, PROTO_LEN);
    const at = <u32>(s.offProtocols + <u64>i * PROTOCOL_ENTRY_SIZE);
    if (n == 0 || load<u16>(e, PROTO_RESERVED) != 0 || !stringOk(snap.strings, s.stringsLen, off, n)) { fail(DecodeError.BadString, at); return null; }
    const id = protocolIdOfLabel(snap.strings + <usize>off, <i32>n);
    if (id < 0 || id >= 64) { fail(DecodeError.UnknownProtocol, at); return null; }
    unchecked(protocolIds[i] = id);
  }
  return protocolIds;
}

/** Policies: valid codes, and they partition the rules in order. Sets the per-snapshot summaries. */
function checkPolicies(snap: PolicySnapshot, s: Sections): bool {
  let nextRule: u32 = 0;
  let maxGrace: u32 = 0;
  let allMonitor = s.policyCount > 0;
  let lastEnforce: i32 = -1;
  let anyUsesMesh = false;
  for (let i: u32 = 0; i < s.policyCount; i++) {
    const e = snap.policies + <usize>i * POLICY_ENTRY_SIZE;
    const at = <u32>(s.offPolicies + <u64>i * POLICY_ENTRY_SIZE);
    const refOff = load<u32>(e, POL_REF_OFF);
    const refLen = <u32>load<u16>(e, POL_REF_LEN);
    const mode = load<u8>(e, POL_MODE);
    const first = load<u32>(e, POL_FIRST_RULE);
    const count = load<u32>(e, POL_RULE_COUNT);
    const grace = load<u32>(e, POL_GRACE);
    const meshConfig = load<u8>(e, POL_MESH_CONFIG);
    if (refLen == 0 || !stringOk(snap.strings, s.stringsLen, refOff, refLen)) return reject(DecodeError.BadString, at);
    if (!policyCodesOk(e)) return reject(DecodeError.BadPolicy, at);
    if (first != nextRule || <u64>first + <u64>count > <u64>s.ruleCount || grace > MAX_GRACE_SECONDS) return reject(DecodeError.BadPolicy, at);
    if (meshConfig != MESH_CONFIG_IGNORE) anyUsesMesh = true;
    nextRule = first + count;
    if (grace > maxGrace) maxGrace = grace;
    if (mode != MODE_MONITOR) {
      allMonitor = false;
      lastEnforce = <i32>i;
    }
  }
  if (nextRule != s.ruleCount) return reject(DecodeError.BadPolicy, <u32>s.offPolicies);
  snap.maxGraceSeconds = <i32>maxGrace;
  snap.allMonitor = allMonitor;
  snap.anyPolicyUsesMeshConfig = anyUsesMesh;
  snap.defaultDenyPolicy = allMonitor ? <i32>s.policyCount - 1 : lastEnforce;
  return true;
}

function policyCodesOk(e: usize): bool {
  const mode = load<u8>(e, POL_MODE);
  return load<u8>(e, POL_TIER) <= <u8>TIER_BASELINE && mode >= MODE_ENFORCE && mode <= MODE_MONITOR
    && load<u8>(e, POL_UNATTRIBUTED) <= <u8>L_UNATTRIBUTED_ALLOW && load<u8>(e, POL_KIND) <= <u8>KIND_NAMESPACED
    && load<u8>(e, POL_MESH_CONFIG) <= <u8>MESH_CONFIG_IGNORE && load<u8>(e, POL_RESERVED) == 0;
}

/** Rules: codes, owners, and ranges inside their tables; fills the protocol masks and pattern owners. */
function decodeRules(snap: PolicySnapshot, s: Sections, protocolIds: StaticArray<i32>): bool {
  let policyIndex: u32 = 0;
  let nextPattern: u32 = 0;
  for (let r: u32 = 0; r < s.ruleCount; r++) {
    const e = snap.rules + <usize>r * RULE_ENTRY_SIZE;
    const at = <u32>(s.offRules + <u64>r * RULE_ENTRY_SIZE);
    while (policyIndex < s.policyCount && <u32>snap.policyFirstRule(<i32>policyIndex) + <u32>snap.policyRuleCount(<i32>policyIndex) <= r) policyIndex++;
    if (!ruleHeadOk(snap, s, e, at, r, policyIndex)) return false;
    if (!ruleRangesOk(s, e, at, nextPattern)) return false;
    const pStart = load<u32>(e, RULE_PATTERN_START), pCount = load<u32>(e, RULE_PATTERN_COUNT);
    nextPattern += pCount;
    unchecked(snap.ruleProtocols[r] = detectorMask(load<u64>(e, RULE_PROTOCOL_BITS), s.protocolCount, protocolIds));
    for (let p: u32 = 0; p < pCount; p++) unchecked(snap.patternRule[pStart + p] = <i32>r);
    // A rule's CIDR list starts with an include.
    const cStart = load<u32>(e, RULE_CIDR_START), cCount = load<u32>(e, RULE_CIDR_COUNT);
    for (let c: u32 = 0; c < cCount; c++) {
      if (!cidrEntryOk(snap.cidrAddr(<i32>(cStart + c)), c > 0)) return reject(DecodeError.BadCidr, <u32>(s.offCidrs + <u64>(cStart + c) * CIDR_ENTRY_SIZE));
    }
  }
  if (nextPattern != s.patternCount) return reject(DecodeError.BadRule, <u32>s.offRules);
  return true;
}

/** Action, field bits, owner, index and name of rule r (entry at e, byte offset at). */
function ruleHeadOk(snap: PolicySnapshot, s: Sections, e: usize, at: u32, r: u32, policyIndex: u32): bool {
  const action = load<u8>(e, RULE_ACTION);
  const fields = <u32>load<u8>(e, RULE_FIELDS);
  const owner = <u32>load<u16>(e, RULE_POLICY);
  const nameLen = <u32>load<u16>(e, RULE_NAME_LEN);
  if (action < ACTION_ALLOW || action > ACTION_PASS || fields > <u32>RULE_FIELDS_ALL || owner != policyIndex) return reject(DecodeError.BadRule, at);
  if ((fields & RULE_ECH_ALLOWED) != 0 && (fields & RULE_DOMAINS) == 0) return reject(DecodeError.BadRule, at + RULE_FIELDS);
  // Pass means "go on to the next tier": namespaced policies have a tier of their own, no Pass.
  if (action == ACTION_PASS && snap.policyTier(<i32>owner) == <u8>TIER_NAMESPACE) return reject(DecodeError.BadRule, at);
  if (<u32>load<u16>(e, RULE_INDEX) != r - <u32>snap.policyFirstRule(<i32>owner)) return reject(DecodeError.BadRule, at + RULE_INDEX);
  if (nameLen > 0 && !stringOk(snap.strings, s.stringsLen, load<u32>(e, RULE_NAME_OFF), nameLen)) return reject(DecodeError.BadString, at + RULE_NAME_OFF);
  return true;
}

/**
 * Each field bit agrees with its table range; ranges lie inside their tables; pattern ranges
 * partition the pattern table in rule order (each pattern has one owner).
 */
function ruleRangesOk(s: Sections, e: usize, at: u32, nextPattern: u32): bool {
  const fields = <u32>load<u8>(e, RULE_FIELDS);
  const pStart = load<u32>(e, RULE_PATTERN_START), pCount = load<u32>(e, RULE_PATTERN_COUNT);
  const cStart = load<u32>(e, RULE_CIDR_START), cCount = load<u32>(e, RULE_CIDR_COUNT);
  const oStart = load<u32>(e, RULE_PORT_START), oCount = load<u32>(e, RULE_PORT_COUNT);
  const protoBits = load<u64>(e, RULE_PROTOCOL_BITS);
  if (((fields & RULE_DOMAINS) != 0) != (pCount > 0) || (pCount > 0 && pStart != nextPattern) || <u64>pStart + <u64>pCount > <u64>s.patternCount) return reject(DecodeError.BadRule, at + RULE_PATTERN_START);
  if (((fields & RULE_CIDRS) != 0) != (cCount > 0) || <u64>cStart + <u64>cCount > <u64>s.cidrCount) return reject(DecodeError.BadRule, at + RULE_CIDR_START);
  if (((fields & RULE_PORTS) != 0) != (oCount > 0) || <u64>oStart + <u64>oCount > <u64>s.portCount) return reject(DecodeError.BadRule, at + RULE_PORT_START);
  if (((fields & RULE_PROTOCOLS) != 0) != (protoBits != 0)) return reject(DecodeError.BadRule, at + RULE_PROTOCOL_BITS);
  if (s.protocolCount < 64 && (protoBits >> s.protocolCount) != 0) return reject(DecodeError.BadRule, at + RULE_PROTOCOL_BITS);
  return true;
}

/** A rule's bits over the snapshot's label table → bits over detector protocol ids. */
function detectorMask(protoBits: u64, protocolCount: u32, protocolIds: StaticArray<i32>): u64 {
  let mask: u64 = 0;
  for (let b: u32 = 0; b < protocolCount; b++) {
    if ((protoBits >> b) & 1) mask |= (<u64>1) << <u64>unchecked(protocolIds[b]);
  }
  return mask;
}

/** Patterns are stored normalized: a known kind, 1…253 bytes of lowercase letters, digits, '-', '_', '.'. */
function checkPatterns(snap: PolicySnapshot, s: Sections): bool {
  for (let p: u32 = 0; p < s.patternCount; p++) {
    const e = snap.patterns + <usize>p * PATTERN_ENTRY_SIZE;
    const kind = load<u8>(e, PAT_KIND);
    const n = <u32>load<u16>(e, PAT_LEN);
    const at = <u32>(s.offPatterns + <u64>p * PATTERN_ENTRY_SIZE);
    if (kind > PATTERN_MULTI_LABEL || load<u8>(e, PAT_RESERVED) != 0 || n == 0 || n > 253 || !stringOk(snap.strings, s.stringsLen, load<u32>(e, PAT_OFF), n)) return reject(DecodeError.BadPattern, at);
    const text = snap.strings + <usize>load<u32>(e, PAT_OFF);
    for (let i: u32 = 0; i < n; i++) {
      const c = <u32>load<u8>(text + <usize>i);
      if (!((c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c == 0x2d || c == 0x5f || c == 0x2e)) return reject(DecodeError.BadPattern, at);
    }
  }
  return true;
}

function indexPatterns(snap: PolicySnapshot, s: Sections): bool {
  const suffixes = countSuffixes(snap.patterns, snap.strings, s.patternCount);
  if (suffixes > MAX_SUFFIXES) return reject(DecodeError.Limit, HDR_PATTERN_COUNT);
  snap.sizeSuffixIndex(<i32>suffixes);
  for (let p: u32 = 0; p < s.patternCount; p++) {
    const e = snap.patterns + <usize>p * PATTERN_ENTRY_SIZE;
    indexPattern(snap, <i32>p, snap.strings + <usize>load<u32>(e, PAT_OFF), <i32>load<u16>(e, PAT_LEN));
  }
  return true;
}

function checkClusterCidrs(snap: PolicySnapshot, s: Sections): bool {
  for (let c: u32 = 0; c < s.clusterCidrCount; c++) {
    if (!cidrEntryOk(snap.clusterCidrAddr(<i32>c), false)) return reject(DecodeError.BadCidr, <u32>(s.offClusterCidrs + <u64>c * CIDR_ENTRY_SIZE));
  }
  return true;
}

function checkPorts(snap: PolicySnapshot, s: Sections): bool {
  for (let o: u32 = 0; o < s.portCount; o++) {
    if (snap.portFirst(<i32>o) > snap.portLast(<i32>o)) return reject(DecodeError.BadPort, <u32>(s.offPorts + <u64>o * PORT_ENTRY_SIZE));
  }
  return true;
}
