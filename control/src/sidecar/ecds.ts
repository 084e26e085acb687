// The filter slot of a sidecar whose module arrives the way Istio delivers it: istiod pushes an
// ECDS resource naming a remote module (url + sha256); istio-agent downloads it (module-fetch.ts)
// and hands Envoy a local file, or, when the download fails, does what its version does (istio/
// istio pkg/wasm/convert.go MaybeConvertWasmExtensionConfig, pkg/istio-agent/xds_proxy.go
// rewriteAndForward; read at tags 1.20.0, 1.24.0, 1.25.0 and HEAD 2026-08):
// - Istio 1.20–1.24: the ECDS update is NACKed (only the deprecated `fail_open` is read; false).
//   A running sidecar keeps the filter it had — or none, at first install: Egret silently not
//   enforced; a new sidecar's listener never warms (initial_fetch_timeout 0s): not Ready.
// - Istio ≥ 1.25: `failure_policy: FAIL_CLOSED` → the filter is replaced by a deny-all network
//   RBAC filter (stat prefix `wasm-default-deny`) until the next push.
// Like Envoy, a new filter applies to new connections; open ones finish on the one they started
// with (its host is closed once they are gone).
import type { EnvoyHost } from "../host/index.js";
import type { Logger } from "../common/log.js";
import { fetchModule, ModuleFetchError, type FetchOptions } from "./module-fetch.js";

/** What failure does: "nack" (Istio 1.20–1.24) or "deny-all" (Istio ≥ 1.25, FAIL_CLOSED). */
export type DownloadFailure = "nack" | "deny-all";

/** The Istio minor given on the command line → its download-failure behaviour. */
export function failureForIstio(version: string): DownloadFailure {
  const m = /^1\.(\d+)(?:\.\d+)?$/.exec(version);
  if (!m) throw new Error(`"${version}" is not an Istio version (expected 1.MINOR, e.g. 1.24 or 1.25)`);
  const minor = Number(m[1]);
  if (minor < 20) throw new Error(`Istio ${version}: network-filter modules through ECDS need Istio 1.20 or later`);
  return minor >= 25 ? "deny-all" : "nack";
}

/** What handles a new connection: the current module's host, no filter, the fallback, or nothing (listener warming). */
export type FilterChoice = EnvoyHost | "passthrough" | "deny-all" | "warming";

export interface EcdsOptions {
  failure: DownloadFailure;
  /** Builds the host for a downloaded module (same plugin configuration each time). */
  createHost: (wasm: Buffer) => Promise<EnvoyHost>;
  logger: Logger;
  fetch?: FetchOptions;
  /** Before any push: "passthrough" (a sidecar from before the EnvoyFilter) or "warming" (a new pod whose config names the module). */
  initial: "passthrough" | "warming";
}

export interface EcdsStatus {
  state: "passthrough" | "warming" | "module" | "deny-all";
  sha256?: string;
  pushes: number;
  acks: number;
  nacks: number;
  fallbacks: number;
  /** Connections the deny-all fallback closed (Envoy: wasm-default-deny rbac denied). */
  rbacDenied: number;
  lastError?: string;
}

export class EcdsFilter {
  private choice: FilterChoice;
  private sha256?: string;
  private readonly draining = new Set<EnvoyHost>();
  private drainTimer?: NodeJS.Timeout;
  private queue: Promise<unknown> = Promise.resolve();
  readonly counts = { pushes: 0, acks: 0, nacks: 0, fallbacks: 0, rbacDenied: 0 };
  private lastError?: string;

  constructor(private readonly o: EcdsOptions) {
    this.choice = o.initial;
  }

  /** The filter for a new connection. */
  current(): FilterChoice {
    if (this.choice === "deny-all") this.counts.rbacDenied++;
    return this.choice;
  }

  /** The module's host, when one is in force. */
  get host(): EnvoyHost | undefined {
    return typeof this.choice === "object" ? this.choice : undefined;
  }

  /** Ready as Envoy's listener is: anything but a listener still waiting for its filter. */
  get ready(): boolean { return this.choice !== "warming"; }

  status(): EcdsStatus {
    const state = typeof this.choice === "object" ? "module" : this.choice;
    return { state, ...(this.sha256 ? { sha256: this.sha256 } : {}), ...this.counts, ...(this.lastError ? { lastError: this.lastError } : {}) };
  }

  /** istiod pushed the resource naming `url` and `sha256`: download, then apply or fail as the version does. Pushes are applied in order. */
  push(url: string, sha256: string): Promise<"applied" | "nack" | "deny-all"> {
    const next = this.queue.then(() => this.apply(url, sha256));
    this.queue = next.catch(() => undefined);
    return next;
  }

  private async apply(url: string, sha256: string): Promise<"applied" | "nack" | "deny-all"> {
    this.counts.pushes++;
    if (typeof this.choice === "object" && this.sha256 === sha256) { this.counts.acks++; return "applied"; }
    let bytes: Buffer;
    try {
      bytes = await fetchModule(url, sha256, { ...this.o.fetch, onAttempt: (n, err) => this.o.logger.warn({ attempt: n, url, err }, "wasm module download attempt failed") });
    } catch (e) {
      return this.failed(e instanceof ModuleFetchError ? e.message : (e as Error).message);
    }
    let host: EnvoyHost;
    try {
      host = await this.o.createHost(bytes);
    } catch (e) {
      // Envoy refuses the module (the filter would not load): the update is rejected.
      return this.failed(`module ${sha256} does not load: ${(e as Error).message}`);
    }
    const old = this.host;
    this.choice = host;
    this.sha256 = sha256;
    this.lastError = undefined;
    this.counts.acks++;
    if (old) this.drain(old);
    this.o.logger.info({ sha256, url }, "ECDS: filter module in force for new connections");
    return "applied";
  }

  private failed(error: string): "nack" | "deny-all" {
    this.lastError = error;
    if (this.o.failure === "nack") {
      this.counts.nacks++;
      this.o.logger.error({ err: error }, "convert the wasm config: NACK (Istio 1.20–1.24: the previous filter stays)");
      return "nack";
    }
    this.counts.fallbacks++;
    const old = this.host;
    this.choice = "deny-all";
    this.sha256 = undefined;
    if (old) this.drain(old);
    this.o.logger.error({ err: error }, "convert the wasm config: deny-all RBAC filter wasm-default-deny in place of the module (Istio >= 1.25, FAIL_CLOSED)");
    return "deny-all";
  }

  /** The old module's connections finish on it; its host closes once they are gone. */
  private drain(host: EnvoyHost): void {
    this.draining.add(host);
    if (this.drainTimer) return;
    this.drainTimer = setInterval(() => {
      for (const h of this.draining) {
        if (h.openConnections > 0) continue;
        this.draining.delete(h);
        void h.close();
      }
      if (this.draining.size === 0) { clearInterval(this.drainTimer); this.drainTimer = undefined; }
    }, 200);
    this.drainTimer.unref();
  }

  async close(): Promise<void> {
    await this.queue;
    if (this.drainTimer) clearInterval(this.drainTimer);
    for (const h of this.draining) await h.close();
    this.draining.clear();
    await this.host?.close();
  }
}
