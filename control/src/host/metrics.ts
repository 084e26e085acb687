// Metrics with Envoy's semantics (reference/proxy-wasm.md §8): `wasmcustom.<name>` stats shared by
// every VM of the process; per-VM ids with the type in the low 2 bits; Prometheus naming rules.
import { MetricType, Status } from "./abi.js";

export type MetricKind = "counter" | "gauge" | "histogram";
const KIND_BY_TYPE: Record<number, MetricKind> = { [MetricType.Counter]: "counter", [MetricType.Gauge]: "gauge", [MetricType.Histogram]: "histogram" };

/** Envoy's default histogram bucket bounds. */
const BUCKETS = [0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000];

export interface Stat {
  readonly name: string; // full name, "wasmcustom.<name>"
  readonly kind: MetricKind;
  value: bigint; // counters and gauges
  samples: number[]; // histograms (bounded)
  sampleCount: number;
  sampleSum: number;
}

const MAX_SAMPLES = 10_000;

/** Process-wide stat store (one per EnvoyHost). */
export class StatStore {
  readonly stats = new Map<string, Stat>();

  define(kind: MetricKind, rawName: string): Stat {
    const name = `wasmcustom.${rawName}`;
    let s = this.stats.get(name);
    if (!s) { s = { name, kind, value: 0n, samples: [], sampleCount: 0, sampleSum: 0 }; this.stats.set(name, s); }
    return s;
  }

  /** Value of `wasmcustom.<name>` (counter/gauge), or the sample count of a histogram. */
  get(name: string): number | undefined {
    const s = this.stats.get(name.startsWith("wasmcustom.") ? name : `wasmcustom.${name}`);
    if (!s) return undefined;
    return s.kind === "histogram" ? s.sampleCount : Number(s.value);
  }

  /** Prometheus text exposition as Envoy's admin renders custom-namespace stats. */
  prometheus(): string {
    const lines: string[] = [];
    for (const s of [...this.stats.values()].sort((a, b) => a.name.localeCompare(b.name))) {
      const name = promName(s.name);
      if (name === undefined) continue;
      lines.push(`# TYPE ${name} ${s.kind}`);
      if (s.kind !== "histogram") { lines.push(`${name} ${s.value}`); continue; }
      for (const b of BUCKETS) lines.push(`${name}_bucket{le="${b}"} ${s.samples.filter((x) => x <= b).length}`);
      lines.push(`${name}_bucket{le="+Inf"} ${s.sampleCount}`, `${name}_sum ${s.sampleSum}`, `${name}_count ${s.sampleCount}`);
    }
    return lines.join("\n") + (lines.length ? "\n" : "");
  }
}

/** `wasmcustom` is a custom namespace: prefix stripped, no `envoy_`, [^a-zA-Z0-9_] → `_`. */
export function promName(full: string): string | undefined {
  const name = full.replace(/^wasmcustom\./, "").replace(/[^a-zA-Z0-9_]/g, "_");
  return /^[0-9]/.test(name) || name === "" ? undefined : name;
}

/** The per-VM id space (CPPH: ids step by 4, type in the low 2 bits). */
export class VmMetrics {
  private readonly byId = new Map<number, Stat>();
  private readonly next = [0, 1, 2];
  constructor(private readonly store: StatStore) {}

  define(type: number, name: string): { status: number; id?: number } {
    const kind = KIND_BY_TYPE[type];
    if (!kind) return { status: Status.BadArgument };
    const existing = this.store.stats.get(`wasmcustom.${name}`);
    if (existing && existing.kind !== kind) return { status: Status.BadArgument };
    const id = (this.next[type] += 4);
    this.byId.set(id, this.store.define(kind, name));
    return { status: Status.Ok, id };
  }

  increment(id: number, delta: bigint): number {
    const s = this.byId.get(id);
    if (!s) return Status.NotFound;
    if (s.kind === "counter") { if (delta <= 0n) return Status.BadArgument; s.value += delta; return Status.Ok; }
    if (s.kind === "gauge") { s.value += delta; return Status.Ok; }
    return Status.BadArgument;
  }

  record(id: number, value: bigint): number {
    const s = this.byId.get(id);
    if (!s) return Status.NotFound;
    if (s.kind === "counter") { if (value > 0n) s.value += value; return Status.Ok; }
    if (s.kind === "gauge") { s.value = value; return Status.Ok; }
    const v = Number(value);
    s.sampleCount++; s.sampleSum += v;
    if (s.samples.length < MAX_SAMPLES) s.samples.push(v);
    return Status.Ok;
  }

  get(id: number): { status: number; value?: bigint } {
    const s = this.byId.get(id);
    if (!s) return { status: Status.NotFound };
    if (s.kind === "histogram") return { status: Status.BadArgument };
    return { status: Status.Ok, value: s.value };
  }
}
