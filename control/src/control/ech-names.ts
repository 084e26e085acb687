// Which ECH public names each pod's HTTPS/SVCB answers named, per queried name (issue #14: ECH
// narrowing). Kept beside the resolution store and attached to its ResolvedNames, so the filter
// can narrow an ECH ClientHello to the names whose answers named its outer SNI. Bounded per pod and
// in total (the soonest-expiring entry makes room; counted); nothing here reads the clock.

interface EchEntry {
  publicNames: readonly string[];
  /** When the evidence stops counting (expiry + the pod's grace), Unix ms. */
  keepUntil: number;
}

export interface EchNameLimits {
  /** Queried names with public names kept per pod. */
  maxNamesPerPod: number;
  /** In total, over all pods. */
  maxNamesTotal: number;
}

export const DEFAULT_ECH_NAME_LIMITS: EchNameLimits = { maxNamesPerPod: 256, maxNamesTotal: 65_536 };

export class EchNameTable {
  private readonly pods = new Map<string, Map<string, EchEntry>>();
  private total = 0;
  /** Entries dropped to stay within the bounds. */
  evicted = 0;

  constructor(private readonly limits: EchNameLimits = DEFAULT_ECH_NAME_LIMITS) {}

  get size(): number {
    return this.total;
  }

  /** Records (or replaces) the public names of `name` for the pod; false when nothing changed. */
  set(podKey: string, name: string, publicNames: readonly string[], keepUntil: number): boolean {
    let pod = this.pods.get(podKey);
    const old = pod?.get(name);
    if (old && old.keepUntil === keepUntil && sameNames(old.publicNames, publicNames)) return false;
    if (!pod) this.pods.set(podKey, (pod = new Map()));
    if (!old) {
      if (pod.size >= this.limits.maxNamesPerPod) this.evictSoonest(podKey, pod);
      else if (this.total >= this.limits.maxNamesTotal) this.evictSoonestAnywhere();
      this.total++;
    }
    pod.set(name, { publicNames: [...publicNames], keepUntil });
    this.pods.set(podKey, pod); // an eviction may have emptied and unlinked it
    return true;
  }

  /** The public names of `name` for the pod still valid at `now`, or undefined. */
  get(podKey: string, name: string, now: number): readonly string[] | undefined {
    const e = this.pods.get(podKey)?.get(name);
    return e && e.keepUntil > now ? e.publicNames : undefined;
  }

  dropPod(podKey: string): void {
    const pod = this.pods.get(podKey);
    if (!pod) return;
    this.total -= pod.size;
    this.pods.delete(podKey);
  }

  /** Drops what expired at `now`; calls `removed(podKey, name)` for each. */
  sweep(now: number, removed: (podKey: string, name: string) => void): void {
    for (const [podKey, pod] of this.pods) {
      for (const [name, e] of pod) {
        if (e.keepUntil > now) continue;
        pod.delete(name);
        this.total--;
        removed(podKey, name);
      }
      if (pod.size === 0) this.pods.delete(podKey);
    }
  }

  private evictSoonest(podKey: string, pod: Map<string, EchEntry>): void {
    let victim: string | undefined;
    let soonest = Infinity;
    for (const [name, e] of pod) if (e.keepUntil < soonest) [victim, soonest] = [name, e.keepUntil];
    if (victim === undefined) return;
    pod.delete(victim);
    this.total--;
    this.evicted++;
    if (pod.size === 0) this.pods.delete(podKey);
  }

  /** The pod holding the most names loses its soonest-expiring one: a quiet pod keeps its evidence. */
  private evictSoonestAnywhere(): void {
    let largest: [string, Map<string, EchEntry>] | undefined;
    for (const entry of this.pods) if (!largest || entry[1].size > largest[1].size) largest = entry;
    if (largest) this.evictSoonest(largest[0], largest[1]);
  }
}

function sameNames(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
