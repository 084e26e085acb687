// The compiled policy snapshot of one pod: format, decoder and verified read-only accessors.
// Produced by control/src/policy/compile.ts (keep both in step; bump FORMAT_VERSION on change).
//
// Format v1, all integers little-endian:
//   header (44 bytes)
//     0 u32 magic "EGP1"      4 u16 format version (1)   6 u16 flags (bit 0: pod selected)
//     8 u32 total length     12 u32 FNV-1a 32 of bytes [16, total)
//    16 u16 policy count     18 u16 protocol label count  20 u32 rule count
//    24 u32 pattern count    28 u32 cidr count            32 u32 port-range count
//    36 u32 strings length   40 u16 cluster cidr count    42 u16 reserved (0)
//   protocol labels  count × 8:  u32 off, u16 len, u16 0          (into strings)
//   policies         count × 24: u32 refOff, u16 refLen, u8 tier (0 Admin, 1 namespaced, 2 Baseline),
//                                u8 mode (1 Enforce, 2 Monitor), u32 firstRule, u32 ruleCount,
//                                u32 graceSeconds, u8 unattributed (0 unset, 1 Deny, 2 Alert, 3 Allow),
//                                u8 kind (0 cluster, 1 namespaced), u8 meshConfigEvidence (0 Use,
//                                1 Ignore), u8 0
//   rules            count × 44: u8 action (1 Allow, 2 Deny, 3 Alert, 4 Pass — cluster policies
//                                only), u8 fields (RULE_* bits),
//                                u16 policy, u32 nameOff, u16 nameLen (0: unnamed), u16 index in policy,
//                                u32 patternStart, u32 patternCount, u32 cidrStart, u32 cidrCount,
//                                u32 portStart, u32 portCount, u64 protocol bits (over the label table)
//   patterns         count × 8:  u8 kind (0 exact, 1 "*." one label, 2 "**." one or more), u8 0,
//                                u16 len, u32 off — the name, or the suffix after the wildcard label
//   cidrs            count × 20: u8 family (4|6), u8 prefix (0…128 over the 16-byte IPv4-mapped
//                                address), u8 except (1: excludes from the preceding include), u8 0,
//                                u64 hi, u64 lo (address halves as big-endian integers)
//   cluster cidrs    count × 20: same, except = 0 (defines `external`)
//   port ranges      count × 4:  u16 first, u16 last (inclusive)
//   strings          bytes (policy refs, rule names, patterns, protocol labels; lowercase ASCII)
// The sections exactly fill `total length`. Policies are in evaluation order and partition the
// rules in order; every rule's ranges lie inside their tables.
import { protocolIdOfLabel } from "./protocols";
import { equalFold } from "./match";

// @ts-ignore: decorator
@inline export const SNAPSHOT_MAGIC: u32 = 0x31504745; // "EGP1"
// @ts-ignore: decorator
@inline export const FORMAT_VERSION: u32 = 1;
// @ts-ignore: decorator
@inline export const HEADER_SIZE: u32 = 44;
// @ts-ignore: decorator
@inline export const PROTOCOL_ENTRY_SIZE: u32 = 8;
// @ts-ignore: decorator
@inline export const POLICY_ENTRY_SIZE: u32 = 24;
// @ts-ignore: decorator
@inline export const RULE_ENTRY_SIZE: u32 = 44;
// @ts-ignore: decorator
@inline export const PATTERN_ENTRY_SIZE: u32 = 8;
// @ts-ignore: decorator
@inline export const CIDR_ENTRY_SIZE: u32 = 20;
// @ts-ignore: decorator
@inline export const PORT_ENTRY_SIZE: u32 = 4;

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

