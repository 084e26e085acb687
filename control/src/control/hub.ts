// The Watch hub: for every pod some filter watches, the compiled policy and the pod's resolutions,
// versioned, and the subscribers (Watch streams) that receive them as a SNAPSHOT then DELTAs.
//
// Level-based: a change (store entry, policy, labels, namespace labels) only marks what is dirty
// — an IP of the pod, or its policy — and a flush on the next macrotask bumps the pod's version
// and records WHICH keys changed (not their contents). A subscriber at version v receives the
// union of keys changed since v, read back from the current state. So coalescing, back-pressure
// and resume all fall out of one rule: "send what differs between v and now".
// Versions come from one counter per hub (epoch), so a version is never reused by another pod
// or by a re-created pod state; a resume is honoured only for a version this pod issued and
// still has history for, else the subscriber gets a SNAPSHOT.
import { randomBytes } from "node:crypto";
import { applyBreakGlass, breakGlassFor, BREAK_GLASS_LABEL, parseBreakGlass } from "./break-glass.js";
import type { Logger } from "../common/log.js";
import { bytesToIp } from "../proto/ip.js";
import type { Outgoing, Resolution, WatchResponse } from "../proto/messages.js";
import type { ControlMetrics } from "./metrics.js";
import type { CompiledPod, PolicyApi, Policy } from "./policy-api.js";
import type { PolicyCatalog, PolicyChange } from "./policies.js";
import { podKeyOf, type PodRecord, type PodRegistry, type RegistryChange } from "./pods.js";
import type { ResolutionStore } from "./store.js";
import { ControlError } from "./errors.js";
import { withMeshNames, type MeshConfigTable } from "./mesh-config.js";

export interface HubLimits {
  /** Versions of per-pod history kept for resume. */
  historyVersions: number;
  /** How long a pod's state outlives its last subscriber (resume window), ms. */
  retainMs: number;
  /** Watch streams this replica serves at once. */
  maxStreams: number;
}

export const DEFAULT_HUB_LIMITS: HubLimits = { historyVersions: 256, retainMs: 10 * 60_000, maxStreams: 50_000 };

/** Where a subscriber's responses go (a Watch stream, or a test double). */
export interface WatchSink {
  /** Queues a response; false means "buffer full": wait for onDrain before sending more. */
  send(response: Outgoing<WatchResponse>): boolean;
  onDrain(callback: () => void): void;
}

export interface SubscribeRequest {
  namespace: string;
  name: string;
  instanceId: string;
  /** The IPs the filter says its pod has (canonical text); checked against the registry. */
  podIps?: string[];
  resumeEpoch?: string;
  resumeVersion?: number;
}

export interface Subscription {
  ack(version: number, nonce: string): void;
  nack(version: number, nonce: string, detail: string): void;
  close(): void;
}

interface LogEntry {
  version: number;
  /** Destination IPs whose entry changed: text → bytes (kept to avoid re-parsing). */
  ips: Map<string, Uint8Array>;
  policy: boolean;
}

class Subscriber {
  sentVersion = 0;
  lastSentType: "snapshot" | "delta" | undefined;
  ackedVersion = 0;
  needSnapshot = true;
  blocked = false;
  closed = false;
  constructor(
    readonly sink: WatchSink,
    readonly instanceId: string,
  ) {}
}

class PodWatch {
  version = 0;
  logBase = 0;
  log: LogEntry[] = [];
  compiled?: CompiledPod;
  podIps: string[] = [];
  readonly subscribers = new Set<Subscriber>();
  dirtyIps = new Map<string, Uint8Array>();
  dirtyPolicy = false;
  flushScheduled = false;
  retainTimer?: NodeJS.Timeout;
  constructor(readonly key: string) {}
}

export interface HubOptions {
  store: ResolutionStore;
  registry: PodRegistry;
  catalog: PolicyCatalog;
  policyApi: PolicyApi;
  /** ServiceEntry addresses → hosts (mesh-configuration evidence); absent: pod DNS only. */
  meshConfig?: MeshConfigTable;
  log: Logger;
  metrics: ControlMetrics;
  now?: () => number;
  limits?: Partial<HubLimits>;
  clusterCidrs?: string[];
  /** Where the break-glass label applies mesh-wide (control's own namespace); see break-glass.ts. */
  breakGlassNamespace?: string;
  /** The cluster CIDRs replace the default internal ranges instead of adding to them. */
  replaceDefaultClusterCidrs?: boolean;
  /** Fixed epoch (tests); a random one per process otherwise. */
  epoch?: string;
}

