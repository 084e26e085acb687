// The DNS observer: turns DNS messages seen on the node into evidence, applying the rules of the
// security model (design.md): an answer counts only if it travels to a pod from a trusted resolver,
// answers a query that pod really sent (transaction id, both addresses and ports, question), and is
// the first answer to that query. Everything else is counted by reason and dropped. Time comes from
// the injected clock (live capture) or the packets (offline), so tests control it.
//
// Input is one DNS message at a time (a UDP payload, or one length-framed message of a reassembled
// TCP stream — see pipeline.ts). Output is `DnsObservation`s through `onObservation`.
import { CidrSet } from "./cidr.js";
import { lastParseError, parseDnsMessageOrNull, type DnsMessage } from "./message.js";
import { nameEquals, nameHash, readName, renderRdata } from "./render.js";
import { echPublicNames } from "./svcb.js";
import { MAX_POINTER_HOPS, RRType, Rcode, typeName } from "./wire.js";

export type DnsTransport = "udp" | "tcp";

/** Why a packet was not used. Stable strings: metric labels and `egret dns` stderr counts. */
export type RejectReason =
  | "malformed"            // not a parseable DNS message (see DnsParseError for the detail)
  | "unsupported"          // opcode other than QUERY, or not exactly one question
  | "sent-by-pod"          // a response originating from a pod (its address, or its side of the link)
  | "untrusted-resolver"   // a response from an address not configured as a trusted resolver
  | "unsolicited"          // a response matching no query the destination sent
  | "mismatched-id"        // same addresses and ports as a pending query, other transaction id
  | "mismatched-port"      // same addresses and id as a pending query, other ports
  | "mismatched-question"  // same addresses, ports and id, other question
  | "duplicate"            // the same response again (e.g. seen on a second interface)
  | "already-answered"     // a different response to a query that was already answered
  | "query-not-from-pod"   // a query from outside the pod CIDRs (when configured)
  | "query-to-untrusted-resolver" // a query to a server we would not believe anyway
  | "escaped-name";        // a question name with a label holding '.', '\\' or a non-printable byte

export const REJECT_REASONS: readonly RejectReason[] = [
  "malformed", "unsupported", "sent-by-pod", "untrusted-resolver", "unsolicited", "mismatched-id",
  "mismatched-port", "mismatched-question", "duplicate", "already-answered", "query-not-from-pod",
  "query-to-untrusted-resolver", "escaped-name",
];

/** Where a DNS message was seen. Times are milliseconds since the epoch. */
export interface DnsMessageMeta {
  time: number;
  src: string;
  dst: string;
  srcPort: number;
  dstPort: number;
  transport: DnsTransport;
  /** Capture interface, informational. */
  iface?: string;
  /** Frame number in a capture file (offline analysis), informational. */
  frame?: number;
  /**
   * True when the capture knows the packet came from a pod's side of a pod interface. A response
   * travelling that way was sent by the pod, whatever source address it claims.
   */
  fromPod?: boolean;
}

export interface ObservedRecord {
  /** Owner name, lowercase, no trailing dot ("." for the root). */
  name: string;
  /** Type mnemonic ("A", "CNAME") or decimal number for unknown types. */
  type: string;
  typeCode: number;
  /** Effective TTL in seconds: RFC 2181 §8 (values ≥ 2^31 mean 0), then clamped to [min, max]. */
  ttl: number;
  /** See renderRdata: address text, target name, TXT strings; null when not rendered. */
  data: string | string[] | null;
}

