// The resolution store: for every pod (keyed by the pod's IP), which names it resolved to which
// IPs, with the CNAME chain and the expiry (observed time + clamped TTL). Grace is not part of
// the expiry: entries are *kept* (visible to Watch/Lookup) until expiry + grace, and the names
// travel with their TTL expiry, so the filter's engine alone applies each policy's own grace.
//
// Layout (compact: ~70–105 bytes per entry at 1,000,000 entries, see measureStoreMemory):
//   slot   = one (pod, ip) pair: struct-of-arrays columns; IPv4 slots are found through an
//            open-addressing table of slot numbers (keys compared in the columns: 4 bytes per
//            table cell), IPv6 slots through a Map keyed by text (IPv6 is the rarer case);
//   record = one name under a slot: name id, CNAME-chain id (both interned), expiry;
//            a slot's records form a singly linked list (few names per IP).
// Every slot sits on two LRU lists (its pod's and the global one) ordered by last update, so
// the per-pod and total bounds evict the least recently refreshed (pod, ip) in O(1).
// Bounds: names per IP (evict the soonest-expiring name), IPs per name per observation
// (extra answers dropped), entries per pod, entries in total; every eviction is counted.
// Expiry: sweep() walks the slots' earliest-expiry column and drops what is past; callers run it
// on a timer. Changes are reported per (pod, ip) to subscribers, which read the current state
// back (level-based: a subscriber never needs the event's contents).
import { InternTable } from "./intern.js";
import { EchNameTable, type EchNameLimits } from "./ech-names.js";
import { bytesToIp, canonicalIpBytes } from "../proto/ip.js";
import type { Resolution } from "../proto/messages.js";

export interface StoreLimits {
  /** TTLs below this are raised to it (seconds). */
  minTtlSeconds: number;
  /** TTLs above this are lowered to it (seconds). */
  maxTtlSeconds: number;
  /** How long past its (clamped-TTL) expiry an entry is kept, so filters can apply a policy's
   *  resolutionGraceSeconds (seconds). A pod whose policies ask for more gets theirs (see graceFor).
   *  Never added to the expiry sent to filters. */
  graceSeconds: number;
  /** Names kept per (pod, ip); more evict the soonest-expiring name. */
  maxNamesPerIp: number;
  /** A/AAAA answers taken from one observation; the rest are dropped. */
  maxIpsPerName: number;
  /** Entries (pod, ip, name) per pod; more evict the pod's least recently updated IP. */
  maxEntriesPerPod: number;
  /** Entries in total; more evict the least recently updated IP of any pod. */
  maxEntriesTotal: number;
}

export const DEFAULT_STORE_LIMITS: StoreLimits = {
  minTtlSeconds: 5,
  maxTtlSeconds: 86_400,
  graceSeconds: 30,
  maxNamesPerIp: 32,
  maxIpsPerName: 64,
  maxEntriesPerPod: 20_000,
  maxEntriesTotal: 2_000_000,
};

/** One DNS answer as the store takes it (already matched to the pod's query by the agent). */
export interface StoreObservation {
  /** The question name; normalized here (lowercase, no trailing dot). */
  queryName: string;
  cnameChain: readonly string[];
  answers: readonly { ip: Uint8Array; ttlSeconds: number }[];
  /** When the agent captured it (Unix ms). Clamped to now if in the future. */
  observedUnixMs: number;
}

/** An HTTPS/SVCB answer's ECH public names for the question name (Observation.ech_public_names). */
export interface StoreEchObservation {
  queryName: string;
  publicNames: readonly string[];
  ttlSeconds: number;
  observedUnixMs: number;
}

export type RecordOutcome = "stored" | "invalid-pod-ip" | "invalid-name" | "no-answers" | "stale";

export interface StoreCounters {
  /** Entries created or refreshed. */
  upserts: number;
  expired: number;
  evictedNamesPerIp: number;
  evictedIpsPerName: number;
  evictedPerPod: number;
  evictedTotal: number;
  rejected: Record<Exclude<RecordOutcome, "stored">, number>;
  invalidAnswers: number;
}

export type StoreListener = (podKey: string, ip: Uint8Array) => void;