export class WatchHub {
  readonly epoch: string;
  private readonly limits: HubLimits;
  private readonly now: () => number;
  private readonly pods = new Map<string, PodWatch>();
  /** Store pod key (pod IP) → watched pod. */
  private readonly ipOwners = new Map<string, PodWatch>();
  /** Subscribers waiting for their pod to become known. */
  private readonly pending = new Map<string, Set<{ sub: Subscriber; req: SubscribeRequest }>>();
  private counter = 0;
  private nonces = 0;
  private streams = 0;
  private readonly unsubscribers: (() => void)[] = [];

  constructor(private readonly o: HubOptions) {
    this.epoch = o.epoch ?? randomBytes(8).toString("hex");
    this.limits = { ...DEFAULT_HUB_LIMITS, ...o.limits };
    this.now = o.now ?? Date.now;
    this.unsubscribers.push(
      o.store.subscribe((podIpKey, ip) => {
        const pw = this.ipOwners.get(podIpKey);
        if (!pw) return;
        // Copied: the notifier's bytes may belong to a caller that reuses its buffer.
        const text = bytesToIp(ip)!;
        if (!pw.dirtyIps.has(text)) pw.dirtyIps.set(text, Uint8Array.from(ip));
        this.schedule(pw);
      }),
      o.registry.onChange((c) => this.onRegistryChange(c)),
      o.catalog.onChange((c) => this.onPolicyChange(c)),
    );
    if (o.meshConfig) this.unsubscribers.push(o.meshConfig.onChange((ips) => this.onMeshConfigChange(ips)));
  }

  get streamCount(): number {
    return this.streams;
  }

  /** Watched pod keys ("namespace/name") — for status and tests. */
  watchedPods(): string[] {
    return [...this.pods.keys()];
  }

  /** Pods with at least one open Watch stream ("namespace/name") → whether a policy selects them. */
  connectedFilters(): Map<string, boolean> {
    const out = new Map<string, boolean>();
    for (const [key, pw] of this.pods) if (pw.subscribers.size > 0) out.set(key, pw.compiled?.selected === true);
    return out;
  }

  /** The compiled policy currently served for a watched pod. */
  compiledFor(namespace: string, name: string): CompiledPod | undefined {
    return this.pods.get(podKeyOf(namespace, name))?.compiled;
  }

  subscribe(req: SubscribeRequest, sink: WatchSink): Subscription {
    if (this.streams >= this.limits.maxStreams) throw new ControlError("EGRET_WATCH_TOO_MANY_STREAMS", `${this.streams} open`);
    this.streams++;
    this.o.metrics.watchStreams.set(this.streams);
    const sub = new Subscriber(sink, req.instanceId);
    const key = podKeyOf(req.namespace, req.name);
    sink.onDrain(() => {
      sub.blocked = false;
      const pw = this.pods.get(key);
      if (pw && pw.subscribers.has(sub)) this.sendTo(pw, sub);
    });
    const pod = this.o.registry.get(req.namespace, req.name);
    if (pod) this.attach(pod, sub, req);
    else {
      this.o.log.info({ pod: key, instance: req.instanceId }, "watch: pod not known yet; the snapshot follows when it is");
      let set = this.pending.get(key);
      if (!set) this.pending.set(key, (set = new Set()));
      set.add({ sub, req });
    }
    return {
      ack: (version) => {
        sub.ackedVersion = Math.max(sub.ackedVersion, version);
        this.o.metrics.watchAcks.inc({ kind: "ack" });
      },
      nack: (version, _nonce, detail) => {
        this.o.metrics.watchAcks.inc({ kind: "nack" });
        this.o.log.warn({ pod: key, instance: req.instanceId, version, detail }, "watch: filter rejected a version");
        const pw = this.pods.get(key);
        sub.needSnapshot = true;
        // Re-sending the very snapshot that was refused would loop; wait for the next change then.
        if (pw && !(sub.lastSentType === "snapshot" && version === pw.version)) this.sendTo(pw, sub);
      },
      close: () => this.detach(key, sub),
    };
  }

  /** Stops every timer and listener (service shutdown). */
  close(): void {
    for (const u of this.unsubscribers) u();
    for (const pw of this.pods.values()) if (pw.retainTimer) clearTimeout(pw.retainTimer);
    this.pods.clear();
    this.ipOwners.clear();
    this.pending.clear();
  }

  // ---- subscription lifecycle ----------------------------------------------------------