export interface DnsObservation {
  podIp: string;
  podPort: number;
  /** Question name: lowercase, no trailing dot, "." for the root. */
  qname: string;
  qtype: number;
  /** Full response code, including EDNS0 extended bits. */
  rcode: number;
  /** CNAME targets followed from qname, in order (only chains rooted at the question count). */
  cnameChain: string[];
  /** Answer-section records owned by qname or a name of its CNAME chain. */
  answers: ObservedRecord[];
  /** NXDOMAIN, or NOERROR without a record of the asked type at the end of the chain. */
  negative: boolean;
  /** The TC bit was set (the client will normally retry over TCP). */
  truncated: boolean;
  /**
   * For an HTTPS/SVCB question: the ECH public names (svcb.ts) of the final name's records of the
   * asked type, lowercase, deduplicated, bounded. Absent when there are none.
   */
  echPublicNames?: string[];
  /** With echPublicNames: the smallest effective TTL (seconds) of the records that named them. */
  echTtlSec?: number;
  resolver: string;
  resolverPort: number;
  transport: DnsTransport;
  /** Capture time of the answer (ms since the epoch). */
  time: number;
  iface?: string;
  /** Frame number of the answer in a capture file (offline analysis). */
  frame?: number;
  id: number;
}

export interface DnsObserverOptions {
  /** Current time in ms (live: Date.now; offline: the packet clock). Used to expire queries. */
  now(): number;
  /**
   * Addresses whose answers are believed. null = offline analysis mode: any server that answers a
   * matching query is believed; every other rule is unchanged.
   */
  trustedResolvers: readonly string[] | null;
  /** Pod address ranges ("10.244.0.0/16"). When set, only these send queries, and a "response"
   *  from one of them (that is not a trusted resolver) is rejected as sent-by-pod. */
  podCidrs?: readonly string[];
  minTtlSec?: number;
  maxTtlSec?: number;
  /** A query unanswered this long is forgotten (counted as expired). */
  queryTimeoutMs?: number;
  maxPendingPerPod?: number;
  maxPendingTotal?: number;
  /** How long an answered query is remembered to recognise copies of its response. */
  duplicateWindowMs?: number;
  maxAnsweredRemembered?: number;
  maxCnameChain?: number;
  /**
   * Keep in `answers` only the A/AAAA records of the chain's final name (what control uses), not
   * every record of the chain (TXT strings, CNAMEs…): the agent's memory per observation then
   * grows only with the addresses it needs (#14 finding 9). Offline analysis keeps everything.
   */
  addressRecordsOnly?: boolean;
  onObservation?(obs: DnsObservation): void;
  /** Called for every rejected message (diagnostics; the counters are kept regardless). */
  onReject?(reason: RejectReason, meta: DnsMessageMeta): void;
}

export interface DnsObserverStats {
  messages: number;
  queries: number;
  responses: number;
  accepted: number;
  negative: number;
  rejected: Record<RejectReason, number>;
  /** Parse failures by detail (a breakdown of rejected.malformed). */
  malformedByError: Record<string, number>;
  duplicateQueries: number;
  expiredQueries: number;
  /** Pending queries dropped because a per-pod or the global cap was reached. */
  evictedQueries: number;
  pendingQueries: number;
  /** HTTPS/SVCB records of an accepted answer whose rdata (or ECHConfigList) was malformed: no public names taken from them. */
  badSvcbRecords: number;
}

export const DEFAULT_OBSERVER_LIMITS = {
  minTtlSec: 0,
  maxTtlSec: 0x7fffffff,
  queryTimeoutMs: 30_000,
  maxPendingPerPod: 1024,
  maxPendingTotal: 262_144,
  duplicateWindowMs: 5_000,
  maxAnsweredRemembered: 262_144,
  maxCnameChain: 16,
} as const;

/** Minimum clock advance between two expiry sweeps. */
/** Pending queries of one client examined to name why an answer matched none (diagnose). */
const DIAGNOSE_WALK = 32;
const EXPIRE_EVERY_MS = 100;

/**
 * A query waiting for its answer, then (the same object) a recently answered query kept to
 * recognise copies of its response. Nodes are linked with no per-lookup allocation: into a hash
 * bucket (collision chain) and an age list (oldest first: expiry and the caps) of `pending` or of
 * `answered`, and while pending into its client's age list (the per-pod cap and mismatch diagnosis).
 */
