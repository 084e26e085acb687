// Coverage shared across control replicas. A filter holds its Watch on one replica, so each
// replica knows only its own bindings; policy status is written by one (the leader). Every replica
// therefore publishes the set of pods its filters are bound to (control/src/k8s/coverage-share.ts:
// one ConfigMap per replica, renewed), and every replica reads all of them: a replica's coverage is
// its own live bindings plus every peer's published set that has not expired.
//
// Expiry has Lease semantics: a peer's set counts while its renewTime keeps changing, judged on
// *this* replica's clock from the moment the change was seen (clock skew between replicas does
// not matter). A replica that dies stops renewing; after `leaseDurationMs` its pods count as not
// connected. Nothing here depends on Kubernetes: the payload codec and the table are pure.
import { gunzipSync, gzipSync } from "node:zlib";

/** One replica's published bindings: pod key "namespace/name" → live Watch streams. */
export interface PublishedCoverage {
  replica: string;
  /** When the replica last renewed (its clock; only *changes* matter to readers). */
  renewTime: string;
  leaseDurationMs: number;
  pods: Map<string, number>;
}

/** What `/coverage` and `egret status` show per replica. */
export interface ReplicaCoverageView {
  replica: string;
  /** This replica (its bindings are live, not published). */
  self: boolean;
  /** Pods with a Watch bound on that replica. */
  pods: number;
  /** Counted in the union (false: expired, the replica stopped renewing). */
  live: boolean;
  /** When this replica last saw the peer renew (ms since epoch; self: now). */
  renewedAt: number;
}

/** Largest decoded payload accepted (a hostile or corrupt object cannot make a reader allocate more). */
export const MAX_DECODED_BYTES = 64 * 1024 * 1024;

/** gzip("namespace/name count\n"…), sorted: the same set always encodes to the same bytes. */
export function encodeCoveragePods(pods: ReadonlyMap<string, number>): Buffer {
  const lines = [...pods.entries()].filter(([, n]) => n > 0).map(([k, n]) => `${k} ${n}`).sort();
  return gzipSync(Buffer.from(lines.join("\n"), "utf8"));
}

/** The inverse of encodeCoveragePods; throws an Error naming the bad line. */
export function decodeCoveragePods(data: Buffer): Map<string, number> {
  const text = gunzipSync(data, { maxOutputLength: MAX_DECODED_BYTES }).toString("utf8");
  const pods = new Map<string, number>();
  if (text === "") return pods;
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const m = /^([^\s/]+\/[^\s/]+) ([1-9][0-9]{0,6})$/.exec(lines[i]!);
    if (!m) throw new Error(`line ${i + 1}: expected "namespace/name count", got ${JSON.stringify(lines[i]!.slice(0, 80))}`);
    pods.set(m[1]!, Number(m[2]));
  }
  return pods;
}

interface PeerEntry {
  published: PublishedCoverage;
  /** This replica's clock when `published.renewTime` last changed. */
  seenAt: number;
}

export interface PeerCoverageOptions {
  /** This replica's identity: its own published object is ignored (its live bindings count). */
  self: string;
  now?: () => number;
  /** Called when the set of counted bindings changed (a peer published, expired, went away). */
  onChange: () => void;
}

export class PeerCoverage {
  private readonly peers = new Map<string, PeerEntry>();
  /** Peers counted in the union (not expired), refreshed by `expire()`. */
  private readonly live = new Set<string>();
  private readonly now: () => number;

  constructor(private readonly o: PeerCoverageOptions) {
    this.now = o.now ?? Date.now;
  }

  /** A peer's object was added or changed. */
  upsert(p: PublishedCoverage): void {
    if (p.replica === this.o.self) return;
    const before = this.peers.get(p.replica);
    const renewed = before === undefined || before.published.renewTime !== p.renewTime;
    this.peers.set(p.replica, { published: p, seenAt: renewed ? this.now() : before.seenAt });
    const liveChanged = this.updateLive();
    // A renewal that changes nothing counted costs no coverage pass.
    if (liveChanged || (this.live.has(p.replica) && !samePods(before?.published.pods, p.pods))) this.o.onChange();
  }

  /** A peer's object was deleted. */
  delete(replica: string): void {
    if (!this.peers.delete(replica)) return;
    if (this.live.delete(replica)) this.o.onChange();
  }

  /** Drops peers that stopped renewing from the union (periodic); returns whether anything changed. */
  expire(): boolean {
    const changed = this.updateLive();
    if (changed) this.o.onChange();
    return changed;
  }

  private updateLive(): boolean {
    const now = this.now();
    let changed = false;
    for (const [name, e] of this.peers) {
      const alive = now - e.seenAt < e.published.leaseDurationMs;
      if (alive && !this.live.has(name)) {
        this.live.add(name);
        changed = true;
      } else if (!alive && this.live.delete(name)) {
        changed = true;
      }
    }
    return changed;
  }

  /** Live Watch streams bound to the pod on live peers. */
  filtersOf(key: string): number {
    let n = 0;
    for (const name of this.live) n += this.peers.get(name)!.published.pods.get(key) ?? 0;
    return n;
  }

  /** Peers expired for longer than `ms` (their objects can be deleted). */
  expiredLongerThan(ms: number): string[] {
    const now = this.now();
    return [...this.peers].filter(([, e]) => now - e.seenAt >= e.published.leaseDurationMs + ms).map(([name]) => name);
  }

  /** Every peer, live or expired. */
  views(): ReplicaCoverageView[] {
    return [...this.peers.values()]
      .map((e) => ({ replica: e.published.replica, self: false, pods: e.published.pods.size, live: this.live.has(e.published.replica), renewedAt: e.seenAt }))
      .sort((a, b) => (a.replica < b.replica ? -1 : a.replica > b.replica ? 1 : 0));
  }
}

function samePods(a: ReadonlyMap<string, number> | undefined, b: ReadonlyMap<string, number>): boolean {
  if (!a || a.size !== b.size) return false;
  for (const [k, n] of b) if (a.get(k) !== n) return false;
  return true;
}