const NONE = -1;
/** Public names kept per queried name (the agent's bound: dns/svcb.ts MAX_ECH_PUBLIC_NAMES). */
const MAX_ECH_PUBLIC_NAMES = 4;
const MAX_NAME_LENGTH = 253;

/** Lowercase, drop the trailing dot; undefined when it cannot be a DNS name. */
export function normalizeName(name: string): string | undefined {
  let n = name.toLowerCase();
  if (n.endsWith(".")) n = n.slice(0, -1);
  if (n.length === 0 || n.length > MAX_NAME_LENGTH) return undefined;
  // Printable ASCII without spaces; labels 1..63 octets. Anything else is not something a policy can name.
  if (!/^[\x21-\x7e]+$/.test(n)) return undefined;
  // Names stay label-exact: a backslash is an escaped presentation label (`\.` is a '.' inside one
  // wire label, `\046` too), which policy matching must never split at that dot (issue #14).
  if (n.includes("\\")) return undefined;
  for (const label of n.split(".")) if (label.length === 0 || label.length > 63) return undefined;
  return n;
}

export class ResolutionStore {
  private readonly now: () => number;
  readonly limits: StoreLimits;

  private readonly names = new InternTable();
  private readonly chains = new InternTable();

  private readonly podIds = new Map<string, number>();
  private podKeys: (string | undefined)[] = [];
  private podHead: number[] = [];
  private podTail: number[] = [];
  private podEntries: number[] = [];
  private readonly freePods: number[] = [];

  private slotCap = 0;
  private sPod = new Uint32Array(0);
  private sFamily = new Uint8Array(0); // 0 = free, 4, 6
  private sIp = new Uint32Array(0); // IPv4 address as a u32 (IPv6 addresses live in v6Addr)
  private sFirst = new Int32Array(0);
  private sCount = new Uint8Array(0);
  private sExpiry = new Float64Array(0); // earliest keep-until (expiry + grace) among the slot's names (sweep key); 0 when free
  private sGraceMs = new Uint32Array(0); // retention past expiry for the slot's names (the pod's grace when last updated)
  private sPrev = new Int32Array(0);
  private sNext = new Int32Array(0);
  private sGPrev = new Int32Array(0);
  private sGNext = new Int32Array(0);
  private slotsUsed = 0;
  private freeSlot = NONE;
  private gHead = NONE;
  private gTail = NONE;
  /** Linear-probing table of IPv4 slot numbers (NONE = empty), hashed on (pod, address). */
  private v4Table = new Int32Array(1024).fill(NONE);
  private v4Count = 0;
  private readonly v6Index = new Map<string, number>();
  private readonly v6Addr = new Map<number, Uint8Array>();

  private recCap = 0;
  private rName = new Uint32Array(0);
  private rChain = new Uint32Array(0);
  private rExpiry = new Float64Array(0);
  private rNext = new Int32Array(0);
  private recsUsed = 0;
  private freeRec = NONE;

  private entries = 0;
  /** ECH public names per (pod, queried name), attached to the ResolvedNames of that name. */
  readonly ech: EchNameTable;
  private readonly listeners = new Set<StoreListener>();
  readonly counters: StoreCounters = {
    upserts: 0,
    expired: 0,
    evictedNamesPerIp: 0,
    evictedIpsPerName: 0,
    evictedPerPod: 0,
    evictedTotal: 0,
    rejected: { "invalid-pod-ip": 0, "invalid-name": 0, "no-answers": 0, stale: 0 },
    invalidAnswers: 0,
  };

  /** Grace for a pod (seconds), when it differs from limits.graceSeconds (e.g. its policies ask for more). */
  private readonly graceFor?: (podKey: string) => number | undefined;