interface QueryNode {
  hash: number;
  client: string;
  clientPort: number;
  server: string;
  serverPort: number;
  transport: DnsTransport;
  id: number;
  qname: string;
  qtype: number;
  qclass: number;
  /** When the query was seen; once answered, when the answer was. */
  time: number;
  /** Once answered: FNV-1a and length of the accepted response. */
  payloadHash: number;
  payloadLength: number;
  bucketNext: QueryNode | null;
  older: QueryNode | null;
  newer: QueryNode | null;
  clientOlder: QueryNode | null;
  clientNewer: QueryNode | null;
}

interface Linked<T> { hash: number; bucketNext: T | null; older: T | null; newer: T | null }

/**
 * Nodes indexed by a 32-bit hash (collisions chained; callers compare the full identity) and kept in
 * insertion order, oldest first. Replaces a Map keyed by a per-packet string key.
 */
class HashedAgeList<T extends Linked<T>> {
  private readonly buckets = new Map<number, T>();
  oldest: T | null = null;
  private newest: T | null = null;
  size = 0;

  /** First node of the bucket for `hash` (follow bucketNext for the rest). */
  bucket(hash: number): T | null {
    return this.buckets.get(hash) ?? null;
  }

  add(node: T): void {
    node.bucketNext = this.buckets.get(node.hash) ?? null;
    this.buckets.set(node.hash, node);
    node.older = this.newest;
    node.newer = null;
    if (this.newest) this.newest.newer = node;
    else this.oldest = node;
    this.newest = node;
    this.size++;
  }

  remove(node: T): void {
    const head = this.buckets.get(node.hash);
    if (head === node) {
      if (node.bucketNext) this.buckets.set(node.hash, node.bucketNext);
      else this.buckets.delete(node.hash);
    } else {
      for (let n = head ?? null; n; n = n.bucketNext) {
        if (n.bucketNext === node) { n.bucketNext = node.bucketNext; break; }
      }
    }
    node.bucketNext = null;
    if (node.older) node.older.newer = node.newer;
    else this.oldest = node.newer;
    if (node.newer) node.newer.older = node.older;
    else this.newest = node.older;
    node.older = node.newer = null;
    this.size--;
  }
}

/** One client's pending queries, oldest first. */
interface ClientQueries { count: number; oldest: QueryNode | null; newest: QueryNode | null }

/** FNV-1a over the message bytes: recognises identical copies cheaply. */
function fnv1a(buf: Uint8Array): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < buf.length; i++) h = Math.imul(h ^ buf[i]!, 0x01000193);
  return h >>> 0;
}

/** Offset of the first label of the name at `off` after following leading compression pointers. */
function labelsStart(buf: Uint8Array, off: number): number {
  for (let hops = 0; hops <= MAX_POINTER_HOPS && off + 1 < buf.length && (buf[off]! & 0xc0) === 0xc0; hops++) {
    off = ((buf[off]! & 0x3f) << 8) | buf[off + 1]!;
  }
  return off;
}

function mix(h: number, v: number): number {
  return Math.imul(h ^ v, 0x01000193);
}

function mixString(h: number, s: string): number {
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return Math.imul(h ^ 0x7c, 0x01000193); // separator
}

export class DnsObserver {
  readonly stats: DnsObserverStats;
  private readonly opts: Required<Omit<DnsObserverOptions, "podCidrs" | "onObservation" | "onReject" | "trustedResolvers" | "addressRecordsOnly">>;
  private readonly addressRecordsOnly: boolean;
  private readonly trusted: CidrSet | null;
  private readonly pods: CidrSet | null;
  private readonly onObservation: (obs: DnsObservation) => void;
  private readonly onReject: ((reason: RejectReason, meta: DnsMessageMeta) => void) | undefined;
  /** The message being processed, for onReject. */
  private currentMeta: DnsMessageMeta | undefined;
  /** All pending queries, oldest first, for matching, expiry and the global cap. */
  private readonly pending = new HashedAgeList<QueryNode>();
  /** Pending queries per client address, oldest first, for the per-pod cap and mismatch diagnosis. */
  private readonly pendingByClient = new Map<string, ClientQueries>();
  /** Recently answered queries, oldest first. */
  private readonly answered = new HashedAgeList<QueryNode>();
  private lastExpire = -Infinity;
  /** buildObservation's scratch: pairs of (labels start offset, name text). */
  private readonly knownNames: (number | string)[] = [];
  private readonly usedCnames: number[] = [];
  private readonly usedTargets: (string | null)[] = [];

