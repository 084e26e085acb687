// A @kubernetes/client-node informer under supervision. client-node's ListWatch relists on 410
// Gone and reconnects when a watch ends, but after any other error it stops for good (it calls
// the error handlers and returns): we restart it with jittered exponential backoff and report
// "synced" only after the first successful list. A long outage never stops it: after
// `staleAfterMs` of continuous failure it reports itself stale (control keeps serving the last
// known state, and says so) and keeps retrying at the longest backoff; the next successful list
// reconciles the cache (client-node's informer diffs it) and clears the mark.
import { ListWatch, Watch, type Informer, type KubeConfig, type KubernetesListObject, type KubernetesObject, type ObjectCache } from "@kubernetes/client-node";
import type { Logger } from "../common/log.js";

export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
  /** Failing continuously this long (ms) marks the informer stale; 0 = never. */
  staleAfterMs: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { initialMs: 1_000, maxMs: 30_000, staleAfterMs: 30_000 };

export interface SupervisedInformerOptions<T extends KubernetesObject> {
  name: string;
  kubeConfig: KubeConfig;
  path: string;
  list: () => Promise<KubernetesListObject<T>>;
  onUpsert: (obj: T) => void;
  onDelete: (obj: T) => void;
  log: Logger;
  onRestart?: () => void;
  /** The outage has lasted staleAfterMs: the cache is what was last seen (retries continue). */
  onStale?: (err: unknown) => void;
  /** A list succeeded again after the informer was stale. */
  onFresh?: () => void;
  backoff?: Partial<BackoffOptions>;
  now?: () => number;
  /** A list that has not answered in this long counts as failed (client-node sets no timeout). */
  listTimeoutMs?: number;
  /** Watch only objects with these labels (the `list` function must ask for the same). */
  labelSelector?: string;
}

/**
 * client-node's Watch, except that once stopped it opens nothing and aborts a watch whose response
 * arrives afterwards. ListWatch.stop() aborts only the request it already holds: a watch still
 * connecting (or not yet started because its list was running) when stop() came was stored later
 * and stayed open, holding the process after its servers had closed (control hung on SIGTERM).
 */
export class StoppableWatch extends Watch {
  private stopped = false;
  private readonly open = new Set<AbortController>();

  override async watch(...args: Parameters<Watch["watch"]>): Promise<AbortController> {
    if (this.stopped) return aborted();
    const controller = await super.watch(...args);
    if (this.stopped) {
      controller.abort();
      return controller;
    }
    this.open.add(controller);
    controller.signal.addEventListener("abort", () => this.open.delete(controller), { once: true });
    return controller;
  }

  stop(): void {
    this.stopped = true;
    for (const c of [...this.open]) c.abort();
    this.open.clear();
  }
}

function aborted(): AbortController {
  const c = new AbortController();
  c.abort();
  return c;
}

export class SupervisedInformer<T extends KubernetesObject> {
  private readonly informer: Informer<T> & ObjectCache<T>;
  private readonly watch: StoppableWatch;
  private readonly listOnce: () => Promise<KubernetesListObject<T>>;
  private readonly backoff: BackoffOptions;
  private readonly now: () => number;
  private syncedOnce = false;
  private failingSince?: number;
  private attempt = 0;
  private errorDuringStart = false;
  private restartTimer?: NodeJS.Timeout;
  private stopped = false;
  private readonly syncWaiters: (() => void)[] = [];
  lastError?: string;
  /** Since when (ms) the cache has been stale, or undefined. */
  staleSince?: number;

  get name(): string {
    return this.o.name;
  }

  constructor(private readonly o: SupervisedInformerOptions<T>) {
    this.backoff = { ...DEFAULT_BACKOFF, ...o.backoff };
    this.now = o.now ?? Date.now;
    const list = async () => {
      let timer: NodeJS.Timeout | undefined;
      const timeoutMs = o.listTimeoutMs ?? 60_000;
      try {
        const result = await Promise.race([
          o.list(),
          new Promise<never>((_, reject) => {
            timer = setTimeout(() => reject(new Error(`list of ${o.path} did not answer within ${timeoutMs} ms`)), timeoutMs);
          }),
        ]);
        this.healthy();
        return result;
      } finally {
        clearTimeout(timer);
      }
    };
    this.listOnce = list;
    // makeInformer(kubeConfig, path, list), with a watch that stays stopped.
    this.watch = new StoppableWatch(o.kubeConfig);
    this.informer = new ListWatch(o.path, this.watch, list, false, o.labelSelector);
    this.informer.on("add", (obj) => this.event(() => o.onUpsert(obj)));
    this.informer.on("update", (obj) => this.event(() => o.onUpsert(obj)));
    this.informer.on("delete", (obj) => this.event(() => o.onDelete(obj)));
    this.informer.on("error", (err) => this.failed(err));
  }