  constructor(
    options: {
      now?: () => number; limits?: Partial<StoreLimits>; initialCapacity?: number; graceFor?: (podKey: string) => number | undefined;
      echLimits?: EchNameLimits;
    } = {},
  ) {
    this.now = options.now ?? Date.now;
    this.ech = new EchNameTable(options.echLimits);
    this.graceFor = options.graceFor;
    this.limits = { ...DEFAULT_STORE_LIMITS, ...options.limits };
    const l = this.limits;
    if (!(l.minTtlSeconds >= 0 && l.maxTtlSeconds >= l.minTtlSeconds && l.graceSeconds >= 0)) {
      throw new RangeError(`store limits: need 0 <= minTtlSeconds <= maxTtlSeconds and graceSeconds >= 0 (got ${JSON.stringify(l)})`);
    }
    for (const k of ["maxNamesPerIp", "maxIpsPerName", "maxEntriesPerPod", "maxEntriesTotal"] as const) {
      if (!(Number.isInteger(l[k]) && l[k] >= 1)) throw new RangeError(`store limits: ${k} must be a positive integer (got ${l[k]})`);
    }
    if (l.maxNamesPerIp > 255) throw new RangeError("store limits: maxNamesPerIp must be at most 255");
    this.growSlots(options.initialCapacity ?? 1024);
    this.growRecords(options.initialCapacity ?? 1024);
  }