  constructor(options: DnsObserverOptions) {
    this.opts = {
      now: options.now,
      minTtlSec: options.minTtlSec ?? DEFAULT_OBSERVER_LIMITS.minTtlSec,
      maxTtlSec: options.maxTtlSec ?? DEFAULT_OBSERVER_LIMITS.maxTtlSec,
      queryTimeoutMs: options.queryTimeoutMs ?? DEFAULT_OBSERVER_LIMITS.queryTimeoutMs,
      maxPendingPerPod: options.maxPendingPerPod ?? DEFAULT_OBSERVER_LIMITS.maxPendingPerPod,
      maxPendingTotal: options.maxPendingTotal ?? DEFAULT_OBSERVER_LIMITS.maxPendingTotal,
      duplicateWindowMs: options.duplicateWindowMs ?? DEFAULT_OBSERVER_LIMITS.duplicateWindowMs,
      maxAnsweredRemembered: options.maxAnsweredRemembered ?? DEFAULT_OBSERVER_LIMITS.maxAnsweredRemembered,
      maxCnameChain: options.maxCnameChain ?? DEFAULT_OBSERVER_LIMITS.maxCnameChain,
    };
    const o = this.opts;
    if (!(o.minTtlSec >= 0 && o.maxTtlSec >= o.minTtlSec)) throw new Error(`TTL bounds: need 0 <= min (${o.minTtlSec}) <= max (${o.maxTtlSec})`);
    for (const k of ["maxPendingPerPod", "maxPendingTotal", "maxAnsweredRemembered", "maxCnameChain", "queryTimeoutMs"] as const) {
      if (!(Number.isInteger(o[k]) && o[k] > 0)) throw new Error(`observer option ${k} must be a positive integer, got ${o[k]}`);
    }
    this.addressRecordsOnly = options.addressRecordsOnly ?? false;
    this.trusted = options.trustedResolvers ? new CidrSet(options.trustedResolvers, "trusted resolver") : null;
    this.pods = options.podCidrs && options.podCidrs.length > 0 ? new CidrSet(options.podCidrs, "pod CIDR") : null;
    this.onObservation = options.onObservation ?? (() => {});
    this.onReject = options.onReject;
    const rejected = {} as Record<RejectReason, number>;
    for (const r of REJECT_REASONS) rejected[r] = 0;
    this.stats = {
      messages: 0, queries: 0, responses: 0, accepted: 0, negative: 0, rejected, malformedByError: {},
      duplicateQueries: 0, expiredQueries: 0, evictedQueries: 0, pendingQueries: 0, badSvcbRecords: 0,
    };
  }

  /**
   * Processes one DNS message. Returns the observation when the message was an accepted answer,
   * the reject reason when it was rejected, or "query" when it was recorded as a pending query.
   * Never throws on packet contents.
   */
  observe(meta: DnsMessageMeta, payload: Uint8Array): DnsObservation | RejectReason | "query" | "ignored" {
    this.stats.messages++;
    this.currentMeta = meta;
    const now = this.opts.now();
    // Expiry walks the oldest entries; a few times a second is precise enough and keeps the
    // per-message cost flat.
    if (now - this.lastExpire >= EXPIRE_EVERY_MS || now < this.lastExpire) this.expire(now);
    // The message never leaves the observer, so empty sections may share one array.
    const msg = parseDnsMessageOrNull(payload, 0, payload.length, true);
    if (msg === null) {
      const error = lastParseError();
      this.stats.malformedByError[error] = (this.stats.malformedByError[error] ?? 0) + 1;
      return this.reject("malformed");
    }
    if (msg.opcode !== 0 || msg.questions.length !== 1) return this.reject("unsupported");
    return msg.isResponse ? this.onResponse(meta, msg, payload) : this.onQuery(meta, msg);
  }