// Rule field bits (which `to`/`ports`/`protocols` fields the rule sets).
// @ts-ignore: decorator
@inline export const RULE_DOMAINS: u32 = 1;
// @ts-ignore: decorator
@inline export const RULE_CIDRS: u32 = 2;
// @ts-ignore: decorator
@inline export const RULE_EXTERNAL: u32 = 4;
// @ts-ignore: decorator
@inline export const RULE_PORTS: u32 = 8;
// @ts-ignore: decorator
@inline export const RULE_PROTOCOLS: u32 = 16;
/** `encryptedClientHello: Allow`: an ECH ClientHello may be judged by this rule's names (needs RULE_DOMAINS). */
// @ts-ignore: decorator
@inline export const RULE_ECH_ALLOWED: u32 = 32;

// @ts-ignore: decorator
@inline export const ACTION_ALLOW: u8 = 1;
// @ts-ignore: decorator
@inline export const ACTION_DENY: u8 = 2;
// @ts-ignore: decorator
@inline export const ACTION_ALERT: u8 = 3;
/** Skip the rest of this tier (network-policy-api "Pass"); only in ClusterEgressPolicy rules. */
// @ts-ignore: decorator
@inline export const ACTION_PASS: u8 = 4;
// @ts-ignore: decorator
@inline export const MODE_ENFORCE: u8 = 1;
// @ts-ignore: decorator
@inline export const MODE_MONITOR: u8 = 2;
// @ts-ignore: decorator
@inline export const PATTERN_EXACT: u8 = 0;
// @ts-ignore: decorator
@inline export const PATTERN_ONE_LABEL: u8 = 1;
// @ts-ignore: decorator
@inline export const PATTERN_MULTI_LABEL: u8 = 2;

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
  @inline policyTier(i: i32): u8 { return load<u8>(this.policies + <usize>i * POLICY_ENTRY_SIZE, 6); }
  @inline policyMode(i: i32): u8 { return load<u8>(this.policies + <usize>i * POLICY_ENTRY_SIZE, 7); }
  @inline policyFirstRule(i: i32): i32 { return <i32>load<u32>(this.policies + <usize>i * POLICY_ENTRY_SIZE, 8); }
  @inline policyRuleCount(i: i32): i32 { return <i32>load<u32>(this.policies + <usize>i * POLICY_ENTRY_SIZE, 12); }
  @inline policyGrace(i: i32): i32 { return <i32>load<u32>(this.policies + <usize>i * POLICY_ENTRY_SIZE, 16); }
  @inline policyUnattributed(i: i32): u8 { return load<u8>(this.policies + <usize>i * POLICY_ENTRY_SIZE, 20); }
  @inline policyKind(i: i32): u8 { return load<u8>(this.policies + <usize>i * POLICY_ENTRY_SIZE, 21); }
  /** The policy set `meshConfigEvidence: Ignore`: it matches names on pod DNS evidence only. */
  @inline policyIgnoresMeshConfig(i: i32): bool { return load<u8>(this.policies + <usize>i * POLICY_ENTRY_SIZE, 22) == 1; }
  /** Address and length of the policy's reference ("name" or "namespace/name"). */
  @inline policyRefPtr(i: i32): usize { return this.strings + <usize>load<u32>(this.policies + <usize>i * POLICY_ENTRY_SIZE); }
  @inline policyRefLen(i: i32): i32 { return <i32>load<u16>(this.policies + <usize>i * POLICY_ENTRY_SIZE, 4); }

  // Rule accessors (r < ruleCount; r is the global rule index).
  @inline ruleAddr(r: i32): usize { return this.rules + <usize>r * RULE_ENTRY_SIZE; }
  @inline ruleAction(r: i32): u8 { return load<u8>(this.ruleAddr(r)); }
  @inline ruleFields(r: i32): u32 { return <u32>load<u8>(this.ruleAddr(r), 1); }
  @inline rulePolicy(r: i32): i32 { return <i32>load<u16>(this.ruleAddr(r), 2); }
  @inline ruleNamePtr(r: i32): usize { return this.strings + <usize>load<u32>(this.ruleAddr(r), 4); }
  @inline ruleNameLen(r: i32): i32 { return <i32>load<u16>(this.ruleAddr(r), 8); }
  @inline ruleIndexInPolicy(r: i32): i32 { return <i32>load<u16>(this.ruleAddr(r), 10); }
  @inline rulePatternStart(r: i32): i32 { return <i32>load<u32>(this.ruleAddr(r), 12); }
  @inline rulePatternCount(r: i32): i32 { return <i32>load<u32>(this.ruleAddr(r), 16); }
  @inline ruleCidrStart(r: i32): i32 { return <i32>load<u32>(this.ruleAddr(r), 20); }
  @inline ruleCidrCount(r: i32): i32 { return <i32>load<u32>(this.ruleAddr(r), 24); }
  @inline rulePortStart(r: i32): i32 { return <i32>load<u32>(this.ruleAddr(r), 28); }
  @inline rulePortCount(r: i32): i32 { return <i32>load<u32>(this.ruleAddr(r), 32); }
  @inline ruleProtocolMask(r: i32): u64 { return unchecked(this.ruleProtocols[r]); }

  // Pattern, CIDR and port entries.
  @inline patternKind(p: i32): u8 { return load<u8>(this.patterns + <usize>p * PATTERN_ENTRY_SIZE); }
  @inline patternLen(p: i32): i32 { return <i32>load<u16>(this.patterns + <usize>p * PATTERN_ENTRY_SIZE, 2); }
  @inline patternPtr(p: i32): usize { return this.strings + <usize>load<u32>(this.patterns + <usize>p * PATTERN_ENTRY_SIZE, 4); }
  @inline cidrAddr(c: i32): usize { return this.cidrs + <usize>c * CIDR_ENTRY_SIZE; }
  @inline clusterCidrAddr(c: i32): usize { return this.clusterCidrs + <usize>c * CIDR_ENTRY_SIZE; }
  @inline portFirst(p: i32): u32 { return <u32>load<u16>(this.ports + <usize>p * PORT_ENTRY_SIZE); }
  @inline portLast(p: i32): u32 { return <u32>load<u16>(this.ports + <usize>p * PORT_ENTRY_SIZE, 2); }

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
  const family = load<u8>(addr);
  const prefix = <u32>load<u8>(addr, 1);
  const isExcept = load<u8>(addr, 2);
  if (load<u8>(addr, 3) != 0 || isExcept > 1 || (isExcept == 1 && !allowExcept)) return false;
  if (prefix > 128) return false;
  if (family == 4) {
    // IPv4 entries live inside ::ffff:0:0/96.
    if (prefix < 96 || load<u64>(addr, 4) != 0 || (load<u64>(addr, 12) >> 32) != 0xffff) return false;
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

/**
 * Decodes and verifies a snapshot from [ptr, ptr+len). Allocates (root context only). Returns null
 * on any inconsistency (see lastDecodeError()); never traps on any input.
 */
export function decodeSnapshot(ptr: usize, len: u32): PolicySnapshot | null {
  decodeError = 0;
  decodeErrorOffset = 0;
  if (len < HEADER_SIZE) return fail(DecodeError.TooShort, 0);
  if (len > MAX_SNAPSHOT_BYTES) return fail(DecodeError.TooLarge, 0);
  if (load<u32>(ptr) != SNAPSHOT_MAGIC) return fail(DecodeError.BadMagic, 0);
  if (<u32>load<u16>(ptr, 4) != FORMAT_VERSION) return fail(DecodeError.BadVersion, 4);
  if (load<u32>(ptr, 8) != len) return fail(DecodeError.LengthMismatch, 8);
  if (fnv1a32(ptr + 16, <usize>(len - 16)) != load<u32>(ptr, 12)) return fail(DecodeError.Checksum, 12);

  const flags = <u32>load<u16>(ptr, 6);
  const policyCount = <u32>load<u16>(ptr, 16);
  const protocolCount = <u32>load<u16>(ptr, 18);
  const ruleCount = load<u32>(ptr, 20);
  const patternCount = load<u32>(ptr, 24);
  const cidrCount = load<u32>(ptr, 28);
  const portCount = load<u32>(ptr, 32);
  const stringsLen = load<u32>(ptr, 36);
  const clusterCidrCount = <u32>load<u16>(ptr, 40);
  if (flags > 1 || load<u16>(ptr, 42) != 0) return fail(DecodeError.BadVersion, 6);
  if (policyCount > MAX_POLICIES || ruleCount > MAX_RULES || protocolCount > MAX_PROTOCOL_LABELS) return fail(DecodeError.Limit, 16);

  // Section layout in u64 so corrupt counts cannot overflow.
  const offProtocols: u64 = HEADER_SIZE;
  const offPolicies: u64 = offProtocols + <u64>protocolCount * PROTOCOL_ENTRY_SIZE;
  const offRules: u64 = offPolicies + <u64>policyCount * POLICY_ENTRY_SIZE;
  const offPatterns: u64 = offRules + <u64>ruleCount * RULE_ENTRY_SIZE;
  const offCidrs: u64 = offPatterns + <u64>patternCount * PATTERN_ENTRY_SIZE;
  const offClusterCidrs: u64 = offCidrs + <u64>cidrCount * CIDR_ENTRY_SIZE;
  const offPorts: u64 = offClusterCidrs + <u64>clusterCidrCount * CIDR_ENTRY_SIZE;
  const offStrings: u64 = offPorts + <u64>portCount * PORT_ENTRY_SIZE;
  if (offStrings + <u64>stringsLen != <u64>len) return fail(DecodeError.Layout, 20);

  // From here on every section is inside the buffer; copy it so the caller may free its bytes.
  const raw = new StaticArray<u8>(<i32>len);
  memory.copy(changetype<usize>(raw), ptr, <usize>len);
  if (patternCount > MAX_PATTERNS) return fail(DecodeError.Limit, 24);
  const snap = new PolicySnapshot(raw, <i32>ruleCount, <i32>patternCount);
  const base = snap.base;
  snap.selected = (flags & 1) != 0;
  snap.policyCount = <i32>policyCount;
  snap.ruleCount = <i32>ruleCount;
  snap.clusterCidrCount = <i32>clusterCidrCount;
  snap.policies = base + <usize>offPolicies;
  snap.rules = base + <usize>offRules;
  snap.patterns = base + <usize>offPatterns;
  snap.cidrs = base + <usize>offCidrs;
  snap.clusterCidrs = base + <usize>offClusterCidrs;
  snap.ports = base + <usize>offPorts;
  snap.strings = base + <usize>offStrings;
  const strings = snap.strings;

  // Protocol label table → detector ids.
  const protocolIds = new StaticArray<i32>(<i32>protocolCount);
  for (let i: u32 = 0; i < protocolCount; i++) {
    const e = base + <usize>offProtocols + <usize>i * PROTOCOL_ENTRY_SIZE;
    const off = load<u32>(e);
    const n = <u32>load<u16>(e, 4);
    const at = <u32>(offProtocols + <u64>i * PROTOCOL_ENTRY_SIZE);
    if (n == 0 || load<u16>(e, 6) != 0 || !stringOk(strings, stringsLen, off, n)) return fail(DecodeError.BadString, at);
    const id = protocolIdOfLabel(strings + <usize>off, <i32>n);
    if (id < 0 || id >= 64) return fail(DecodeError.UnknownProtocol, at);
    unchecked(protocolIds[i] = id);
  }

  // Policies partition the rules in order.
  let nextRule: u32 = 0;
  let maxGrace: u32 = 0;
  let allMonitor = policyCount > 0;
  let lastEnforce: i32 = -1;
  let anyUsesMesh = false;
  for (let i: u32 = 0; i < policyCount; i++) {
    const e = snap.policies + <usize>i * POLICY_ENTRY_SIZE;
    const at = <u32>(offPolicies + <u64>i * POLICY_ENTRY_SIZE);
    const refOff = load<u32>(e);
    const refLen = <u32>load<u16>(e, 4);
    const tier = load<u8>(e, 6);
    const mode = load<u8>(e, 7);
    const first = load<u32>(e, 8);
    const count = load<u32>(e, 12);
    const grace = load<u32>(e, 16);
    const unattributed = load<u8>(e, 20);
    const kind = load<u8>(e, 21);
    const meshConfig = load<u8>(e, 22);
    if (refLen == 0 || !stringOk(strings, stringsLen, refOff, refLen)) return fail(DecodeError.BadString, at);
    if (tier > 2 || mode < 1 || mode > 2 || unattributed > 3 || kind > 1 || meshConfig > 1 || load<u8>(e, 23) != 0) return fail(DecodeError.BadPolicy, at);
    if (meshConfig == 0) anyUsesMesh = true;
    if (first != nextRule || <u64>first + <u64>count > <u64>ruleCount || grace > MAX_GRACE_SECONDS) return fail(DecodeError.BadPolicy, at);
    nextRule = first + count;
    if (grace > maxGrace) maxGrace = grace;
    if (mode != MODE_MONITOR) {
      allMonitor = false;
      lastEnforce = <i32>i;
    }
  }
  if (nextRule != ruleCount) return fail(DecodeError.BadPolicy, <u32>offPolicies);
  snap.maxGraceSeconds = <i32>maxGrace;
  snap.allMonitor = allMonitor;
  snap.anyPolicyUsesMeshConfig = anyUsesMesh;
  snap.defaultDenyPolicy = allMonitor ? <i32>policyCount - 1 : lastEnforce;

  // Rules.
  let policyIndex: u32 = 0;
  let nextPattern: u32 = 0;
  for (let r: u32 = 0; r < ruleCount; r++) {
    const e = snap.rules + <usize>r * RULE_ENTRY_SIZE;
    const at = <u32>(offRules + <u64>r * RULE_ENTRY_SIZE);
    while (policyIndex < policyCount && <u32>snap.policyFirstRule(<i32>policyIndex) + <u32>snap.policyRuleCount(<i32>policyIndex) <= r) policyIndex++;
    const action = load<u8>(e);
    const fields = <u32>load<u8>(e, 1);
    const owner = <u32>load<u16>(e, 2);
    const nameOff = load<u32>(e, 4);
    const nameLen = <u32>load<u16>(e, 8);
    const indexInPolicy = <u32>load<u16>(e, 10);
    const pStart = load<u32>(e, 12), pCount = load<u32>(e, 16);
    const cStart = load<u32>(e, 20), cCount = load<u32>(e, 24);
    const oStart = load<u32>(e, 28), oCount = load<u32>(e, 32);
    const protoBits = load<u64>(e, 36);
    if (action < 1 || action > 4 || fields > 63 || owner != policyIndex) return fail(DecodeError.BadRule, at);
    if ((fields & RULE_ECH_ALLOWED) != 0 && (fields & RULE_DOMAINS) == 0) return fail(DecodeError.BadRule, at + 1);
    // Pass means "go on to the next tier": namespaced policies have a tier of their own, no Pass.
    if (action == ACTION_PASS && snap.policyTier(<i32>owner) == 1) return fail(DecodeError.BadRule, at);
    if (indexInPolicy != r - <u32>snap.policyFirstRule(<i32>owner)) return fail(DecodeError.BadRule, at + 10);
    if (nameLen > 0 && !stringOk(strings, stringsLen, nameOff, nameLen)) return fail(DecodeError.BadString, at + 4);
    // Each field bit must agree with its table range; ranges must lie inside their tables.
    // Pattern ranges partition the pattern table in rule order (each pattern has one owner).
    if (((fields & RULE_DOMAINS) != 0) != (pCount > 0) || (pCount > 0 && pStart != nextPattern) || <u64>pStart + <u64>pCount > <u64>patternCount) return fail(DecodeError.BadRule, at + 12);
    nextPattern += pCount;
    if (((fields & RULE_CIDRS) != 0) != (cCount > 0) || <u64>cStart + <u64>cCount > <u64>cidrCount) return fail(DecodeError.BadRule, at + 20);
    if (((fields & RULE_PORTS) != 0) != (oCount > 0) || <u64>oStart + <u64>oCount > <u64>portCount) return fail(DecodeError.BadRule, at + 28);
    if (((fields & RULE_PROTOCOLS) != 0) != (protoBits != 0)) return fail(DecodeError.BadRule, at + 36);
    if (protocolCount < 64 && (protoBits >> protocolCount) != 0) return fail(DecodeError.BadRule, at + 36);
    let mask: u64 = 0;
    for (let b: u32 = 0; b < protocolCount; b++) {
      if ((protoBits >> b) & 1) mask |= (<u64>1) << <u64>unchecked(protocolIds[b]);
    }
    unchecked(snap.ruleProtocols[r] = mask);
    for (let p: u32 = 0; p < pCount; p++) unchecked(snap.patternRule[pStart + p] = <i32>r);
    // A rule's CIDR list starts with an include.
    for (let c: u32 = 0; c < cCount; c++) {
      if (!cidrEntryOk(snap.cidrAddr(<i32>(cStart + c)), c > 0)) return fail(DecodeError.BadCidr, <u32>(offCidrs + <u64>(cStart + c) * CIDR_ENTRY_SIZE));
    }
  }
  if (nextPattern != patternCount) return fail(DecodeError.BadRule, <u32>offRules);
  for (let p: u32 = 0; p < patternCount; p++) {
    const e = snap.patterns + <usize>p * PATTERN_ENTRY_SIZE;
    const kind = load<u8>(e);
    const n = <u32>load<u16>(e, 2);
    const at = <u32>(offPatterns + <u64>p * PATTERN_ENTRY_SIZE);
    if (kind > 2 || load<u8>(e, 1) != 0 || n == 0 || n > 253 || !stringOk(strings, stringsLen, load<u32>(e, 4), n)) return fail(DecodeError.BadPattern, at);
    // Patterns are stored normalized: lowercase letters, digits, '-', '_', '.'.
    const text = strings + <usize>load<u32>(e, 4);
    for (let i: u32 = 0; i < n; i++) {
      const c = <u32>load<u8>(text + <usize>i);
      if (!((c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c == 0x2d || c == 0x5f || c == 0x2e)) return fail(DecodeError.BadPattern, at);
    }
  }
  const suffixes = countSuffixes(snap.patterns, strings, patternCount);
  if (suffixes > MAX_SUFFIXES) return fail(DecodeError.Limit, 24);
  snap.sizeSuffixIndex(<i32>suffixes);
  for (let p: u32 = 0; p < patternCount; p++) {
    const e = snap.patterns + <usize>p * PATTERN_ENTRY_SIZE;
    indexPattern(snap, <i32>p, strings + <usize>load<u32>(e, 4), <i32>load<u16>(e, 2));
  }
  for (let c: u32 = 0; c < clusterCidrCount; c++) {
    if (!cidrEntryOk(snap.clusterCidrAddr(<i32>c), false)) return fail(DecodeError.BadCidr, <u32>(offClusterCidrs + <u64>c * CIDR_ENTRY_SIZE));
  }
  for (let o: u32 = 0; o < portCount; o++) {
    if (snap.portFirst(<i32>o) > snap.portLast(<i32>o)) return fail(DecodeError.BadPort, <u32>(offPorts + <u64>o * PORT_ENTRY_SIZE));
  }
  return snap;
}