  /** Calls `listener(podKey, ip)` after every change to that pod's entry for `ip`. */
  subscribe(listener: StoreListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** The key the store uses for a pod IP (canonical text), or undefined if not 4/16 bytes. */
  static podKey(podIp: Uint8Array): string | undefined {
    return bytesToIp(podIp);
  }

  /** Stores one observation for the pod at `podIp`. */
  record(podIp: Uint8Array, obs: StoreObservation): RecordOutcome {
    const podKey = bytesToIp(podIp);
    if (podKey === undefined) return this.reject("invalid-pod-ip");
    const name = normalizeName(obs.queryName);
    if (name === undefined) return this.reject("invalid-name");
    const chain: string[] = [];
    for (const c of obs.cnameChain) {
      const n = normalizeName(c);
      if (n === undefined) return this.reject("invalid-name");
      chain.push(n);
    }
    if (obs.answers.length === 0) return this.reject("no-answers");
    const now = this.now();
    const observed = Math.min(Number.isFinite(obs.observedUnixMs) && obs.observedUnixMs > 0 ? obs.observedUnixMs : now, now);
    const l = this.limits;

    const graceMs = Math.min(Math.max(l.graceSeconds, this.graceFor?.(podKey) ?? 0) * 1000, 0xffffffff);
    const podId = this.podIdFor(podKey);
    const changed: Uint8Array[] = [];
    let taken = 0;
    let stale = 0;
    for (const answer of obs.answers) {
      if ((answer.ip.length !== 4 && answer.ip.length !== 16) || !Number.isFinite(answer.ttlSeconds) || answer.ttlSeconds < 0) {
        this.counters.invalidAnswers++;
        continue;
      }
      if (taken === l.maxIpsPerName) {
        this.counters.evictedIpsPerName++;
        continue;
      }
      const ttl = Math.min(Math.max(answer.ttlSeconds, l.minTtlSeconds), l.maxTtlSeconds);
      const expiry = observed + ttl * 1000;
      if (expiry + graceMs <= now) {
        stale++;
        continue;
      }
      taken++;
      // ::ffff:a.b.c.d from an AAAA answer is the IPv4 address: one entry, found by either form.
      const ip = canonicalIpBytes(answer.ip);
      // A replayed observation the store already holds changes nothing: no delta for watchers.
      if (this.upsert(podId, ip, name, chain, expiry, graceMs)) changed.push(ip);
    }
    if (this.podEntries[podId] === 0 && this.podHead[podId] === NONE) this.releasePod(podId);
    if (taken === 0) return this.reject(stale > 0 ? "stale" : "no-answers");
    this.enforceBounds(podId);
    for (const ip of changed) this.emit(podKey, ip);
    return "stored";
  }

  /**
   * Stores the ECH public names an HTTPS/SVCB answer named for the pod's question name, and
   * reports every IP the pod resolved from that name as changed (their ResolvedNames carry them).
   */
  recordEch(podIp: Uint8Array, obs: StoreEchObservation): RecordOutcome {
    const podKey = bytesToIp(podIp);
    if (podKey === undefined) return this.reject("invalid-pod-ip");
    const name = normalizeName(obs.queryName);
    if (name === undefined) return this.reject("invalid-name");
    const publicNames: string[] = [];
    for (const p of obs.publicNames.slice(0, MAX_ECH_PUBLIC_NAMES)) {
      const n = normalizeName(p);
      if (n === undefined) return this.reject("invalid-name");
      if (!publicNames.includes(n)) publicNames.push(n);
    }
    if (publicNames.length === 0 || !Number.isFinite(obs.ttlSeconds) || obs.ttlSeconds < 0) return this.reject("no-answers");
    const now = this.now();
    const observed = Math.min(Number.isFinite(obs.observedUnixMs) && obs.observedUnixMs > 0 ? obs.observedUnixMs : now, now);
    const l = this.limits;
    const graceMs = Math.max(l.graceSeconds, this.graceFor?.(podKey) ?? 0) * 1000;
    const keepUntil = observed + Math.min(Math.max(obs.ttlSeconds, l.minTtlSeconds), l.maxTtlSeconds) * 1000 + graceMs;
    if (keepUntil <= now) return this.reject("stale");
    if (this.ech.set(podKey, name, publicNames, keepUntil)) this.emitName(podKey, name);
    return "stored";
  }

  /** Reports every IP under which the pod holds `name` as changed (O(the pod's entries)). */
  private emitName(podKey: string, name: string): void {
    const podId = this.podIds.get(podKey);
    if (podId === undefined) return;
    const ips: Uint8Array[] = [];
    for (let s = this.podHead[podId]; s !== NONE; s = this.sNext[s]) {
      for (let r = this.sFirst[s]; r !== NONE; r = this.rNext[r]) {
        if (this.names.get(this.rName[r]) === name) {
          ips.push(this.slotIp(s));
          break;
        }
      }
    }
    for (const ip of ips) this.emit(podKey, ip);
  }

  /** The pod's current entry for `ip` (names within expiry + grace; each with its TTL expiry), or undefined. */
  get(podKey: string, ip: Uint8Array): Resolution | undefined {
    const podId = this.podIds.get(podKey);
    if (podId === undefined) return undefined;
    const slot = this.findSlot(podId, canonicalIpBytes(ip));
    if (slot === NONE) return undefined;
    return this.view(slot, this.now());
  }

  /** Every current entry of the pod. */
  entriesOf(podKey: string): Resolution[] {
    const podId = this.podIds.get(podKey);
    if (podId === undefined) return [];
    const now = this.now();
    const out: Resolution[] = [];
    for (let s = this.podHead[podId]; s !== NONE; s = this.sNext[s]) {
      const v = this.view(s, now);
      if (v) out.push(v);
    }
    return out;
  }

  /** Forgets everything the pod at `podKey` resolved (pod deleted, IP reassigned). */
  dropPod(podKey: string): number {
    const podId = this.podIds.get(podKey);
    if (podId === undefined) return 0;
    const ips: Uint8Array[] = [];
    let removed = 0;
    while (this.podHead[podId] !== NONE) {
      const s = this.podHead[podId];
      ips.push(this.slotIp(s));
      removed += this.sCount[s];
      this.freeSlotAt(s);
    }
    this.releasePod(podId);
    this.ech.dropPod(podKey);
    for (const ip of ips) this.emit(podKey, ip);
    return removed;
  }

  /** Drops every name whose expiry + grace is at or before now; returns how many. */
  sweep(): number {
    const now = this.now();
    const touched: [string, Uint8Array][] = [];
    let expired = 0;
    for (let s = 0; s < this.slotCap; s++) {
      if (this.sFamily[s] === 0 || this.sExpiry[s] > now) continue;
      const podId = this.sPod[s];
      const podKey = this.podKeys[podId]!;
      const ip = this.slotIp(s);
      // Remove expired records; recompute the slot's latest expiry.
      let prev = NONE;
      let r = this.sFirst[s];
      let earliest = Infinity;
      const graceMs = this.sGraceMs[s];
      while (r !== NONE) {
        const next = this.rNext[r];
        if (this.rExpiry[r] + graceMs <= now) {
          if (prev === NONE) this.sFirst[s] = next;
          else this.rNext[prev] = next;
          this.freeRecord(r);
          this.sCount[s]--;
          this.podEntries[podId]--;
          this.entries--;
          expired++;
        } else {
          earliest = Math.min(earliest, this.rExpiry[r] + graceMs);
          prev = r;
        }
        r = next;
      }
      this.sExpiry[s] = earliest === Infinity ? 0 : earliest;
      if (this.sCount[s] === 0) {
        this.freeSlotAt(s);
        if (this.podHead[podId] === NONE) this.releasePod(podId);
      }
      touched.push([podKey, ip]);
    }
    this.counters.expired += expired;
    for (const [podKey, ip] of touched) this.emit(podKey, ip);
    this.ech.sweep(now, (podKey, name) => this.emitName(podKey, name));
    return expired;
  }

  /** The earliest time an entry is dropped (expiry + grace, Unix ms), or undefined when empty (O(slots)). */
  nextExpiry(): number | undefined {
    let min = Infinity;
    for (let s = 0; s < this.slotCap; s++) if (this.sFamily[s] !== 0 && this.sExpiry[s] < min) min = this.sExpiry[s];
    return min === Infinity ? undefined : min;
  }

  /** Pod keys that currently hold entries. */
  pods(): string[] {
    return [...this.podIds.keys()];
  }

  get size(): { entries: number; ips: number; pods: number; names: number; chains: number } {
    return { entries: this.entries, ips: this.slotsUsed, pods: this.podIds.size, names: this.names.size, chains: this.chains.size };
  }

  // ---- internals -------------------------------------------------------------------------

  private reject(reason: Exclude<RecordOutcome, "stored">): RecordOutcome {
    this.counters.rejected[reason]++;
    return reason;
  }

  private emit(podKey: string, ip: Uint8Array): void {
    for (const l of this.listeners) l(podKey, ip);
  }

  private podIdFor(podKey: string): number {
    let id = this.podIds.get(podKey);
    if (id !== undefined) return id;
    id = this.freePods.pop() ?? this.podKeys.length;
    if (id === this.podKeys.length) {
      if (id >= 2 ** 21) throw new RangeError("resolution store: more than 2^21 pods");
      this.podKeys.push(podKey);
      this.podHead.push(NONE);
      this.podTail.push(NONE);
      this.podEntries.push(0);
    } else {
      this.podKeys[id] = podKey;
      this.podHead[id] = NONE;
      this.podTail[id] = NONE;
      this.podEntries[id] = 0;
    }
    this.podIds.set(podKey, id);
    return id;
  }

  private releasePod(podId: number): void {
    const key = this.podKeys[podId];
    if (key === undefined) return;
    this.podIds.delete(key);
    this.podKeys[podId] = undefined;
    this.freePods.push(podId);
  }

  private static v4Hash(podId: number, addr: number): number {
    let h = Math.imul(addr ^ Math.imul(podId, 0x9e3779b1), 0x85ebca6b);
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35);
    return (h ^ (h >>> 16)) >>> 0;
  }