  /** Number of queries waiting for an answer. */
  get pendingCount(): number {
    return this.pending.size;
  }

  private reject(reason: RejectReason): RejectReason {
    this.stats.rejected[reason]++;
    if (this.onReject && this.currentMeta) this.onReject(reason, this.currentMeta);
    return reason;
  }

  /**
   * Hash of a query's identity: transport, client and server addresses and ports, transaction id,
   * question type, class and name (lowercased, from the wire). Equal identities hash equal; lookups
   * then compare every field (matches()), so a collision can never match the wrong query.
   */
  private identityHash(transport: DnsTransport, client: string, cport: number, server: string, sport: number, msg: DnsMessage): number {
    const q = msg.questions[0]!;
    let h = transport === "udp" ? 0x811c9dc5 : 0x050c5d1f;
    h = mixString(h, client);
    h = mix(h, cport);
    h = mixString(h, server);
    h = mix(h, sport);
    h = mix(h, msg.id);
    h = mix(h, q.qtype);
    h = mix(h, q.qclass);
    // 30 bits: the hash stays a small integer (no heap number as a Map key).
    return nameHash(msg.buf, q.nameOffset, h, true) & 0x3fffffff;
  }

  private static matches(p: QueryNode, transport: DnsTransport, client: string, cport: number, server: string, sport: number, msg: DnsMessage): boolean {
    const q = msg.questions[0]!;
    return p.id === msg.id && p.clientPort === cport && p.serverPort === sport && p.qtype === q.qtype &&
      p.qclass === q.qclass && p.transport === transport && p.client === client && p.server === server &&
      nameEquals(msg.buf, q.nameOffset, p.qname, true);
  }

  private findPending(hash: number, transport: DnsTransport, client: string, cport: number, server: string, sport: number, msg: DnsMessage): QueryNode | null {
    for (let p = this.pending.bucket(hash); p; p = p.bucketNext) {
      if (DnsObserver.matches(p, transport, client, cport, server, sport, msg)) return p;
    }
    return null;
  }

  private findAnswered(hash: number, transport: DnsTransport, client: string, cport: number, server: string, sport: number, msg: DnsMessage): QueryNode | null {
    for (let a = this.answered.bucket(hash); a; a = a.bucketNext) {
      if (DnsObserver.matches(a, transport, client, cport, server, sport, msg)) return a;
    }
    return null;
  }

  private onQuery(meta: DnsMessageMeta, msg: DnsMessage): "query" | "ignored" | RejectReason {
    this.stats.queries++;
    if (meta.fromPod === false || (this.pods && !this.pods.has(meta.src))) return this.reject("query-not-from-pod");
    if (this.trusted && !this.trusted.has(meta.dst)) return this.reject("query-to-untrusted-resolver");
    const q = msg.questions[0]!;
    const hash = this.identityHash(meta.transport, meta.src, meta.srcPort, meta.dst, meta.dstPort, msg);
    // The same query seen again (second interface, or a retransmission): keep the first.
    if (this.findPending(hash, meta.transport, meta.src, meta.srcPort, meta.dst, meta.dstPort, msg) ||
        this.findAnswered(hash, meta.transport, meta.src, meta.srcPort, meta.dst, meta.dstPort, msg)) {
      this.stats.duplicateQueries++;
      return "ignored";
    }
    const qname = readName(msg.buf, q.nameOffset, true);
    if (qname === null) return this.reject("malformed"); // unreachable: parse validated it
    // Names travel on as presentation text, split at '.': a wire label holding '.' (rendered "\.")
    // or any other escaped byte could match a pattern's separator downstream, so such a name is
    // never evidence (#14: names stay label-exact).
    if (qname.includes("\\")) return this.reject("escaped-name");
    const existing = this.pendingByClient.get(meta.src);
    if (existing && existing.count >= this.opts.maxPendingPerPod) {
      this.drop(existing.oldest!);
      this.stats.evictedQueries++;
    }
    if (this.pending.size >= this.opts.maxPendingTotal) {
      // The pod holding the most pending queries pays, never a quieter pod: one pod's flood cannot
      // push out another pod's queries.
      this.drop(this.largestClient().oldest!);
      this.stats.evictedQueries++;
    }
    const p: QueryNode = {
      hash, client: meta.src, clientPort: meta.srcPort, server: meta.dst, serverPort: meta.dstPort,
      transport: meta.transport, id: msg.id, qname, qtype: q.qtype, qclass: q.qclass, time: meta.time,
      payloadHash: 0, payloadLength: 0, bucketNext: null, older: null, newer: null, clientOlder: null, clientNewer: null,
    };
    this.pending.add(p);
    // Fetched again: the evictions above may have removed this client's (now empty) list.
    let perClient = this.pendingByClient.get(meta.src);
    if (!perClient) {
      perClient = { count: 0, oldest: null, newest: null };
      this.pendingByClient.set(meta.src, perClient);
    }
    p.clientOlder = perClient.newest;
    if (perClient.newest) perClient.newest.clientNewer = p;
    else perClient.oldest = p;
    perClient.newest = p;
    perClient.count++;
    this.stats.pendingQueries = this.pending.size;
    return "query";
  }

