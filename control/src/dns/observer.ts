// The DNS observer: turns DNS messages seen on the node into evidence, applying the rules of the
// security model (design.md): an answer counts only if it travels to a pod from a trusted resolver,
// answers a query that pod really sent (transaction id, both addresses and ports, question), and is
// the first answer to that query. Everything else is counted by reason and dropped. Time comes from
// the injected clock (live capture) or the packets (offline), so tests control it.
//
// Input is one DNS message at a time (a UDP payload, or one length-framed message of a reassembled
// TCP stream — see pipeline.ts). Output is `DnsObservation`s through `onObservation`.
import { CidrSet } from "./cidr.js";
import { lastParseError, ReusableDnsMessage, type DnsMessage } from "./message.js";
import { nameEquals, nameHash, readName, renderRdata } from "./render.js";
import { NONE, QuerySlots, SlotList } from "./query-table.js";
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
  /**
   * Called for every rejected message (diagnostics; the counters are kept regardless). `meta` is
   * valid only during the call: the pipeline refills one object per datagram.
   */
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

/** One client's pending queries (slots of its age list), oldest first. */
interface ClientQueries { count: number; oldest: number; newest: number }

/**
 * FNV-1a over the message bytes, four at a time (then the tail), and the length: recognises
 * identical copies cheaply. Only ever compared with itself.
 */
