// The policy snapshot's binary layout, format v1: the one list of section sizes, field offsets and
// codes, shared by the encoder (control/src/policy/compile.ts, TypeScript) and the decoder
// (snapshot.ts, AssemblyScript). Plain integer constants with no imports and no type annotations,
// so that both compilers read this same file. All integers little-endian.
//
//   header (44 bytes) · protocol labels · policies · rules · patterns · cidrs · cluster cidrs ·
//   port ranges · strings. The sections exactly fill the header's total length. Policies are in
//   evaluation order and partition the rules in order; every rule's ranges lie inside their tables.

export const SNAPSHOT_MAGIC = 0x31504745; // "EGP1"
export const FORMAT_VERSION = 1;

// Header.
export const HEADER_SIZE = 44;
export const HDR_MAGIC = 0; //          u32 "EGP1"
export const HDR_VERSION = 4; //        u16 format version
export const HDR_FLAGS = 6; //          u16 bit 0: some policy selects the pod
export const HDR_TOTAL = 8; //          u32 total length
export const HDR_CHECKSUM = 12; //      u32 FNV-1a 32 of bytes [HDR_CHECKSUM_FROM, total)
export const HDR_CHECKSUM_FROM = 16;
export const HDR_POLICY_COUNT = 16; //  u16
export const HDR_PROTOCOL_COUNT = 18; // u16 protocol labels
export const HDR_RULE_COUNT = 20; //    u32
export const HDR_PATTERN_COUNT = 24; // u32
export const HDR_CIDR_COUNT = 28; //    u32
export const HDR_PORT_COUNT = 32; //    u32 port ranges
export const HDR_STRINGS_LENGTH = 36; // u32
export const HDR_CLUSTER_COUNT = 40; // u16 cluster cidrs
export const HDR_RESERVED = 42; //      u16 0

// Protocol label: u32 offset, u16 length (into strings), u16 0.
export const PROTOCOL_ENTRY_SIZE = 8;
export const PROTO_OFF = 0;
export const PROTO_LEN = 4;
export const PROTO_RESERVED = 6;

// Policy.
export const POLICY_ENTRY_SIZE = 24;
export const POL_REF_OFF = 0; //        u32 "name" or "namespace/name" in strings
export const POL_REF_LEN = 4; //        u16
export const POL_TIER = 6; //           u8 TIER_*
export const POL_MODE = 7; //           u8 MODE_*
export const POL_FIRST_RULE = 8; //     u32
export const POL_RULE_COUNT = 12; //    u32
export const POL_GRACE = 16; //         u32 resolutionGraceSeconds
export const POL_UNATTRIBUTED = 20; //  u8 0 unset, UNATTRIBUTED_*
export const POL_KIND = 21; //          u8 0 cluster, 1 namespaced
export const POL_MESH_CONFIG = 22; //   u8 meshConfigEvidence: 0 Use, 1 Ignore
export const POL_RESERVED = 23; //      u8 0

// Rule.
export const RULE_ENTRY_SIZE = 44;
export const RULE_ACTION = 0; //        u8 ACTION_*
export const RULE_FIELDS = 1; //        u8 RULE_* bits
export const RULE_POLICY = 2; //        u16 owning policy
export const RULE_NAME_OFF = 4; //      u32
export const RULE_NAME_LEN = 8; //      u16 (0: unnamed)
export const RULE_INDEX = 10; //        u16 index in its policy
export const RULE_PATTERN_START = 12; // u32
export const RULE_PATTERN_COUNT = 16; // u32
export const RULE_CIDR_START = 20; //   u32
export const RULE_CIDR_COUNT = 24; //   u32
export const RULE_PORT_START = 28; //   u32
export const RULE_PORT_COUNT = 32; //   u32
export const RULE_PROTOCOL_BITS = 36; // u64 bits over the protocol label table

// Domain pattern: the name, or the suffix after the wildcard label.
export const PATTERN_ENTRY_SIZE = 8;
export const PAT_KIND = 0; //           u8 PATTERN_*
export const PAT_RESERVED = 1; //       u8 0
export const PAT_LEN = 2; //            u16
export const PAT_OFF = 4; //            u32

// CIDR (rules' cidrs and the cluster cidrs that define `external`).
export const CIDR_ENTRY_SIZE = 20;
export const CIDR_FAMILY = 0; //        u8 4 | 6
export const CIDR_PREFIX = 1; //        u8 0…128 over the 16-byte IPv4-mapped address
export const CIDR_EXCEPT = 2; //        u8 1: excludes from the preceding include (rules only)
export const CIDR_RESERVED = 3; //      u8 0
export const CIDR_HI = 4; //            u64 address bits 127…64 as an integer
export const CIDR_LO = 12; //           u64 address bits 63…0

// Port range: inclusive.
export const PORT_ENTRY_SIZE = 4;
export const PORT_FIRST = 0; //         u16
export const PORT_LAST = 2; //          u16

// Codes.
export const TIER_ADMIN = 0;
export const TIER_NAMESPACE = 1;
export const TIER_BASELINE = 2;
export const MODE_ENFORCE = 1;
export const MODE_MONITOR = 2;
export const ACTION_ALLOW = 1;
export const ACTION_DENY = 2;
export const ACTION_ALERT = 3;
/** Skip the rest of this tier (network-policy-api "Pass"); only in ClusterEgressPolicy rules. */
export const ACTION_PASS = 4;
export const PATTERN_EXACT = 0;
export const PATTERN_ONE_LABEL = 1; //  "*." one label
export const PATTERN_MULTI_LABEL = 2; // "**." one or more labels
export const UNATTRIBUTED_DENY = 1;
export const UNATTRIBUTED_ALERT = 2;
export const UNATTRIBUTED_ALLOW = 3;
export const MESH_CONFIG_USE = 0;
export const MESH_CONFIG_IGNORE = 1;
export const KIND_CLUSTER = 0;
export const KIND_NAMESPACED = 1;

// Rule field bits: which `to` / `ports` / `protocols` fields the rule sets.
export const RULE_DOMAINS = 1;
export const RULE_CIDRS = 2;
export const RULE_EXTERNAL = 4;
export const RULE_PORTS = 8;
export const RULE_PROTOCOLS = 16;
/** `encryptedClientHello: Allow`: an ECH ClientHello may be judged by this rule's names (needs RULE_DOMAINS). */
export const RULE_ECH_ALLOWED = 32;
export const RULE_FIELDS_ALL = 63;