  /** The client with the most pending queries (the node's table is full; a rare, linear scan). */
  private largestClient(): ClientQueries {
    let best: ClientQueries | undefined;
    for (const c of this.pendingByClient.values()) if (!best || c.count > best.count) best = c;
    return best!;
  }

  private onResponse(meta: DnsMessageMeta, msg: DnsMessage, payload: Uint8Array): DnsObservation | RejectReason {
    this.stats.responses++;
    const isTrusted = this.trusted ? this.trusted.has(meta.src) : true;
    if (meta.fromPod) return this.reject("sent-by-pod");
    if (this.pods && this.pods.has(meta.src) && !(this.trusted && isTrusted)) return this.reject("sent-by-pod");
    if (!isTrusted) return this.reject("untrusted-resolver");

    const hash = this.identityHash(meta.transport, meta.dst, meta.dstPort, meta.src, meta.srcPort, msg);
    const p = this.findPending(hash, meta.transport, meta.dst, meta.dstPort, meta.src, meta.srcPort, msg);
    if (!p) return this.reject(this.diagnose(meta, msg, hash, payload));

    this.drop(p);
    this.remember(p, payload, meta.time);
    const obs = this.buildObservation(meta, msg, p);
    this.stats.accepted++;
    if (obs.negative) this.stats.negative++;
    this.onObservation(obs);
    return obs;
  }

  /** Explains why a response matched no pending query. */
  private diagnose(meta: DnsMessageMeta, msg: DnsMessage, hash: number, payload: Uint8Array): RejectReason {
    const seen = this.findAnswered(hash, meta.transport, meta.dst, meta.dstPort, meta.src, meta.srcPort, msg);
    if (seen && meta.time - seen.time <= this.opts.duplicateWindowMs) {
      return seen.payloadHash === fnv1a(payload) && seen.payloadLength === payload.length ? "duplicate" : "already-answered";
    }
    const perClient = this.pendingByClient.get(meta.dst);
    if (!perClient) return "unsolicited";
    let sameFlow = false, sameId = false;
    // The reason is a diagnosis, not a decision: look at the client's newest queries only, so an
    // answer whose query was never seen (lost in capture, or a flood of unsolicited answers)
    // costs a bounded walk, not one over the pod's whole pending list.
    let budget = DIAGNOSE_WALK;
    for (let p = perClient.newest; p && budget > 0; p = p.clientOlder, budget--) {
      if (p.server !== meta.src || p.transport !== meta.transport) continue;
      const flow = p.clientPort === meta.dstPort && p.serverPort === meta.srcPort;
      if (flow && p.id === msg.id) return "mismatched-question";
      if (flow) sameFlow = true;
      else if (p.id === msg.id) sameId = true;
    }
    if (sameFlow) return "mismatched-id";
    if (sameId) return "mismatched-port";
    return "unsolicited";
  }