  get synced(): boolean {
    return this.syncedOnce;
  }

  /** Objects currently in the informer's cache. */
  list(): readonly T[] {
    return this.informer.list();
  }

  /** Starts; resolves after the first successful list (retrying with backoff until then). */
  start(): Promise<void> {
    const synced = new Promise<void>((resolve) => this.syncWaiters.push(resolve));
    void this.run();
    return synced;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    this.watch.stop();
    await this.informer.stop();
  }

  private async run(): Promise<void> {
    if (this.stopped) return;
    this.errorDuringStart = false;
    if (this.staleSince !== undefined) {
      // client-node resumes a watch from its last resourceVersion without listing, so a quiet
      // resource would never prove the API is back: probe with one list (the watch then
      // delivers what changed meanwhile, or relists on 410 Gone).
      try {
        await this.listOnce();
      } catch (err) {
        this.failed(err);
        return;
      }
    }
    try {
      await this.informer.start();
    } catch (err) {
      this.failed(err);
      return;
    }
    if (!this.errorDuringStart && this.syncedOnce) {
      this.failingSince = undefined;
      this.attempt = 0;
    }
  }

  private event(apply: () => void): void {
    try {
      apply();
    } catch (err) {
      this.o.log.error({ err, informer: this.o.name }, "informer handler failed");
    }
  }

  private healthy(): void {
    this.failingSince = undefined;
    this.attempt = 0;
    this.lastError = undefined;
    if (this.staleSince !== undefined) {
      this.staleSince = undefined;
      this.o.log.info({ informer: this.o.name }, "informer: the Kubernetes API answers again; reconciling");
      this.o.onFresh?.();
    }
    if (!this.syncedOnce) {
      // The list is applied right after listFn returns; report synced once that has happened.
      setImmediate(() => {
        this.syncedOnce = true;
        for (const w of this.syncWaiters.splice(0)) w();
      });
    }
  }

  private failed(err: unknown): void {
    this.errorDuringStart = true;
    if (this.stopped) return;
    const message = describe(err, this.o.path);
    this.lastError = message;
    this.failingSince ??= this.now();
    if (this.staleSince === undefined && this.backoff.staleAfterMs > 0 && this.now() - this.failingSince >= this.backoff.staleAfterMs) {
      this.staleSince = this.now();
      this.o.log.error({ informer: this.o.name, err: message }, "informer: long outage; serving the last known state (stale) and still retrying");
      this.o.onStale?.(err);
    }
    if (this.restartTimer) return;
    const base = Math.min(this.backoff.maxMs, this.backoff.initialMs * 2 ** this.attempt);
    const delay = Math.round(base * (0.8 + Math.random() * 0.4));
    this.attempt++;
    this.o.log.warn({ informer: this.o.name, err: message, retryInMs: delay }, "informer failed; restarting");
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined;
      this.o.onRestart?.();
      void this.run();
    }, delay);
    this.restartTimer.unref?.();
  }
}

/** The error as one line, with what to check for the statuses operators actually hit. */
export function describe(err: unknown, path: string): string {
  const base = err instanceof Error ? err.message.split("\n")[0] : String(err);
  const e = err as { code?: unknown; statusCode?: unknown; cause?: { code?: unknown } };
  const status = typeof e?.code === "number" ? e.code : typeof e?.statusCode === "number" ? e.statusCode : undefined;
  if (status === 401) return `${base} (HTTP 401 on ${path}: the service account token was refused)`;
  if (status === 403) return `${base} (HTTP 403 on ${path}: RBAC must allow list/watch; see manifests/control/control-rbac.yaml)`;
  if (status === 404 && path.startsWith("/apis/")) return `${base} (HTTP 404 on ${path}: is the CRD installed? kubectl apply -f manifests/crds/)`;
  if (status !== undefined) return `${base} (HTTP ${status} on ${path})`;
  const cause = e?.cause?.code;
  return typeof cause === "string" ? `${base} (${cause} reaching the API server for ${path})` : base;
}