  private v4Find(podId: number, addr: number): number {
    const mask = this.v4Table.length - 1;
    for (let i = ResolutionStore.v4Hash(podId, addr) & mask; ; i = (i + 1) & mask) {
      const s = this.v4Table[i];
      if (s === NONE) return NONE;
      if (this.sIp[s] === addr && this.sPod[s] === podId) return s;
    }
  }

  private v4Insert(s: number): void {
    if ((this.v4Count + 1) * 2 > this.v4Table.length) this.v4Rehash(this.v4Table.length * 2);
    const mask = this.v4Table.length - 1;
    let i = ResolutionStore.v4Hash(this.sPod[s], this.sIp[s]) & mask;
    while (this.v4Table[i] !== NONE) i = (i + 1) & mask;
    this.v4Table[i] = s;
    this.v4Count++;
  }

  private v4Delete(s: number): void {
    const mask = this.v4Table.length - 1;
    let i = ResolutionStore.v4Hash(this.sPod[s], this.sIp[s]) & mask;
    while (this.v4Table[i] !== s) {
      if (this.v4Table[i] === NONE) throw new Error("resolution store: IPv4 index lost a slot");
      i = (i + 1) & mask;
    }
    // Backward-shift deletion keeps every probe chain unbroken without tombstones.
    for (let j = (i + 1) & mask; this.v4Table[j] !== NONE; j = (j + 1) & mask) {
      const t = this.v4Table[j];
      const home = ResolutionStore.v4Hash(this.sPod[t], this.sIp[t]) & mask;
      const movable = i <= j ? home <= i || home > j : home <= i && home > j;
      if (movable) {
        this.v4Table[i] = t;
        i = j;
      }
    }
    this.v4Table[i] = NONE;
    this.v4Count--;
  }