  /**
   * Moves the answered query `p` (already dropped from pending) to the answered list. No entry of
   * the same identity can be there: a query is made pending only when neither list holds it.
   */
  private remember(p: QueryNode, payload: Uint8Array, time: number): void {
    if (this.answered.size >= this.opts.maxAnsweredRemembered) this.answered.remove(this.answered.oldest!);
    p.time = time;
    p.payloadHash = fnv1a(payload);
    p.payloadLength = payload.length;
    this.answered.add(p);
  }

  private drop(p: QueryNode): void {
    this.pending.remove(p);
    const perClient = this.pendingByClient.get(p.client);
    if (perClient) {
      if (p.clientOlder) p.clientOlder.clientNewer = p.clientNewer;
      else perClient.oldest = p.clientNewer;
      if (p.clientNewer) p.clientNewer.clientOlder = p.clientOlder;
      else perClient.newest = p.clientOlder;
      p.clientOlder = p.clientNewer = null;
      if (--perClient.count === 0) this.pendingByClient.delete(p.client);
    }
    this.stats.pendingQueries = this.pending.size;
  }

  /** Forgets queries past their timeout and answered entries past the duplicate window. */
  expire(now = this.opts.now()): void {
    this.lastExpire = now;
    for (let p = this.pending.oldest; p && now - p.time > this.opts.queryTimeoutMs; p = this.pending.oldest) {
      this.drop(p);
      this.stats.expiredQueries++;
    }
    for (let a = this.answered.oldest; a && now - a.time > this.opts.duplicateWindowMs; a = this.answered.oldest) {
      this.answered.remove(a);
    }
  }

  private effectiveTtl(wire: number): number {
    const ttl = wire > 0x7fffffff ? 0 : wire; // RFC 2181 §8
    return Math.min(this.opts.maxTtlSec, Math.max(this.opts.minTtlSec, ttl));
  }

