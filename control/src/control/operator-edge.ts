// The gRPC handlers of OperatorService (`egret observe`, `egret status`). Every call is
// authenticated first (auth/operator-auth.ts); every verdict and status row is then shown only if
// the caller may read its namespace. A slow reader costs a bounded buffer (verdict-feed.ts), never
// control's memory or the filters' Report path.
import * as grpc from "@grpc/grpc-js";
import type { Logger } from "../common/log.js";
import { AuthFailure } from "../auth/agent-auth.js";
import type { OperatorAccess, OperatorAuthenticator } from "../auth/operator-access.js";
import type {
  GetStatusRequest,
  GetStatusResponse,
  ObserveVerdictsRequest,
  ObserveVerdictsResponse,
  OperatorServiceHandlers,
  Outgoing,
  Reason,
  Verdict,
  VerdictEvent,
} from "../proto/index.js";
import { ControlError } from "./errors.js";
import { toStatus } from "./grpc-server.js";
import type { ControlMetrics } from "./metrics.js";
import { buildStatus, type StatusParts } from "./operator-status.js";
import { FeedFullError, type FeedSubscription, type VerdictFeed, type VerdictFilter } from "./verdict-feed.js";

/** Events per ObserveVerdictsResponse. */
const BATCH = 256;
/** Entries per filter field, and characters per entry. */
const MAX_FILTER_VALUES = 256;
const MAX_FILTER_TEXT = 253;

export interface OperatorEdgeOptions {
  auth: OperatorAuthenticator;
  feed: VerdictFeed;
  status: StatusParts;
  metrics: ControlMetrics;
  log: Logger;
}

type ObserveCall = grpc.ServerWritableStream<ObserveVerdictsRequest, Outgoing<ObserveVerdictsResponse>>;

export class OperatorEdge {
  constructor(private readonly o: OperatorEdgeOptions) {}

  handlers(): OperatorServiceHandlers {
    return {
      ObserveVerdicts: (call) => void this.observe(call as ObserveCall),
      GetStatus: (call, callback) => void this.status(call, callback),
    };
  }

  private async status(call: grpc.ServerUnaryCall<GetStatusRequest, unknown>, callback: grpc.sendUnaryData<Outgoing<GetStatusResponse>>): Promise<void> {
    try {
      const access = await this.authenticate(call.metadata, call.getPeer());
      callback(null, await buildStatus(this.o.status, access));
    } catch (err) {
      callback(toStatus(asOperatorError(err)) as grpc.ServiceError, null);
    }
  }

  private async observe(call: ObserveCall): Promise<void> {
    const stream = new VerdictStream(call, this.o);
    try {
      const access = await this.authenticate(call.metadata, call.getPeer());
      const filter = filterOf(call.request);
      await requireNamedNamespaces(access, filter);
      await stream.run(access, filter, call.request.follow, call.request.since_unix_ms);
    } catch (err) {
      stream.end(asOperatorError(err));
    }
  }

  private async authenticate(metadata: grpc.Metadata, peer: string): Promise<OperatorAccess> {
    const value = metadata.get("authorization")[0];
    try {
      const access = await this.o.auth.authenticate(typeof value === "string" ? value : undefined);
      this.o.metrics.operatorAuth.inc({ outcome: "ok" });
      return access;
    } catch (err) {
      const cause = err instanceof AuthFailure ? err.reason : "unavailable";
      this.o.metrics.operatorAuth.inc({ outcome: cause });
      this.o.log.warn({ peer, cause, err: (err as Error).message }, "operator call not authenticated; refused");
      throw err;
    }
  }
}

/** One ObserveVerdicts call: the retained events asked for, then (follow) the live ones. */
class VerdictStream {
  private sub?: FeedSubscription;
  private access?: OperatorAccess;
  private live = false;
  private pumping = false;
  private done = false;
  private reportedDrops = 0;

  constructor(private readonly call: ObserveCall, private readonly o: OperatorEdgeOptions) {
    call.on("cancelled", () => this.end());
    call.on("error", () => this.end());
  }

  async run(access: OperatorAccess, filter: VerdictFilter, follow: boolean, sinceMs: number): Promise<void> {
    this.access = access;
    if (follow) {
      // Subscribe before reading the history, in the same tick: nothing falls between the two.
      try {
        this.sub = this.o.feed.subscribe(filter, () => void this.pump());
      } catch (err) {
        if (err instanceof FeedFullError) throw new ControlError("EGRET_OBSERVE_TOO_MANY_STREAMS", err.message);
        throw err;
      }
    }
    const history = follow && sinceMs === 0 ? [] : this.o.feed.history(filter);
    for (let i = 0; i < history.length && !this.done; i += BATCH) {
      const visible = await this.visible(history.slice(i, i + BATCH));
      if (visible.length > 0) await this.write({ verdicts: visible });
    }
    await this.write({ history_done: true });
    if (!follow) return this.end();
    this.live = true;
    await this.pump();
  }