  private v4Rehash(size: number): void {
    const old = this.v4Table;
    this.v4Table = new Int32Array(size).fill(NONE);
    this.v4Count = 0;
    for (const s of old) if (s !== NONE) this.v4Insert(s);
  }

  private v6Key(podId: number, ip: Uint8Array): string {
    return podId + "|" + Buffer.from(ip.buffer, ip.byteOffset, 16).toString("hex");
  }

  private findSlot(podId: number, ip: Uint8Array): number {
    if (ip.length === 4) return this.v4Find(podId, ((ip[0] << 24) | (ip[1] << 16) | (ip[2] << 8) | ip[3]) >>> 0);
    if (ip.length === 16) return this.v6Index.get(this.v6Key(podId, ip)) ?? NONE;
    return NONE;
  }

  private slotIp(s: number): Uint8Array {
    if (this.sFamily[s] === 4) {
      const v = this.sIp[s];
      return Uint8Array.of(v >>> 24, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff);
    }
    return Uint8Array.from(this.v6Addr.get(s)!);
  }

  private view(s: number, now: number): Resolution | undefined {
    const names: Resolution["names"] = [];
    let latest = 0;
    const graceMs = this.sGraceMs[s];
    for (let r = this.sFirst[s]; r !== NONE; r = this.rNext[r]) {
      if (this.rExpiry[r] + graceMs <= now) continue;
      const chainId = this.rChain[r];
      const name = this.names.get(this.rName[r]);
      const ech = this.ech.size === 0 ? undefined : this.ech.get(this.podKeys[this.sPod[s]]!, name, now);
      names.push({
        name,
        cname_chain: chainId === 0 ? [] : this.chains.get(chainId).split(" "),
        expires_unix_ms: this.rExpiry[r],
        source: "NAME_SOURCE_POD_DNS",
        config_ref: "",
        ech_public_names: ech !== undefined ? [...ech] : [],
      });
      latest = Math.max(latest, this.rExpiry[r]);
    }
    if (names.length === 0) return undefined;
    names.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    return { ip: this.slotIp(s), names, expires_unix_ms: latest };
  }

  /** Adds or refreshes one name under (pod, ip); false when nothing a reader could see changed. */
  private upsert(podId: number, ip: Uint8Array, name: string, chain: string[], expiry: number, graceMs: number): boolean {
    let s = this.findSlot(podId, ip);
    if (s === NONE) s = this.allocSlot(podId, ip);
    else this.touch(s, podId);
    if (this.sGraceMs[s] !== graceMs) {
      // The pod's grace changed (its policies did): retention follows; what filters see does not.
      this.sGraceMs[s] = graceMs;
      this.recomputeEarliest(s);
    }
    this.counters.upserts++;
    const nameId = this.names.peek(name);
    if (nameId !== 0) {
      for (let r = this.sFirst[s]; r !== NONE; r = this.rNext[r]) {
        if (this.rName[r] !== nameId) continue;
        // Keep the latest expiry; take the newest chain.
        let changed = false;
        if (expiry > this.rExpiry[r]) {
          this.rExpiry[r] = expiry;
          changed = true;
        }
        const chainText = chain.join(" ");
        if (chainText !== (this.rChain[r] === 0 ? "" : this.chains.get(this.rChain[r]))) {
          this.chains.release(this.rChain[r]);
          this.rChain[r] = chainText === "" ? 0 : this.chains.acquire(chainText);
          changed = true;
        }
        if (changed) this.recomputeEarliest(s);
        return changed;
      }
    }
    if (this.sCount[s] >= this.limits.maxNamesPerIp) this.evictSoonestName(s, podId);
    const r = this.allocRecord();
    this.rName[r] = this.names.acquire(name);
    this.rChain[r] = chain.length === 0 ? 0 : this.chains.acquire(chain.join(" "));
    this.rExpiry[r] = expiry;
    this.rNext[r] = this.sFirst[s];
    this.sFirst[s] = r;
    this.sCount[s]++;
    this.recomputeEarliest(s);
    this.podEntries[podId]++;
    this.entries++;
    return true;
  }