  private buildObservation(meta: DnsMessageMeta, msg: DnsMessage, p: QueryNode): DnsObservation {
    // Owner names are compared on the wire against the (few) names of the chain, never decoded:
    // an owner on the chain renders to exactly that chain name.
    const { buf, answers: records } = msg;
    // Known names by where their labels start (compression pointers followed): servers compress
    // owners to the question or to a CNAME's target, so most owners are recognised by offset alone.
    const known = this.knownNames;
    known.length = 0;
    // Labels start of the name being followed: an owner starting there is that name, no compare needed.
    let currentStart = labelsStart(buf, msg.questions[0]!.nameOffset);
    known.push(currentStart, p.qname);
    const chain: string[] = [];
    const usedCnames = this.usedCnames; // indices of the CNAME records followed
    const usedTargets = this.usedTargets; // their decoded targets
    usedCnames.length = 0;
    usedTargets.length = 0;
    let current = p.qname;
    while (chain.length < this.opts.maxCnameChain) {
      let i = -1;
      for (let j = 0; j < records.length; j++) {
        const rr = records[j]!;
        if (rr.type === RRType.CNAME && !usedCnames.includes(j) &&
            (labelsStart(buf, rr.nameOffset) === currentStart || nameEquals(buf, rr.nameOffset, current, true))) { i = j; break; }
      }
      if (i < 0) break;
      const target = readName(buf, records[i]!.rdataOffset, true);
      usedCnames.push(i);
      usedTargets.push(target);
      if (target === null || target === p.qname || chain.includes(target)) break; // CNAME loop: stop at the first repeat
      if (target.includes("\\")) break; // an escaped label is never evidence (see onQuery): the chain ends unresolved
      chain.push(target);
      currentStart = labelsStart(buf, records[i]!.rdataOffset);
      known.push(currentStart, target);
      current = target;
    }
    const answers: ObservedRecord[] = [];
    let finalOfType = 0;
    let echNames: string[] | undefined;
    let echTtl = -1;
    const addressesOnly = this.addressRecordsOnly;
    for (let j = 0; j < records.length; j++) {
      const rr = records[j]!;
      if (addressesOnly && rr.type !== RRType.A && rr.type !== RRType.AAAA && !(rr.type === p.qtype || p.qtype === 255)) continue;
      const owner = this.chainNameOf(buf, rr.nameOffset, p.qname, chain, known);
      if (owner === null) continue;
      if (owner === current && rr.type === p.qtype && (rr.type === RRType.HTTPS || rr.type === RRType.SVCB)) {
        echNames ??= [];
        const had = echNames.length;
        if (!echPublicNames(buf, rr.rdataOffset, rr.rdataLength, echNames)) this.stats.badSvcbRecords++;
        else if (echNames.length > had || echTtl < 0) echTtl = echTtl < 0 ? this.effectiveTtl(rr.ttl) : Math.min(echTtl, this.effectiveTtl(rr.ttl));
      }
      if (addressesOnly) {
        // The chain itself is cnameChain; only the final name's addresses are kept.
        if (rr.type === RRType.CNAME) continue;
        if (owner === current && (rr.type === p.qtype || p.qtype === 255)) finalOfType++;
        if (owner !== current || (rr.type !== RRType.A && rr.type !== RRType.AAAA)) continue;
        answers.push({ name: owner, type: typeName(rr.type), typeCode: rr.type, ttl: this.effectiveTtl(rr.ttl), data: renderRdata(msg, rr, true) });
        continue;
      }
      let data: string | string[] | null;
      if (rr.type === RRType.CNAME) {
        const used = usedCnames.indexOf(j);
        if (used < 0) continue; // a second, conflicting CNAME
        data = rr.rdataLength > 0 ? usedTargets[used]! : null; // as renderRdata would render it
      } else {
        data = renderRdata(msg, rr, true);
      }
      if (owner === current && (rr.type === p.qtype || p.qtype === 255)) finalOfType++;
      answers.push({ name: owner, type: typeName(rr.type), typeCode: rr.type, ttl: this.effectiveTtl(rr.ttl), data });
    }
    if (p.qtype === RRType.CNAME && chain.length > 0) finalOfType++;
    const negative = msg.rcode === Rcode.NXDomain || (msg.rcode === Rcode.NoError && finalOfType === 0);
    if (meta.iface === undefined && meta.frame === undefined) {
      return {
        podIp: p.client, podPort: p.clientPort, qname: p.qname, qtype: p.qtype, rcode: msg.rcode,
        cnameChain: chain, answers, negative, truncated: msg.truncated,
        ...(echNames !== undefined && echNames.length > 0 ? { echPublicNames: echNames, echTtlSec: echTtl } : {}),
        resolver: p.server, resolverPort: p.serverPort, transport: p.transport, time: meta.time, id: msg.id,
      };
    }
    return {
      podIp: p.client, podPort: p.clientPort, qname: p.qname, qtype: p.qtype, rcode: msg.rcode,
      cnameChain: chain, answers, negative, truncated: msg.truncated,
      ...(echNames !== undefined && echNames.length > 0 ? { echPublicNames: echNames, echTtlSec: echTtl } : {}),
      resolver: p.server, resolverPort: p.serverPort, transport: p.transport, time: meta.time,
      ...(meta.iface !== undefined ? { iface: meta.iface } : {}),
      ...(meta.frame !== undefined ? { frame: meta.frame } : {}),
      id: msg.id,
    };
  }

  /** The question name or chain name the (validated) name at `off` renders to, or null. */
  private chainNameOf(buf: Uint8Array, off: number, qname: string, chain: readonly string[], known: readonly (number | string)[]): string | null {
    const start = labelsStart(buf, off);
    for (let k = 0; k < known.length; k += 2) if (known[k] === start) return known[k + 1] as string;
    if (nameEquals(buf, off, qname, true)) return qname;
    for (let k = 0; k < chain.length; k++) if (nameEquals(buf, off, chain[k]!, true)) return chain[k]!;
    return null;
  }
}
