// Metrics (reference/proxy-wasm.md §8). Envoy names them `wasmcustom.<name>`, process-wide: define
// them in onVmStart/onConfigure of every VM and the values add up. Counters only go up.
import { proxy_define_metric, proxy_increment_metric, proxy_record_metric, proxy_get_metric } from "./imports";
import { Status, MetricType } from "./enums";
import { OUT_U32, OUT_U64, toScratch, SCRATCH } from "./memory";

/** A defined metric; `defined` is false if the host refused it (then every update is a no-op). */
export class Metric {
  readonly type: MetricType;
  id: u32 = 0;
  defined: bool = false;

  constructor(type: MetricType, name: string) {
    this.type = type;
    const n = toScratch(name);
    if (proxy_define_metric(<u32>type, SCRATCH, n, OUT_U32) == Status.Ok) {
      this.id = load<u32>(OUT_U32);
      this.defined = true;
    }
  }

  /** Counter: delta must be > 0. Gauge: adds (or subtracts). Histogram: BadArgument. */
  increment(delta: i64 = 1): Status {
    return this.defined ? <Status>proxy_increment_metric(this.id, delta) : Status.NotFound;
  }

  /** Counter: adds `value`. Gauge: sets it. Histogram: records a sample. */
  record(value: i64): Status {
    return this.defined ? <Status>proxy_record_metric(this.id, value) : Status.NotFound;
  }

  /** Current value (counters and gauges); 0 when unavailable. */
  get(): u64 {
    if (!this.defined || proxy_get_metric(this.id, OUT_U64) != Status.Ok) return 0;
    return load<u64>(OUT_U64);
  }
}

export function counter(name: string): Metric { return new Metric(MetricType.Counter, name); }
export function gauge(name: string): Metric { return new Metric(MetricType.Gauge, name); }
export function histogram(name: string): Metric { return new Metric(MetricType.Histogram, name); }
