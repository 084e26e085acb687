// The DNS observer: turns DNS messages seen on the node into evidence, applying the rules of the
// security model (design.md): an answer counts only if it travels to a pod from a trusted resolver,
// answers a query that pod really sent (transaction id, both addresses and ports, question), and is
// the first answer to that query. Everything else is counted by reason and dropped. Time comes from
// the injected clock (live capture) or the packets (offline), so tests control it.
//
// Input is one DNS message at a time (a UDP payload, or one length-framed message of a reassembled
// TCP stream — see pipeline.ts). Output is `DnsObservation`s through `onObservation`.
import { CidrSet } from "./cidr.js";
import { parseDnsMessage, type DnsMessage, type DnsRecord } from "./message.js";
import { readName, renderRdata } from "./render.js";
import { RRType, Rcode, typeName } from "./wire.js";

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
  | "query-to-untrusted-resolver"; // a query to a server we would not believe anyway

export const REJECT_REASONS: readonly RejectReason[] = [
  "malformed", "unsupported", "sent-by-pod", "untrusted-resolver", "unsolicited", "mismatched-id",
  "mismatched-port", "mismatched-question", "duplicate", "already-answered", "query-not-from-pod",
  "query-to-untrusted-resolver",
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
const EXPIRE_EVERY_MS = 100;

interface PendingQuery {
  key: string;
  client: string;
  clientPort: number;
  server: string;
  serverPort: number;
  transport: DnsTransport;
  id: number;
  qname: string;
  qtype: number;
  qclass: number;
  time: number;
}

interface AnsweredQuery {
  key: string;
  time: number;
  hash: number;
  length: number;
}

/** FNV-1a over the message bytes: recognises identical copies cheaply. */
function fnv1a(buf: Uint8Array): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < buf.length; i++) h = Math.imul(h ^ buf[i]!, 0x01000193);
  return h >>> 0;
}