  private recomputeEarliest(s: number): void {
    let earliest = Infinity;
    for (let r = this.sFirst[s]; r !== NONE; r = this.rNext[r]) if (this.rExpiry[r] < earliest) earliest = this.rExpiry[r];
    this.sExpiry[s] = earliest === Infinity ? 0 : earliest + this.sGraceMs[s];
  }

  private evictSoonestName(s: number, podId: number): void {
    let victim = NONE;
    let victimPrev = NONE;
    for (let prev = NONE, r = this.sFirst[s]; r !== NONE; prev = r, r = this.rNext[r]) {
      if (victim === NONE || this.rExpiry[r] < this.rExpiry[victim]) {
        victim = r;
        victimPrev = prev;
      }
    }
    if (victim === NONE) return;
    if (victimPrev === NONE) this.sFirst[s] = this.rNext[victim];
    else this.rNext[victimPrev] = this.rNext[victim];
    this.freeRecord(victim);
    this.sCount[s]--;
    this.podEntries[podId]--;
    this.entries--;
    this.counters.evictedNamesPerIp++;
  }

  private enforceBounds(podId: number): void {
    while (this.podEntries[podId] > this.limits.maxEntriesPerPod && this.podHead[podId] !== this.podTail[podId]) {
      this.counters.evictedPerPod += this.evictSlot(this.podHead[podId]);
    }
    while (this.entries > this.limits.maxEntriesTotal && this.gHead !== this.gTail) {
      this.counters.evictedTotal += this.evictSlot(this.gHead);
    }
  }

  private evictSlot(s: number): number {
    const podId = this.sPod[s];
    const podKey = this.podKeys[podId]!;
    const ip = this.slotIp(s);
    const n = this.sCount[s];
    this.freeSlotAt(s);
    if (this.podHead[podId] === NONE) this.releasePod(podId);
    this.emit(podKey, ip);
    return n;
  }

  private allocSlot(podId: number, ip: Uint8Array): number {
    if (this.freeSlot === NONE) this.growSlots(this.slotCap * 2);
    const s = this.freeSlot;
    this.freeSlot = this.sNext[s];
    this.sPod[s] = podId;
    this.sFirst[s] = NONE;
    this.sCount[s] = 0;
    this.sExpiry[s] = 0;
    this.sGraceMs[s] = 0;
    if (ip.length === 4) {
      this.sFamily[s] = 4;
      this.sIp[s] = ((ip[0] << 24) | (ip[1] << 16) | (ip[2] << 8) | ip[3]) >>> 0;
      this.v4Insert(s);
    } else {
      this.sFamily[s] = 6;
      this.sIp[s] = 0;
      this.v6Addr.set(s, Uint8Array.from(ip));
      this.v6Index.set(this.v6Key(podId, ip), s);
    }
    this.appendPod(s, podId);
    this.appendGlobal(s);
    this.slotsUsed++;
    return s;
  }

  private freeSlotAt(s: number): void {
    const podId = this.sPod[s];
    for (let r = this.sFirst[s]; r !== NONE; ) {
      const next = this.rNext[r];
      this.freeRecord(r);
      r = next;
    }
    this.podEntries[podId] -= this.sCount[s];
    this.entries -= this.sCount[s];
    if (this.sFamily[s] === 4) this.v4Delete(s);
    else {
      this.v6Index.delete(this.v6Key(podId, this.v6Addr.get(s)!));
      this.v6Addr.delete(s);
    }
    this.unlinkPod(s, podId);
    this.unlinkGlobal(s);
    this.sFamily[s] = 0;
    this.sCount[s] = 0;
    this.sFirst[s] = NONE;
    this.sExpiry[s] = 0;
    this.sNext[s] = this.freeSlot;
    this.freeSlot = s;
    this.slotsUsed--;
  }

