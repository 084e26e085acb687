// One Watch stream per sidecar: the VMs of one Envoy (one per worker thread plus the main thread,
// reference/proxy-wasm.md §6.1) elect one of them, through a lease in proxy-wasm shared data, to
// hold the Watch stream; it publishes every response it applied into shared data, and the others
// apply the same bytes from there (§6.3: shared data is process-wide, mutex-protected, with CAS
// versions, and survives the reload of any one VM).
//
// Shared keys (prefix "egret.watch/<namespace>/<pod>/"):
//   lease   u32 holder tag, u32 0, i64 expiry (ms): refreshed by the holder on every tick (CAS)
//   head    u64 last published sequence number, u64 sequence number of the base
//   base    u64 seq, i64 skew (holder clock − server clock, ms), the last SNAPSHOT WatchResponse
//   r<k>    u64 seq, i64 skew, a DELTA WatchResponse with seq % RING_SIZE == k
// A follower applies base then every delta after it in order (the same applyWatchResponse the
// holder ran), so its tables and policy are the holder's. The holder asks control for a fresh
// snapshot before the ring would overwrite a delta newer than the base, so base + ring always
// bridge to the head. A follower that finds its next entry overwritten starts again from the base.
//
// Failover: a holder that stops refreshing (its VM failed, or is being replaced) loses the lease
// after leaseMs; another VM takes it over (a write with the CAS it read, then confirmed on its next
// tick, so two VMs racing for a free lease settle on the last writer), syncs to the head and
// resumes the Watch from the version it holds.
//
// Before the first tick every VM runs its own stream (ROLE_OWN), as a VM did before the lease
// existed: Envoy's canary VM configures too and is then discarded (§6.1), so a lease taken at
// configure time could belong to a VM that never ticks.
import { getSharedData, setSharedData, lastCas } from "../abi/shared";
import { Status } from "../abi/enums";
import { HostBytes } from "../abi/memory";

/** Deltas kept in shared data; the holder resnapshots before the base falls out of reach. */
export const RING_SIZE: u64 = 1024;
const ENTRY_HEADER: u32 = 16;

export const ROLE_OWN: u8 = 0;       // own stream, not (yet) in the election: before the first tick
export const ROLE_CANDIDATE: u8 = 1; // wrote the lease, confirms it on the next tick
export const ROLE_HOLDER: u8 = 2;    // holds the Watch and publishes
export const ROLE_FOLLOWER: u8 = 3;  // applies what the holder publishes

export class SharedWatch {
  role: u8 = ROLE_OWN;
  /** Sequence number of the last entry this VM applied (follower) or published (holder). */
  seq: u64 = 0;
  /** Sequence number of the base this VM's state descends from (holder: last SNAPSHOT published). */
  baseSeq: u64 = 0;
  /** From the last readHead(). */
  headSeq: u64 = 0;
  headBase: u64 = 0;
  /** This VM's lease tag (random, non-zero). */
  readonly tag: u32;
  readonly leaseKey: string;
  readonly headKey: string;
  readonly baseKey: string;
  private readonly prefix: string;
  /** Value read from shared data (host copy; released after use). */
  readonly value: HostBytes = new HostBytes();
  /** Scratch for writes (header + message), grown as needed. */
  private out: StaticArray<u8> = new StaticArray<u8>(256);

  constructor(podNamespace: string, podName: string, tag: u32) {
    const prefix = "egret.watch/" + podNamespace + "/" + podName + "/";
    this.prefix = prefix;
    this.leaseKey = prefix + "lease";
    this.headKey = prefix + "head";
    this.baseKey = prefix + "base";
    this.tag = tag == 0 ? 1 : tag;
  }

  ringKey(seq: u64): string {
    return this.prefix + "r" + (seq % RING_SIZE).toString();
  }

  /** Whether another VM holds a lease that has not expired (at configure time: follow at once). */
  leaseHeldByOther(now: i64): bool {
    const st = getSharedData(this.leaseKey, this.value);
    const held = st == Status.Ok && this.value.len >= 16 && load<u32>(this.value.ptr) != this.tag && load<i64>(this.value.ptr, 8) >= now;
    this.value.release();
    return held;
  }