  end(err?: unknown): void {
    if (this.done) return;
    this.done = true;
    this.sub?.close();
    if (err !== undefined) this.call.emit("error", toStatus(err));
    else if (!this.call.cancelled) this.call.end();
  }

  private async pump(): Promise<void> {
    if (!this.live || this.pumping || this.done || !this.sub) return;
    this.pumping = true;
    try {
      while (!this.done && this.sub.pending > 0) {
        const visible = await this.visible(this.sub.take(BATCH));
        const dropped = await this.visibleDrops();
        if (visible.length > 0 || dropped !== this.reportedDrops) await this.write({ verdicts: visible, dropped_verdicts: dropped });
        this.reportedDrops = dropped;
      }
    } catch (err) {
      this.end(asOperatorError(err));
    } finally {
      this.pumping = false;
    }
  }

  /** The events of namespaces the caller may read (asks the authorizer once per namespace and cache period). */
  private async visible(events: VerdictEvent[]): Promise<VerdictEvent[]> {
    const out: VerdictEvent[] = [];
    for (const e of events) if (await this.mayRead(e.pod_namespace)) out.push(e);
    return out;
  }

  private async mayRead(namespace: string): Promise<boolean> {
    const cached = this.access!.cachedNamespace(namespace);
    return cached ?? (await this.access!.canReadNamespace(namespace));
  }

  /** Lost events, counted only in namespaces the caller may read (others stay invisible). */
  private async visibleDrops(): Promise<number> {
    let n = 0;
    for (const [ns, count] of this.sub?.droppedByNamespace ?? []) if (await this.mayRead(ns)) n += count;
    return n;
  }

  /** Writes one response, waiting for the transport to drain when its buffer is full. */
  private async write(r: Outgoing<ObserveVerdictsResponse>): Promise<void> {
    if (this.done) return;
    if (!this.call.write(r)) await new Promise<void>((resolve) => {
      const go = () => {
        this.call.off("drain", go);
        this.call.off("cancelled", go);
        resolve();
      };
      this.call.on("drain", go);
      this.call.on("cancelled", go);
    });
  }
}

function asOperatorError(err: unknown): unknown {
  if (!(err instanceof AuthFailure)) return err;
  return err.reason === "unavailable" ? new ControlError("EGRET_OPERATOR_AUTH_UNAVAILABLE", err.message) : new ControlError("EGRET_OPERATOR_UNAUTHENTICATED", err.message);
}

/** Asking for a namespace by name that the caller may not read is refused, not answered empty. */
async function requireNamedNamespaces(access: OperatorAccess, filter: VerdictFilter): Promise<void> {
  const denied: string[] = [];
  for (const ns of filter.namespaces) if (!(await access.canReadNamespace(ns))) denied.push(ns);
  if (denied.length > 0) throw new ControlError("EGRET_OPERATOR_FORBIDDEN", denied.join(", "));
}

/** The request's filters, checked: bounded lists of bounded strings and known enum values. */
export function filterOf(r: ObserveVerdictsRequest): VerdictFilter {
  const texts = (field: string, values: string[]): Set<string> => {
    if (values.length > MAX_FILTER_VALUES) throw new ControlError("EGRET_OBSERVE_BAD_FILTER", `${field}: at most ${MAX_FILTER_VALUES} values`);
    for (const v of values) {
      if (v === "" || v.length > MAX_FILTER_TEXT) throw new ControlError("EGRET_OBSERVE_BAD_FILTER", `${field}: values are 1 to ${MAX_FILTER_TEXT} characters`);
    }
    return new Set(values);
  };
  const enums = <T extends string>(field: string, values: unknown[], prefix: string): Set<T> => {
    for (const v of values) {
      if (typeof v !== "string" || !v.startsWith(prefix) || v.endsWith("_UNSPECIFIED")) throw new ControlError("EGRET_OBSERVE_BAD_FILTER", `${field}: ${String(v)} is not a ${prefix}* value`);
    }
    return texts(field, values as string[]) as Set<T>;
  };
  const since = Number(r.since_unix_ms);
  if (!Number.isFinite(since) || since < 0) throw new ControlError("EGRET_OBSERVE_BAD_FILTER", "since_unix_ms must be a time (ms) or 0");
  return {
    namespaces: texts("namespaces", r.namespaces),
    pods: texts("pods", r.pods),
    verdicts: enums<Verdict>("verdicts", r.verdicts, "VERDICT_"),
    reasons: enums<Reason>("reasons", r.reasons, "REASON_"),
    policies: texts("policies", r.policies),
    sinceMs: since,
  };
}