export class DnsObserver {
  readonly stats: DnsObserverStats;
  private readonly opts: Required<Omit<DnsObserverOptions, "podCidrs" | "onObservation" | "onReject" | "trustedResolvers">>;
  private readonly trusted: CidrSet | null;
  private readonly pods: CidrSet | null;
  private readonly onObservation: (obs: DnsObservation) => void;
  private readonly onReject: ((reason: RejectReason, meta: DnsMessageMeta) => void) | undefined;
  /** The message being processed, for onReject. */
  private currentMeta: DnsMessageMeta | undefined;
  /** All pending queries, oldest first (Map insertion order), for expiry and the global cap. */
  private readonly pending = new Map<string, PendingQuery>();
  /** Pending queries per client address, oldest first, for the per-pod cap and mismatch diagnosis. */
  private readonly pendingByClient = new Map<string, Map<string, PendingQuery>>();
  /** Recently answered queries, oldest first. */
  private readonly answered = new Map<string, AnsweredQuery>();
  private lastExpire = -Infinity;

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
    this.trusted = options.trustedResolvers ? new CidrSet(options.trustedResolvers, "trusted resolver") : null;
    this.pods = options.podCidrs && options.podCidrs.length > 0 ? new CidrSet(options.podCidrs, "pod CIDR") : null;
    this.onObservation = options.onObservation ?? (() => {});
    this.onReject = options.onReject;
    const rejected = {} as Record<RejectReason, number>;
    for (const r of REJECT_REASONS) rejected[r] = 0;
    this.stats = {
      messages: 0, queries: 0, responses: 0, accepted: 0, negative: 0, rejected, malformedByError: {},
      duplicateQueries: 0, expiredQueries: 0, evictedQueries: 0, pendingQueries: 0,
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
    const parsed = parseDnsMessage(payload);
    if (!parsed.ok) {
      this.stats.malformedByError[parsed.error] = (this.stats.malformedByError[parsed.error] ?? 0) + 1;
      return this.reject("malformed");
    }
    const msg = parsed.message;
    if (msg.opcode !== 0 || msg.questions.length !== 1) return this.reject("unsupported");
    const q = msg.questions[0]!;
    const qname = readName(msg.buf, q.nameOffset, true);
    if (qname === null) return this.reject("malformed"); // unreachable: parse validated it
    return msg.isResponse ? this.onResponse(meta, msg, payload, qname) : this.onQuery(meta, msg, qname);
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

  private key(transport: DnsTransport, client: string, cport: number, server: string, sport: number, id: number, qtype: number, qclass: number, qname: string): string {
    return `${transport}|${client}|${cport}|${server}|${sport}|${id}|${qtype}|${qclass}|${qname}`;
  }

  private onQuery(meta: DnsMessageMeta, msg: DnsMessage, qname: string): "query" | "ignored" | RejectReason {
    this.stats.queries++;
    if (this.pods && !this.pods.has(meta.src)) return this.reject("query-not-from-pod");
    if (this.trusted && !this.trusted.has(meta.dst)) return this.reject("query-to-untrusted-resolver");
    const q = msg.questions[0]!;
    const key = this.key(meta.transport, meta.src, meta.srcPort, meta.dst, meta.dstPort, msg.id, q.qtype, q.qclass, qname);
    // The same query seen again (second interface, or a retransmission): keep the first.
    if (this.pending.has(key) || this.answered.has(key)) {
      this.stats.duplicateQueries++;
      return "ignored";
    }
    const existing = this.pendingByClient.get(meta.src);
    if (existing && existing.size >= this.opts.maxPendingPerPod) {
      this.drop(existing.values().next().value as PendingQuery);
      this.stats.evictedQueries++;
    }
    if (this.pending.size >= this.opts.maxPendingTotal) {
      this.drop(this.pending.values().next().value as PendingQuery);
      this.stats.evictedQueries++;
    }
    const p: PendingQuery = {
      key, client: meta.src, clientPort: meta.srcPort, server: meta.dst, serverPort: meta.dstPort,
      transport: meta.transport, id: msg.id, qname, qtype: q.qtype, qclass: q.qclass, time: meta.time,
    };
    this.pending.set(key, p);
    // Fetched again: the evictions above may have removed this client's (now empty) map.
    let perClient = this.pendingByClient.get(meta.src);
    if (!perClient) {
      perClient = new Map();
      this.pendingByClient.set(meta.src, perClient);
    }
    perClient.set(key, p);
    this.stats.pendingQueries = this.pending.size;
    return "query";
  }

  private onResponse(meta: DnsMessageMeta, msg: DnsMessage, payload: Uint8Array, qname: string): DnsObservation | RejectReason {
    this.stats.responses++;
    const isTrusted = this.trusted ? this.trusted.has(meta.src) : true;
    if (meta.fromPod) return this.reject("sent-by-pod");
    if (this.pods && this.pods.has(meta.src) && !(this.trusted && isTrusted)) return this.reject("sent-by-pod");
    if (!isTrusted) return this.reject("untrusted-resolver");

    const q = msg.questions[0]!;
    const key = this.key(meta.transport, meta.dst, meta.dstPort, meta.src, meta.srcPort, msg.id, q.qtype, q.qclass, qname);
    const p = this.pending.get(key);
    if (!p) return this.reject(this.diagnose(meta, msg, key, payload));

    this.drop(p);
    this.remember(key, payload, meta.time);
    const obs = this.buildObservation(meta, msg, p);
    this.stats.accepted++;
    if (obs.negative) this.stats.negative++;
    this.onObservation(obs);
    return obs;
  }

  /** Explains why a response matched no pending query. */
  private diagnose(meta: DnsMessageMeta, msg: DnsMessage, key: string, payload: Uint8Array): RejectReason {
    const seen = this.answered.get(key);
    if (seen && meta.time - seen.time <= this.opts.duplicateWindowMs) {
      return seen.hash === fnv1a(payload) && seen.length === payload.length ? "duplicate" : "already-answered";
    }
    const perClient = this.pendingByClient.get(meta.dst);
    if (!perClient) return "unsolicited";
    let sameFlow = false, sameId = false;
    for (const p of perClient.values()) {
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

  private remember(key: string, payload: Uint8Array, time: number): void {
    this.answered.delete(key);
    if (this.answered.size >= this.opts.maxAnsweredRemembered) {
      this.answered.delete(this.answered.keys().next().value as string);
    }
    this.answered.set(key, { key, time, hash: fnv1a(payload), length: payload.length });
  }

  private drop(p: PendingQuery): void {
    this.pending.delete(p.key);
    const perClient = this.pendingByClient.get(p.client);
    if (perClient) {
      perClient.delete(p.key);
      if (perClient.size === 0) this.pendingByClient.delete(p.client);
    }
    this.stats.pendingQueries = this.pending.size;
  }

  /** Forgets queries past their timeout and answered entries past the duplicate window. */
  expire(now = this.opts.now()): void {
    this.lastExpire = now;
    for (const p of this.pending.values()) {
      if (now - p.time <= this.opts.queryTimeoutMs) break;
      this.drop(p);
      this.stats.expiredQueries++;
    }
    for (const a of this.answered.values()) {
      if (now - a.time <= this.opts.duplicateWindowMs) break;
      this.answered.delete(a.key);
    }
  }

  private effectiveTtl(wire: number): number {
    const ttl = wire > 0x7fffffff ? 0 : wire; // RFC 2181 §8
    return Math.min(this.opts.maxTtlSec, Math.max(this.opts.minTtlSec, ttl));
  }

  private buildObservation(meta: DnsMessageMeta, msg: DnsMessage, p: PendingQuery): DnsObservation {
    // Owner names of the answer section, decoded once.
    const owners: (string | null)[] = msg.answers.map((rr) => readName(msg.buf, rr.nameOffset, true));
    const chain: string[] = [];
    const onChain = new Set<string>([p.qname]);
    const usedCnames = new Set<DnsRecord>();
    let current = p.qname;
    while (chain.length < this.opts.maxCnameChain) {
      const i = msg.answers.findIndex((rr, j) => rr.type === RRType.CNAME && owners[j] === current && !usedCnames.has(rr));
      if (i < 0) break;
      const rr = msg.answers[i]!;
      usedCnames.add(rr);
      const target = readName(msg.buf, rr.rdataOffset, true);
      if (target === null || onChain.has(target)) break; // CNAME loop: stop at the first repeat
      chain.push(target);
      onChain.add(target);
      current = target;
    }
    const answers: ObservedRecord[] = [];
    let finalOfType = 0;
    msg.answers.forEach((rr, j) => {
      const owner = owners[j];
      if (owner === null || owner === undefined || !onChain.has(owner)) return;
      if (rr.type === RRType.CNAME && !usedCnames.has(rr)) return; // a second, conflicting CNAME
      if (owner === current && (rr.type === p.qtype || p.qtype === 255)) finalOfType++;
      answers.push({
        name: owner, type: typeName(rr.type), typeCode: rr.type, ttl: this.effectiveTtl(rr.ttl),
        data: renderRdata(msg, rr, true),
      });
    });
    if (p.qtype === RRType.CNAME && chain.length > 0) finalOfType++;
    return {
      podIp: p.client, podPort: p.clientPort, qname: p.qname, qtype: p.qtype, rcode: msg.rcode,
      cnameChain: chain, answers,
      negative: msg.rcode === Rcode.NXDomain || (msg.rcode === Rcode.NoError && finalOfType === 0),
      truncated: msg.truncated,
      resolver: p.server, resolverPort: p.serverPort, transport: p.transport, time: meta.time,
      ...(meta.iface !== undefined ? { iface: meta.iface } : {}),
      ...(meta.frame !== undefined ? { frame: meta.frame } : {}),
      id: msg.id,
    };
  }
}