function fnv1a(buf: Uint8Array): number {
  let h = 0x811c9dc5;
  const whole = buf.length & ~3;
  let i = 0;
  for (; i < whole; i += 4) h = Math.imul(h ^ (buf[i]! | (buf[i + 1]! << 8) | (buf[i + 2]! << 16) | (buf[i + 3]! << 24)), 0x01000193);
  for (; i < buf.length; i++) h = Math.imul(h ^ buf[i]!, 0x01000193);
  return Math.imul(h ^ buf.length, 0x01000193) | 0;
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
  /**
   * Every query the observer holds, pending or answered: a slot each (see query-table.ts). A
   * query keeps its slot from the moment it is pending until it leaves the answered list.
   */
  private readonly q = new QuerySlots();
  /** All pending queries, oldest first, for matching, expiry and the global cap. */
  private readonly pending = new SlotList(this.q);
  /** Pending queries per client address, oldest first, for the per-pod cap and mismatch diagnosis. */
  private readonly pendingByClient = new Map<string, ClientQueries>();
  /** Recently answered queries, oldest first. */
  private readonly answered = new SlotList(this.q);
  private lastExpire = -Infinity;
  private readonly parser = new ReusableDnsMessage();
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
    // The message never leaves this call (observations copy what they keep), so one message
    // object, its arrays and records serve every packet.
    const msg = this.parser.parse(payload);
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

  /** Whether slot `i` holds exactly this query identity (every field, the name included). */
  private matches(i: number, tcp: number, client: string, cport: number, server: string, sport: number, msg: DnsMessage): boolean {
    const q = msg.questions[0]!, t = this.q;
    return t.id[i] === msg.id && t.clientPort[i] === cport && t.serverPort[i] === sport && t.qtype[i] === q.qtype &&
      t.qclass[i] === q.qclass && t.tcp[i] === tcp && t.client[i] === client && t.server[i] === server &&
      nameEquals(msg.buf, q.nameOffset, t.qname[i]!, true);
  }

  /** The slot on `list` holding this query identity, or NONE. */
  private find(list: SlotList, hash: number, transport: DnsTransport, client: string, cport: number, server: string, sport: number, msg: DnsMessage): number {
    const tcp = transport === "tcp" ? 1 : 0;
    for (let i = list.bucket(hash); i !== NONE; i = this.q.bucketNext[i]!) {
      if (this.q.hash[i] === hash && this.matches(i, tcp, client, cport, server, sport, msg)) return i;
    }
    return NONE;
  }

  private onQuery(meta: DnsMessageMeta, msg: DnsMessage): "query" | "ignored" | RejectReason {
    this.stats.queries++;
    if (meta.fromPod === false || (this.pods && !this.pods.has(meta.src))) return this.reject("query-not-from-pod");
    if (this.trusted && !this.trusted.has(meta.dst)) return this.reject("query-to-untrusted-resolver");
    const q = msg.questions[0]!;
    const hash = this.identityHash(meta.transport, meta.src, meta.srcPort, meta.dst, meta.dstPort, msg);
    // The same query seen again (second interface, or a retransmission): keep the first.
    if (this.find(this.pending, hash, meta.transport, meta.src, meta.srcPort, meta.dst, meta.dstPort, msg) !== NONE ||
        this.find(this.answered, hash, meta.transport, meta.src, meta.srcPort, meta.dst, meta.dstPort, msg) !== NONE) {
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
      this.release(existing.oldest);
      this.stats.evictedQueries++;
    }
    if (this.pending.size >= this.opts.maxPendingTotal) {
      // The pod holding the most pending queries pays, never a quieter pod: one pod's flood cannot
      // push out another pod's queries.
      this.release(this.largestClient().oldest);
      this.stats.evictedQueries++;
    }
    const t = this.q;
    const p = t.alloc();
    t.hash[p] = hash; t.client[p] = meta.src; t.clientPort[p] = meta.srcPort; t.server[p] = meta.dst;
    t.serverPort[p] = meta.dstPort; t.tcp[p] = meta.transport === "tcp" ? 1 : 0; t.id[p] = msg.id; t.qname[p] = qname;
    t.qtype[p] = q.qtype; t.qclass[p] = q.qclass; t.time[p] = meta.time; t.payloadHash[p] = 0; t.payloadLength[p] = 0;
    this.pending.add(p);
    // Fetched again: the evictions above may have removed this client's (now empty) list.
    let perClient = this.pendingByClient.get(meta.src);
    if (!perClient) {
      perClient = { count: 0, oldest: NONE, newest: NONE };
      this.pendingByClient.set(meta.src, perClient);
    }
    t.clientOlder[p] = perClient.newest;
    if (perClient.newest !== NONE) t.clientNewer[perClient.newest] = p;
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
    const p = this.find(this.pending, hash, meta.transport, meta.dst, meta.dstPort, meta.src, meta.srcPort, msg);
    if (p === NONE) return this.reject(this.diagnose(meta, msg, hash, payload));

    this.unlinkPending(p);
    this.remember(p, payload, meta.time);
    const obs = this.buildObservation(meta, msg, p);
    this.stats.accepted++;
    if (obs.negative) this.stats.negative++;
    this.onObservation(obs);
    return obs;
  }

  /** Explains why a response matched no pending query. */
  private diagnose(meta: DnsMessageMeta, msg: DnsMessage, hash: number, payload: Uint8Array): RejectReason {
    const t = this.q;
    const seen = this.find(this.answered, hash, meta.transport, meta.dst, meta.dstPort, meta.src, meta.srcPort, msg);
    if (seen !== NONE && meta.time - t.time[seen]! <= this.opts.duplicateWindowMs) {
      return t.payloadHash[seen] === fnv1a(payload) && t.payloadLength[seen] === payload.length ? "duplicate" : "already-answered";
    }
    const perClient = this.pendingByClient.get(meta.dst);
    if (!perClient) return "unsolicited";
    let sameFlow = false, sameId = false;
    const tcp = meta.transport === "tcp" ? 1 : 0;
    // The reason is a diagnosis, not a decision: look at the client's newest queries only, so an
    // answer whose query was never seen (lost in capture, or a flood of unsolicited answers)
    // costs a bounded walk, not one over the pod's whole pending list.
    let budget = DIAGNOSE_WALK;
    for (let p = perClient.newest; p !== NONE && budget > 0; p = t.clientOlder[p]!, budget--) {
      if (t.server[p] !== meta.src || t.tcp[p] !== tcp) continue;
      const flow = t.clientPort[p] === meta.dstPort && t.serverPort[p] === meta.srcPort;
      if (flow && t.id[p] === msg.id) return "mismatched-question";
      if (flow) sameFlow = true;
      else if (t.id[p] === msg.id) sameId = true;
    }
    if (sameFlow) return "mismatched-id";
    if (sameId) return "mismatched-port";
    return "unsolicited";
  }

  /**
   * Moves the answered query `p` (already unlinked from pending) to the answered list. No entry of
   * the same identity can be there: a query is made pending only when neither list holds it.
   */
  private remember(p: number, payload: Uint8Array, time: number): void {
    if (this.answered.size >= this.opts.maxAnsweredRemembered) this.forgetAnswered(this.answered.oldest);
    const t = this.q;
    t.time[p] = time;
    t.payloadHash[p] = fnv1a(payload);
    t.payloadLength[p] = payload.length;
    this.answered.add(p);
  }

  private forgetAnswered(a: number): void {
    this.answered.remove(a);
    this.q.free(a);
  }

  /** Forgets a pending query (expired or evicted): its slot is freed. */
  private release(p: number): void {
    this.unlinkPending(p);
    this.q.free(p);
  }

  /** Takes `p` off the pending list and its client's list; the slot stays allocated. */
  private unlinkPending(p: number): void {
    const t = this.q;
    this.pending.remove(p);
    const client = t.client[p]!;
    const perClient = this.pendingByClient.get(client);
    if (perClient) {
      const older = t.clientOlder[p]!, newer = t.clientNewer[p]!;
      if (older !== NONE) t.clientNewer[older] = newer;
      else perClient.oldest = newer;
      if (newer !== NONE) t.clientOlder[newer] = older;
      else perClient.newest = older;
      t.clientOlder[p] = t.clientNewer[p] = NONE;
      // An emptied list stays (a pod usually asks again at once); expire() prunes the empty ones.
      perClient.count--;
    }
    this.stats.pendingQueries = this.pending.size;
  }

  /** Forgets queries past their timeout and answered entries past the duplicate window. */
  expire(now = this.opts.now()): void {
    this.lastExpire = now;
    if (this.pendingByClient.size > 2 * this.pending.size + 1024) {
      for (const [client, queries] of this.pendingByClient) if (queries.count === 0) this.pendingByClient.delete(client);
    }
    const t = this.q;
    for (let p = this.pending.oldest; p !== NONE && now - t.time[p]! > this.opts.queryTimeoutMs; p = this.pending.oldest) {
      this.release(p);
      this.stats.expiredQueries++;
    }
    for (let a = this.answered.oldest; a !== NONE && now - t.time[a]! > this.opts.duplicateWindowMs; a = this.answered.oldest) {
      this.forgetAnswered(a);
    }
  }

  private effectiveTtl(wire: number): number {
    const ttl = wire > 0x7fffffff ? 0 : wire; // RFC 2181 §8
    return Math.min(this.opts.maxTtlSec, Math.max(this.opts.minTtlSec, ttl));
  }

  private buildObservation(meta: DnsMessageMeta, msg: DnsMessage, p: number): DnsObservation {
    const t = this.q;
    const qname = t.qname[p]!, qtype = t.qtype[p]!;
    // Owner names are compared on the wire against the (few) names of the chain, never decoded:
    // an owner on the chain renders to exactly that chain name.
    const { buf, answers: records } = msg;
    // Known names by where their labels start (compression pointers followed): servers compress
    // owners to the question or to a CNAME's target, so most owners are recognised by offset alone.
    const known = this.knownNames;
    known.length = 0;
    // Labels start of the name being followed: an owner starting there is that name, no compare needed.
    let currentStart = labelsStart(buf, msg.questions[0]!.nameOffset);
    known.push(currentStart, qname);
    const chain: string[] = [];
    const usedCnames = this.usedCnames; // indices of the CNAME records followed
    const usedTargets = this.usedTargets; // their decoded targets
    usedCnames.length = 0;
    usedTargets.length = 0;
    let current = qname;
    while (chain.length < this.opts.maxCnameChain) {
      let i = -1;
      for (let j = 0; j < records.length; j++) {
        const rr = records[j]!;
        if (rr.type === RRType.CNAME && !usedCnames.includes(j) &&
            (labelsStart(buf, rr.nameOffset) === currentStart || nameEquals(buf, rr.nameOffset, current, true))) { i = j; break; }
      }
      if (i < 0) break;
      // The owner renders to `current` (compared above): later owners sharing its labels are known by offset.
      const ownerStart = labelsStart(buf, records[i]!.nameOffset);
      if (ownerStart !== currentStart) known.push(ownerStart, current);
      const target = readName(buf, records[i]!.rdataOffset, true);
      usedCnames.push(i);
      usedTargets.push(target);
      if (target === null || target === qname || chain.includes(target)) break; // CNAME loop: stop at the first repeat
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
      if (addressesOnly && rr.type !== RRType.A && rr.type !== RRType.AAAA && !(rr.type === qtype || qtype === 255)) continue;
      const owner = this.chainNameOf(buf, rr.nameOffset, qname, chain, known);
      if (owner === null) continue;
      if (owner === current && rr.type === qtype && (rr.type === RRType.HTTPS || rr.type === RRType.SVCB)) {
        echNames ??= [];
        const had = echNames.length;
        if (!echPublicNames(buf, rr.rdataOffset, rr.rdataLength, echNames)) this.stats.badSvcbRecords++;
        else if (echNames.length > had || echTtl < 0) echTtl = echTtl < 0 ? this.effectiveTtl(rr.ttl) : Math.min(echTtl, this.effectiveTtl(rr.ttl));
      }
      if (addressesOnly) {
        // The chain itself is cnameChain; only the final name's addresses are kept.
        if (rr.type === RRType.CNAME) continue;
        if (owner === current && (rr.type === qtype || qtype === 255)) finalOfType++;
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
      if (owner === current && (rr.type === qtype || qtype === 255)) finalOfType++;
      answers.push({ name: owner, type: typeName(rr.type), typeCode: rr.type, ttl: this.effectiveTtl(rr.ttl), data });
    }
    if (qtype === RRType.CNAME && chain.length > 0) finalOfType++;
    const negative = msg.rcode === Rcode.NXDomain || (msg.rcode === Rcode.NoError && finalOfType === 0);
    if (meta.iface === undefined && meta.frame === undefined) {
      return {
        podIp: t.client[p]!, podPort: t.clientPort[p]!, qname: qname, qtype: qtype, rcode: msg.rcode,
        cnameChain: chain, answers, negative, truncated: msg.truncated,
        ...(echNames !== undefined && echNames.length > 0 ? { echPublicNames: echNames, echTtlSec: echTtl } : {}),
        resolver: t.server[p]!, resolverPort: t.serverPort[p]!, transport: meta.transport, time: meta.time, id: msg.id,
      };
    }
    return {
      podIp: t.client[p]!, podPort: t.clientPort[p]!, qname: qname, qtype: qtype, rcode: msg.rcode,
      cnameChain: chain, answers, negative, truncated: msg.truncated,
      ...(echNames !== undefined && echNames.length > 0 ? { echPublicNames: echNames, echTtlSec: echTtl } : {}),
      resolver: t.server[p]!, resolverPort: t.serverPort[p]!, transport: meta.transport, time: meta.time,
      ...(meta.iface !== undefined ? { iface: meta.iface } : {}),
      ...(meta.frame !== undefined ? { frame: meta.frame } : {}),
      id: msg.id,
    };
  }

  /** The question name or chain name the (validated) name at `off` renders to, or null. */
  private chainNameOf(buf: Uint8Array, off: number, qname: string, chain: readonly string[], known: (number | string)[]): string | null {
    const start = labelsStart(buf, off);
    for (let k = 0; k < known.length; k += 2) if (known[k] === start) return known[k + 1] as string;
    let name: string | null = null;
    if (nameEquals(buf, off, qname, true)) name = qname;
    for (let k = 0; name === null && k < chain.length; k++) if (nameEquals(buf, off, chain[k]!, true)) name = chain[k]!;
    // Remembered by offset: another record whose owner points at these labels needs no compare.
    if (name !== null) known.push(start, name);
    return name;
  }
}