  /**
   * One round of the lease protocol (every tick). Returns the new role: the holder refreshes its
   * lease and stays holder unless another VM took it; a candidate whose write survived becomes
   * holder; anyone else writes a free or expired lease (candidate) or follows.
   */
  tickLease(now: i64, leaseMs: i64): u8 {
    const st = getSharedData(this.leaseKey, this.value);
    const present = st == Status.Ok && this.value.len >= 16;
    const owner = present ? load<u32>(this.value.ptr) : 0;
    const expiry = present ? load<i64>(this.value.ptr, 8) : 0;
    const cas = lastCas;
    this.value.release();
    const mine = present && owner == this.tag;
    if (mine && (this.role == ROLE_HOLDER || this.role == ROLE_CANDIDATE)) {
      this.role = this.writeLease(now + leaseMs, cas) ? ROLE_HOLDER : ROLE_FOLLOWER;
    } else if (!present || expiry < now) {
      this.role = this.writeLease(now + leaseMs, cas) ? ROLE_CANDIDATE : ROLE_FOLLOWER;
    } else {
      this.role = ROLE_FOLLOWER;
    }
    return this.role;
  }

  /** Holder going away: expire the lease now (another VM takes over at its next tick). */
  releaseLease(): void {
    const st = getSharedData(this.leaseKey, this.value);
    const mine = st == Status.Ok && this.value.len >= 16 && load<u32>(this.value.ptr) == this.tag;
    const cas = lastCas;
    this.value.release();
    if (mine) this.writeLease(0, cas);
    this.role = ROLE_FOLLOWER;
  }

  private writeLease(expiry: i64, cas: u32): bool {
    const p = changetype<usize>(this.out);
    store<u32>(p, this.tag);
    store<u32>(p, 0, 4);
    store<i64>(p, expiry, 8);
    return setSharedData(this.leaseKey, p, 16, cas) == Status.Ok;
  }

  /** Reads head into headSeq/headBase; false when nothing was published yet. */
  readHead(): bool {
    const st = getSharedData(this.headKey, this.value);
    const ok = st == Status.Ok && this.value.len >= 16;
    if (ok) {
      this.headSeq = load<u64>(this.value.ptr);
      this.headBase = load<u64>(this.value.ptr, 8);
    }
    this.value.release();
    return ok;
  }

  /**
   * Reads the entry for sequence number `seq` (base when `base`) into `value`; false when it is
   * missing or was overwritten by another sequence number. On success the message is at
   * value.ptr + 16 (entryMessage*), the holder's skew at entrySkew().
   */
  readEntry(seq: u64, base: bool): bool {
    const st = getSharedData(base ? this.baseKey : this.ringKey(seq), this.value);
    if (st != Status.Ok || this.value.len < ENTRY_HEADER || load<u64>(this.value.ptr) != seq) {
      this.value.release();
      return false;
    }
    return true;
  }
  entrySkew(): i64 { return load<i64>(this.value.ptr, 8); }
  entryMessagePtr(): usize { return this.value.ptr + ENTRY_HEADER; }
  entryMessageLen(): u32 { return this.value.len - ENTRY_HEADER; }

  /**
   * Holder: publishes one applied response (a SNAPSHOT becomes the base). Returns true when the
   * ring is about to outrun the base: the holder should ask control for a fresh snapshot.
   */
  publish(msg: usize, len: u32, snapshot: bool, skewMs: i64): bool {
    const seq = this.seq + 1;
    const need = <i32>(len + ENTRY_HEADER);
    if (this.out.length < need) this.out = new StaticArray<u8>(need);
    const p = changetype<usize>(this.out);
    store<u64>(p, seq);
    store<i64>(p, skewMs, 8);
    memory.copy(p + ENTRY_HEADER, msg, len);
    setSharedData(snapshot ? this.baseKey : this.ringKey(seq), p, <u32>need);
    if (snapshot) this.baseSeq = seq;
    store<u64>(p, seq);
    store<u64>(p, this.baseSeq, 8);
    setSharedData(this.headKey, p, 16);
    this.seq = seq;
    return seq - this.baseSeq >= RING_SIZE - 1;
  }
}