  private attach(pod: PodRecord, sub: Subscriber, req: SubscribeRequest): void {
    const key = podKeyOf(pod.namespace, pod.name);
    let pw = this.pods.get(key);
    if (!pw) {
      pw = new PodWatch(key);
      pw.version = pw.logBase = this.nextVersion();
      this.pods.set(key, pw);
      this.setPodIps(pw, pod.ips);
      pw.compiled = this.compile(pod, undefined);
    }
    if (pw.retainTimer) {
      clearTimeout(pw.retainTimer);
      pw.retainTimer = undefined;
    }
    pw.subscribers.add(sub);
    if (req.podIps && req.podIps.length > 0 && pod.ips.length > 0 && !req.podIps.some((ip) => pod.ips.includes(ip))) {
      this.o.metrics.watchIdentityMismatches.inc();
      this.o.log.warn({ pod: key, claimed: req.podIps, known: pod.ips, instance: req.instanceId }, "watch: the filter's pod IPs differ from the pod's; serving the pod by name");
    }
    if (req.resumeEpoch || req.resumeVersion) {
      const resumable = req.resumeEpoch === this.epoch && req.resumeVersion !== undefined && this.covers(pw, req.resumeVersion);
      this.o.metrics.watchResumes.inc({ outcome: resumable ? "delta" : "snapshot" });
      if (resumable) {
        sub.sentVersion = req.resumeVersion!;
        sub.needSnapshot = false;
        if (sub.sentVersion === pw.version) {
          // Nothing changed: confirm the resume with an empty DELTA (base_version == version).
          sub.lastSentType = "delta";
          this.o.metrics.watchResponses.inc({ type: "delta" });
          if (!sub.sink.send({ ...this.base(pw), type: "WATCH_RESPONSE_TYPE_DELTA", base_version: pw.version })) sub.blocked = true;
          return;
        }
      }
    }
    this.sendTo(pw, sub);
  }

  private detach(key: string, sub: Subscriber): void {
    if (sub.closed) return;
    sub.closed = true;
    this.streams--;
    this.o.metrics.watchStreams.set(this.streams);
    const waiting = this.pending.get(key);
    if (waiting) {
      for (const w of waiting) if (w.sub === sub) waiting.delete(w);
      if (waiting.size === 0) this.pending.delete(key);
    }
    const pw = this.pods.get(key);
    if (!pw || !pw.subscribers.delete(sub) || pw.subscribers.size > 0) return;
    pw.retainTimer = setTimeout(() => this.forget(pw), this.limits.retainMs);
    pw.retainTimer.unref();
  }

  private forget(pw: PodWatch): void {
    if (pw.subscribers.size > 0) return;
    this.pods.delete(pw.key);
    for (const ip of pw.podIps) if (this.ipOwners.get(ip) === pw) this.ipOwners.delete(ip);
  }

  private setPodIps(pw: PodWatch, ips: string[]): void {
    for (const ip of pw.podIps) if (this.ipOwners.get(ip) === pw) this.ipOwners.delete(ip);
    pw.podIps = [...ips];
    for (const ip of ips) this.ipOwners.set(ip, pw);
  }

  private nextVersion(): number {
    return ++this.counter;
  }