  /** Moves a slot to the tail (most recent) of both LRU lists. */
  private touch(s: number, podId: number): void {
    if (this.podTail[podId] !== s) {
      this.unlinkPod(s, podId);
      this.appendPod(s, podId);
    }
    if (this.gTail !== s) {
      this.unlinkGlobal(s);
      this.appendGlobal(s);
    }
  }

  private appendPod(s: number, podId: number): void {
    const tail = this.podTail[podId];
    this.sPrev[s] = tail;
    this.sNext[s] = NONE;
    if (tail === NONE) this.podHead[podId] = s;
    else this.sNext[tail] = s;
    this.podTail[podId] = s;
  }

  private unlinkPod(s: number, podId: number): void {
    const p = this.sPrev[s];
    const n = this.sNext[s];
    if (p === NONE) this.podHead[podId] = n;
    else this.sNext[p] = n;
    if (n === NONE) this.podTail[podId] = p;
    else this.sPrev[n] = p;
  }

  private appendGlobal(s: number): void {
    this.sGPrev[s] = this.gTail;
    this.sGNext[s] = NONE;
    if (this.gTail === NONE) this.gHead = s;
    else this.sGNext[this.gTail] = s;
    this.gTail = s;
  }

  private unlinkGlobal(s: number): void {
    const p = this.sGPrev[s];
    const n = this.sGNext[s];
    if (p === NONE) this.gHead = n;
    else this.sGNext[p] = n;
    if (n === NONE) this.gTail = p;
    else this.sGPrev[n] = p;
  }

  private allocRecord(): number {
    if (this.freeRec === NONE) this.growRecords(this.recCap * 2);
    const r = this.freeRec;
    this.freeRec = this.rNext[r];
    this.recsUsed++;
    return r;
  }

  private freeRecord(r: number): void {
    this.names.release(this.rName[r]);
    this.chains.release(this.rChain[r]);
    this.rName[r] = 0;
    this.rChain[r] = 0;
    this.rExpiry[r] = 0;
    this.rNext[r] = this.freeRec;
    this.freeRec = r;
    this.recsUsed--;
  }

  private growSlots(cap: number): void {
    const old = this.slotCap;
    const grow = <T extends Uint32Array | Int32Array | Uint8Array | Float64Array>(a: T, per = 1): T => {
      const b = new (a.constructor as new (n: number) => T)(cap * per);
      b.set(a);
      return b;
    };
    this.sPod = grow(this.sPod);
    this.sFamily = grow(this.sFamily);
    this.sIp = grow(this.sIp);
    this.sFirst = grow(this.sFirst);
    this.sCount = grow(this.sCount);
    this.sExpiry = grow(this.sExpiry);
    this.sGraceMs = grow(this.sGraceMs);
    this.sPrev = grow(this.sPrev);
    this.sNext = grow(this.sNext);
    this.sGPrev = grow(this.sGPrev);
    this.sGNext = grow(this.sGNext);
    this.slotCap = cap;
    // Thread the new slots onto the free list (lowest index first).
    for (let s = cap - 1; s >= old; s--) {
      this.sNext[s] = this.freeSlot;
      this.freeSlot = s;
    }
  }

  private growRecords(cap: number): void {
    const old = this.recCap;
    const grow = <T extends Uint32Array | Int32Array | Float64Array>(a: T): T => {
      const b = new (a.constructor as new (n: number) => T)(cap);
      b.set(a);
      return b;
    };
    this.rName = grow(this.rName);
    this.rChain = grow(this.rChain);
    this.rExpiry = grow(this.rExpiry);
    this.rNext = grow(this.rNext);
    this.recCap = cap;
    for (let r = cap - 1; r >= old; r--) {
      this.rNext[r] = this.freeRec;
      this.freeRec = r;
    }
  }
}