  /** Whether `version` is one this pod issued and its history still reaches (log is sorted). */
  private covers(pw: PodWatch, version: number): boolean {
    if (version === pw.logBase) return true;
    let lo = 0;
    let hi = pw.log.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const v = pw.log[mid].version;
      if (v === version) return true;
      if (v < version) lo = mid + 1;
      else hi = mid - 1;
    }
    return false;
  }

  // ---- change intake -----------------------------------------------------------------------

  private onRegistryChange(c: RegistryChange): void {
    if (c.kind === "namespace") {
      // The mesh-wide break-glass namespace's labels concern every pod.
      const all = c.name === this.o.breakGlassNamespace;
      if (parseBreakGlass(this.o.registry.namespaceLabels(c.name)) === "invalid") {
        this.o.log.warn({ namespace: c.name, label: BREAK_GLASS_LABEL }, "break-glass label value is neither monitor nor exclude: ignored");
      }
      for (const pw of this.pods.values()) if (all || pw.key.startsWith(c.name + "/")) this.markPolicy(pw);
      return;
    }
    const waiting = c.after ? this.pending.get(c.key) : undefined;
    if (waiting && c.after) {
      this.pending.delete(c.key);
      for (const { sub, req } of waiting) if (!sub.closed) this.attach(c.after, sub, req);
    }
    const pw = this.pods.get(c.key);
    if (!pw) return;
    if (!c.after) {
      // Pod deleted: its subscribers keep their last state; nothing more will change.
      this.setPodIps(pw, []);
      return;
    }
    const ipsChanged = c.after.ips.join(",") !== pw.podIps.join(",");
    if (ipsChanged) {
      this.setPodIps(pw, c.after.ips);
      for (const sub of pw.subscribers) sub.needSnapshot = true;
    }
    this.markPolicy(pw);
    if (ipsChanged) this.schedule(pw, true);
  }

  /** A ServiceEntry changed: every watched pod re-reads those addresses (visibility is applied on read). */
  private onMeshConfigChange(ips: Map<string, Uint8Array>): void {
    for (const pw of this.pods.values()) {
      for (const [text, bytes] of ips) if (!pw.dirtyIps.has(text)) pw.dirtyIps.set(text, bytes);
      this.schedule(pw);
    }
  }

  private onPolicyChange(changes: PolicyChange[]): void {
    for (const pw of this.pods.values()) {
      const pod = this.podOf(pw);
      if (!pod) continue;
      const ns = this.o.registry.namespaceLabels(pod.namespace);
      const identity = { namespace: pod.namespace, name: pod.name, labels: pod.labels, ips: pod.ips };
      const affected = changes.some((ch) =>
        [ch.before, ch.after].some((p: Policy | undefined) => p !== undefined && this.selects(p, identity, ns)),
      );
      if (affected) this.markPolicy(pw);
    }
  }

  private selects(p: Policy, pod: { namespace: string; name: string; labels: Record<string, string>; ips: string[] }, ns: Record<string, string>): boolean {
    try {
      return this.o.policyApi.policySelectsPod(p, pod, ns);
    } catch (err) {
      this.o.log.error({ err, policy: p.ref }, "policySelectsPod failed; recompiling to be safe");
      return true;
    }
  }

  private podOf(pw: PodWatch): PodRecord | undefined {
    const slash = pw.key.indexOf("/");
    return this.o.registry.get(pw.key.slice(0, slash), pw.key.slice(slash + 1));
  }

  private markPolicy(pw: PodWatch): void {
    pw.dirtyPolicy = true;
    this.schedule(pw);
  }

  private schedule(pw: PodWatch, force = false): void {
    if (pw.flushScheduled) return;
    pw.flushScheduled = true;
    setImmediate(() => this.flush(pw, force));
  }

  private compile(pod: PodRecord, previous: CompiledPod | undefined): CompiledPod | undefined {
    try {
      const glass = breakGlassFor(pod.namespace, this.o.breakGlassNamespace, (ns) => this.o.registry.namespaceLabels(ns));
      const compiled = this.o.policyApi.compilePodSnapshot(
        [...applyBreakGlass(this.o.catalog.active(), glass)],
        { namespace: pod.namespace, name: pod.name, labels: pod.labels, ips: pod.ips },
        this.o.registry.namespaceLabels(pod.namespace),
        { clusterCidrs: this.o.clusterCidrs, replaceDefaultClusterCidrs: this.o.replaceDefaultClusterCidrs },
      );
      this.o.metrics.policyCompiles.inc({ outcome: compiled.hash === previous?.hash ? "unchanged" : "changed" });
      return compiled;
    } catch (err) {
      this.o.metrics.policyCompiles.inc({ outcome: "error" });
      this.o.log.error({ err, pod: `${pod.namespace}/${pod.name}` }, "compiling the pod's policy failed; keeping the previous one");
      return previous;
    }
  }

  private flush(pw: PodWatch, force: boolean): void {
    pw.flushScheduled = false;
    if (!this.pods.has(pw.key)) return;
    let policyChanged = false;
    if (pw.dirtyPolicy) {
      pw.dirtyPolicy = false;
      const pod = this.podOf(pw);
      if (pod) {
        const next = this.compile(pod, pw.compiled);
        if (next && next.hash !== pw.compiled?.hash) {
          pw.compiled = next;
          policyChanged = true;
        } else if (next && pw.compiled && next.selected !== pw.compiled.selected) {
          pw.compiled = next;
          policyChanged = true;
        }
      }
    }
    if (!policyChanged && pw.dirtyIps.size === 0 && !force) return;
    pw.version = this.nextVersion();
    pw.log.push({ version: pw.version, ips: pw.dirtyIps, policy: policyChanged });
    pw.dirtyIps = new Map();
    while (pw.log.length > this.limits.historyVersions) pw.logBase = pw.log.shift()!.version;
    for (const sub of pw.subscribers) this.sendTo(pw, sub);
  }

  // ---- responses ---------------------------------------------------------------------------

  private sendTo(pw: PodWatch, sub: Subscriber): void {
    if (sub.blocked || sub.closed) return;
    if (!sub.needSnapshot && sub.sentVersion === pw.version) return;
    let response: Outgoing<WatchResponse> | undefined;
    if (!sub.needSnapshot) response = this.delta(pw, sub.sentVersion);
    if (!response) response = this.snapshot(pw);
    sub.needSnapshot = false;
    sub.sentVersion = pw.version;
    sub.lastSentType = response.type === "WATCH_RESPONSE_TYPE_SNAPSHOT" ? "snapshot" : "delta";
    this.o.metrics.watchResponses.inc({ type: sub.lastSentType });
    if (!sub.sink.send(response)) sub.blocked = true;
  }

  private base(pw: PodWatch): Outgoing<WatchResponse> {
    return {
      epoch: this.epoch,
      version: pw.version,
      nonce: `${this.epoch}-${pw.version}-${++this.nonces}`,
      pod_selected: pw.compiled?.selected ?? false,
      server_time_unix_ms: this.now(),
    };
  }

  private snapshot(pw: PodWatch): Outgoing<WatchResponse> {
    const byIp = new Map<string, Resolution>();
    for (const podIp of pw.podIps) for (const r of this.o.store.entriesOf(podIp)) mergeInto(byIp, r);
    const mesh = this.o.meshConfig;
    if (mesh) {
      for (const m of mesh.resolutionsFor(namespaceOf(pw))) {
        const key = bytesToIp(m.ip)!;
        byIp.set(key, withMeshNames(byIp.get(key), m)!);
      }
    }
    return {
      ...this.base(pw),
      type: "WATCH_RESPONSE_TYPE_SNAPSHOT",
      base_version: 0,
      policy: pw.compiled?.bytes ?? new Uint8Array(0),
      policy_hash: pw.compiled?.hash ?? "",
      upserts: [...byIp.values()],
    };
  }

  /** The DELTA from `from` to the current version, or undefined when history does not reach back. */
  private delta(pw: PodWatch, from: number): Outgoing<WatchResponse> | undefined {
    if (!this.covers(pw, from)) return undefined;
    let ips = new Map<string, Uint8Array>();
    let policy = false;
    // Newest first, stopping at `from`: a subscriber that keeps up reads one entry.
    const last = pw.log.length - 1;
    if (last >= 0 && pw.log[last].version > from && (last === 0 || pw.log[last - 1].version <= from)) ips = pw.log[last].ips;
    else {
      for (let i = last; i >= 0 && pw.log[i].version > from; i--) for (const [text, bytes] of pw.log[i].ips) ips.set(text, bytes);
    }
    for (let i = last; i >= 0 && pw.log[i].version > from; i--) policy ||= pw.log[i].policy;
    const upserts: Resolution[] = [];
    const removals: Uint8Array[] = [];
    for (const [text, bytes] of ips) {
      let r: Resolution | undefined;
      if (pw.podIps.length === 1) r = this.o.store.get(pw.podIps[0], bytes);
      else {
        const merged = new Map<string, Resolution>();
        for (const podIp of pw.podIps) {
          const found = this.o.store.get(podIp, bytes);
          if (found) mergeInto(merged, found);
        }
        r = merged.get(text);
      }
      if (this.o.meshConfig) r = withMeshNames(r, this.o.meshConfig.resolutionFor(namespaceOf(pw), bytes));
      if (r) upserts.push(r);
      else removals.push(bytes);
    }
    return {
      ...this.base(pw),
      type: "WATCH_RESPONSE_TYPE_DELTA",
      base_version: from,
      policy: policy ? pw.compiled?.bytes : undefined,
      policy_hash: policy ? pw.compiled?.hash : "",
      upserts,
      removals,
    };
  }
}

function namespaceOf(pw: PodWatch): string {
  return pw.key.slice(0, pw.key.indexOf("/"));
}

/** Adds `r` to the map keyed by IP text, merging names when a pod has several IPs. */
function mergeInto(map: Map<string, Resolution>, r: Resolution): void {
  const key = bytesToIp(r.ip)!;
  const existing = map.get(key);
  if (!existing) {
    map.set(key, r);
    return;
  }
  const names = new Map(existing.names.map((n) => [n.name, n]));
  for (const n of r.names) {
    const other = names.get(n.name);
    if (!other || other.expires_unix_ms < n.expires_unix_ms) names.set(n.name, n);
  }
  const merged = [...names.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  map.set(key, { ip: r.ip, names: merged, expires_unix_ms: Math.max(existing.expires_unix_ms, r.expires_unix_ms) });
}
