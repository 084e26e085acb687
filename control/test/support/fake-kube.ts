// An in-test Kubernetes API server: just enough of the real HTTP API for egret control's
// informers, status writes and Events, with the real protocol details — lists carry a
// resourceVersion; `?watch=true&resourceVersion=N` streams chunked JSON lines of ADDED /
// MODIFIED / DELETED / BOOKMARK events after N; a resourceVersion older than the compaction
// point gets a 410 Gone (as an ERROR event in the stream, like the real server, or as an HTTP
// status); status subresources accept PUT and merge PATCH; Events accept POST. Tests inject
// faults (failing requests, dropped watches, compaction) to drive the client's recovery paths.
import { randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { KubeConfig } from "@kubernetes/client-node";

export type Collection = "namespaces" | "pods" | "egresspolicies" | "clusteregresspolicies" | "events" | "serviceentries" | "serviceaccounts" | "leases" | "secrets" | "configmaps";

interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata: { name: string; namespace?: string; resourceVersion?: string; generation?: number; uid?: string; generateName?: string; [k: string]: unknown };
  [k: string]: unknown;
}

interface WatchEvent {
  rv: number;
  collection: Collection;
  type: "ADDED" | "MODIFIED" | "DELETED";
  object: KubeObject;
}

interface OpenWatch {
  collection: Collection;
  res: ServerResponse;
  bookmarks: boolean;
  timer?: NodeJS.Timeout;
}

const KINDS: Record<Collection, { apiVersion: string; kind: string; namespaced: boolean }> = {
  namespaces: { apiVersion: "v1", kind: "Namespace", namespaced: false },
  pods: { apiVersion: "v1", kind: "Pod", namespaced: true },
  events: { apiVersion: "v1", kind: "Event", namespaced: true },
  egresspolicies: { apiVersion: "egret.dev/v1alpha1", kind: "EgressPolicy", namespaced: true },
  clusteregresspolicies: { apiVersion: "egret.dev/v1alpha1", kind: "ClusterEgressPolicy", namespaced: false },
  serviceentries: { apiVersion: "networking.istio.io/v1", kind: "ServiceEntry", namespaced: true },
  serviceaccounts: { apiVersion: "v1", kind: "ServiceAccount", namespaced: true },
  leases: { apiVersion: "coordination.k8s.io/v1", kind: "Lease", namespaced: true },
  secrets: { apiVersion: "v1", kind: "Secret", namespaced: true },
  configmaps: { apiVersion: "v1", kind: "ConfigMap", namespaced: true },
};

/** A POST to a path that is not a collection (TokenReview, SubjectAccessReview, …): body in, status and body out. */
export type PostHandler = (body: unknown, path: string) => { status: number; body: unknown };

export interface RequestRecord {
  method: string;
  collection?: Collection;
  watch: boolean;
  resourceVersion?: string;
  status: number;
  /** The request's Authorization header (tells test clients apart). */
  user?: string;
}

export class FakeKube {
  private server!: Server;
  private rv = 100;
  private compactedRv = 0;
  private readonly objects = new Map<Collection, Map<string, KubeObject>>();
  private readonly log: WatchEvent[] = [];
  private readonly watches = new Set<OpenWatch>();
  private readonly paused = new Set<Collection>();
  /** Watch requests on these collections wait (no response headers) until releaseWatches(). */
  private readonly held = new Map<Collection, (() => void)[]>();
  private readonly faults: { collection: Collection; watch: boolean | "any"; status: number; remaining: number }[] = [];
  readonly requests: RequestRecord[] = [];
  /** How 410 Gone is delivered on a watch: an ERROR event in a 200 stream (real server) or HTTP 410. */
  goneAs: "event" | "status" = "event";
  bookmarkIntervalMs = 200;
  port = 0;
  private readonly postHandlers = new Map<string, PostHandler>();

  /** Serves POST `path` (e.g. /apis/authentication.k8s.io/v1/tokenreviews) with `handler`. */
  handlePost(path: string, handler: PostHandler): void {
    this.postHandlers.set(path, handler);
  }

  async start(): Promise<this> {
    this.server = createServer((req, res) => this.handle(req, res));
    await new Promise<void>((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  async stop(): Promise<void> {
    for (const w of this.watches) this.endWatch(w);
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  kubeConfig(): KubeConfig {
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: "fake", server: `http://127.0.0.1:${this.port}`, skipTLSVerify: true }],
      users: [{ name: "egret", token: "test-token" }],
      contexts: [{ name: "fake", cluster: "fake", user: "egret" }],
      currentContext: "fake",
    });
    return kc;
  }

  // ---- test controls -------------------------------------------------------------------

  /** Creates or replaces an object (bumps generation when anything but status changes). */
  upsert(collection: Collection, obj: KubeObject): KubeObject {
    const map = this.map(collection);
    const key = this.key(collection, obj.metadata.namespace, obj.metadata.name);
    const existing = map.get(key);
    const { status: _s, ...specPart } = obj;
    const { status: _e, ...existingSpec } = existing ?? ({} as KubeObject);
    const specChanged = !existing || JSON.stringify({ ...specPart, metadata: undefined }) !== JSON.stringify({ ...existingSpec, metadata: undefined });
    const stored: KubeObject = {
      ...obj,
      apiVersion: KINDS[collection].apiVersion,
      kind: KINDS[collection].kind,
      status: obj.status ?? existing?.status,
      metadata: {
        ...obj.metadata,
        // A new object gets a new UID (a pod recreated under the same name is another pod).
        uid: existing?.metadata.uid ?? `uid-${collection}-${obj.metadata.name}-${randomUUID().slice(0, 8)}`,
        generation: (existing?.metadata.generation ?? 0) + (specChanged ? 1 : 0),
        resourceVersion: String(++this.rv),
      },
    };
    map.set(key, stored);
    this.publish({ rv: this.rv, collection, type: existing ? "MODIFIED" : "ADDED", object: stored });
    return stored;
  }

  delete(collection: Collection, namespace: string | undefined, name: string): void {
    const map = this.map(collection);
    const key = this.key(collection, namespace, name);
    const existing = map.get(key);
    if (!existing) return;
    map.delete(key);
    const object = { ...existing, metadata: { ...existing.metadata, resourceVersion: String(++this.rv) } };
    this.publish({ rv: this.rv, collection, type: "DELETED", object });
  }

  get(collection: Collection, namespace: string | undefined, name: string): KubeObject | undefined {
    return this.map(collection).get(this.key(collection, namespace, name));
  }

  list(collection: Collection): KubeObject[] {
    return [...this.map(collection).values()];
  }

  /** The next `count` list (watch=false), watch (true) or any requests for `collection` fail with `status` (0: never answer). */
  failNext(collection: Collection, watch: boolean | "any", status: number, count = 1): void {
    this.faults.push({ collection, watch, status, remaining: count });
  }

  /** Removes every pending injected failure (the API "comes back"). */
  clearFaults(): void {
    this.faults.length = 0;
  }

  /** Ends every open watch stream (the clients reconnect from their last resourceVersion). */
  dropWatches(): void {
    this.paused.clear();
    for (const w of [...this.watches]) this.endWatch(w);
  }

  /** New watch requests on `collection` get no answer until releaseWatches(): a watch still connecting. */
  holdWatches(collection: Collection): void {
    if (!this.held.has(collection)) this.held.set(collection, []);
  }

  /** Answers the held watch requests of `collection` and stops holding new ones. */
  releaseWatches(collection: Collection): void {
    const waiting = this.held.get(collection) ?? [];
    this.held.delete(collection);
    for (const answer of waiting) answer();
  }

  /** Watch streams of `collection` open now (answered and not closed by either side). */
  openWatches(collection: Collection): number {
    return [...this.watches].filter((w) => w.collection === collection).length;
  }

  /** Open watches on `collection` stop receiving events and bookmarks (a stalled connection). */
  pauseWatches(collection: Collection): void {
    this.paused.add(collection);
  }

  /** Every version of `collection`'s objects written since start (or the last compact()), oldest first. */
  history(collection: Collection): { type: "ADDED" | "MODIFIED" | "DELETED"; object: KubeObject }[] {
    return this.log.filter((e) => e.collection === collection).map((e) => ({ type: e.type, object: e.object }));
  }

  /** Forgets history up to now: watches from an older resourceVersion get 410 Gone. */
  compact(): void {
    this.compactedRv = this.rv;
    this.log.length = 0;
  }

  // ---- HTTP ----------------------------------------------------------------------------

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? "/", "http://localhost");
    const route = this.route(url.pathname);
    const watch = url.searchParams.get("watch") === "true";
    const rvParam = url.searchParams.get("resourceVersion") ?? undefined;
    const record: RequestRecord = { method: req.method ?? "GET", collection: route?.collection, watch, resourceVersion: rvParam, status: 200, user: req.headers.authorization };
    this.requests.push(record);
    const reply = (status: number, body: unknown) => {
      record.status = status;
      res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
    };
    const post = req.method === "POST" ? this.postHandlers.get(url.pathname) : undefined;
    if (post) return this.servePost(req, url.pathname, post, reply);
    if (!route) return reply(404, status(404, "NotFound", `no route for ${url.pathname}`));
    const fault = this.faults.find((f) => f.remaining > 0 && f.collection === route.collection && (f.watch === "any" || f.watch === watch) && req.method === "GET");
    if (fault) {
      fault.remaining--;
      if (fault.status === 0) {
        record.status = 0; // hangs until the client gives up or the server stops
        return;
      }
      return reply(fault.status, status(fault.status, "InternalError", "injected fault"));
    }
    let body = "";
    req.on("data", (c: Buffer) => (body += c.toString()));
    req.on("end", () => {
      try {
        if (req.method === "GET" && !route.name) return watch ? this.watch(route.collection, rvParam, url, res, record) : reply(200, this.listBody(route.collection));
        if (req.method === "GET" && route.name) {
          const obj = this.get(route.collection, route.namespace, route.name);
          return obj ? reply(200, obj) : reply(404, status(404, "NotFound", `${route.name} not found`));
        }
        if (req.method === "POST" && route.collection === "events" && !route.name) {
          const obj = JSON.parse(body) as KubeObject;
          const name = obj.metadata.name ?? `${obj.metadata.generateName ?? "event-"}${++this.rv}`;
          return reply(201, this.upsert("events", { ...obj, metadata: { ...obj.metadata, name, namespace: route.namespace } }));
        }
        if ((req.method === "PATCH" || req.method === "PUT") && route.name && route.subresource === "status") {
          const existing = this.get(route.collection, route.namespace, route.name);
          if (!existing) return reply(404, status(404, "NotFound", `${route.name} not found`));
          const ct = req.headers["content-type"] ?? "";
          if (req.method === "PATCH" && !ct.startsWith("application/merge-patch+json")) {
            return reply(415, status(415, "UnsupportedMediaType", `unsupported patch type ${ct}`));
          }
          const patch = JSON.parse(body) as { status?: unknown };
          const updated = { ...existing, status: req.method === "PUT" ? patch.status : mergePatch(existing.status, patch.status) };
          const stored = this.upsert(route.collection, updated);
          stored.metadata.generation = existing.metadata.generation; // status writes never bump generation
          return reply(200, stored);
        }
        if (req.method === "POST" && !route.name) return this.create(route.collection, route.namespace, JSON.parse(body) as KubeObject, reply);
        if (req.method === "PUT" && route.name && !route.subresource) return this.replace(route.collection, route.namespace, route.name, JSON.parse(body) as KubeObject, reply);
        if (req.method === "DELETE" && route.name && !route.subresource) {
          const existing = this.get(route.collection, route.namespace, route.name);
          if (!existing) return reply(404, status(404, "NotFound", `${route.name} not found`));
          this.delete(route.collection, route.namespace, route.name);
          return reply(200, existing);
        }
        reply(405, status(405, "MethodNotAllowed", `${req.method} ${url.pathname}`));
      } catch (err) {
        reply(400, status(400, "BadRequest", (err as Error).message));
      }
    });
  }

  private servePost(req: IncomingMessage, path: string, handler: PostHandler, reply: (status: number, body: unknown) => void): void {
    let body = "";
    req.on("data", (c: Buffer) => (body += c.toString()));
    req.on("end", () => {
      let parsed: unknown;
      try {
        parsed = JSON.parse(body);
      } catch (err) {
        return reply(400, status(400, "BadRequest", (err as Error).message));
      }
      const out = handler(parsed, path);
      reply(out.status, out.body);
    });
  }

  /** POST to a collection: 409 AlreadyExists when the name is taken, like the real server. */
  private create(collection: Collection, namespace: string | undefined, obj: KubeObject, reply: (status: number, body: unknown) => void): void {
    if (!obj.metadata?.name) return reply(422, status(422, "Invalid", "metadata.name: Required value"));
    if (this.get(collection, namespace, obj.metadata.name)) {
      return reply(409, status(409, "AlreadyExists", `${collection} "${obj.metadata.name}" already exists`));
    }
    reply(201, this.upsert(collection, { ...obj, metadata: { ...obj.metadata, namespace } }));
  }

  /** PUT to an object: optimistic concurrency on metadata.resourceVersion (409 Conflict when stale). */
  private replace(collection: Collection, namespace: string | undefined, name: string, obj: KubeObject, reply: (status: number, body: unknown) => void): void {
    const existing = this.get(collection, namespace, name);
    if (!existing) return reply(404, status(404, "NotFound", `${collection} "${name}" not found`));
    const rv = obj.metadata?.resourceVersion;
    if (rv !== undefined && rv !== existing.metadata.resourceVersion) {
      return reply(409, status(409, "Conflict", `Operation cannot be fulfilled on ${collection} "${name}": the object has been modified; please apply your changes to the latest version and try again`));
    }
    reply(200, this.upsert(collection, { ...obj, metadata: { ...obj.metadata, name, namespace } }));
  }

  private route(path: string): { collection: Collection; namespace?: string; name?: string; subresource?: string } | undefined {
    const parts = path.split("/").filter(Boolean);
    let rest: string[];
    if (parts[0] === "api" && parts[1] === "v1") rest = parts.slice(2);
    else if (parts[0] === "apis" && parts[1] === "egret.dev" && parts[2] === "v1alpha1") rest = parts.slice(3);
    else if (parts[0] === "apis" && parts[1] === "networking.istio.io" && parts[2] === "v1") rest = parts.slice(3);
    else if (parts[0] === "apis" && parts[1] === "coordination.k8s.io" && parts[2] === "v1") rest = parts.slice(3);
    else return undefined;
    let namespace: string | undefined;
    if (rest[0] === "namespaces" && rest.length >= 3) {
      namespace = rest[1];
      rest = rest.slice(2);
    }
    const collection = rest[0] as Collection;
    if (!(collection in KINDS)) return undefined;
    return { collection, namespace, name: rest[1], subresource: rest[2] };
  }

  private listBody(collection: Collection) {
    return {
      apiVersion: KINDS[collection].apiVersion,
      kind: `${KINDS[collection].kind}List`,
      metadata: { resourceVersion: String(this.rv) },
      // Real lists of built-in kinds omit kind/apiVersion on items; keep them for CRs only.
      items: this.list(collection).map((o) => (KINDS[collection].apiVersion === "v1" ? { ...o, kind: undefined, apiVersion: undefined } : o)),
    };
  }

  private watch(collection: Collection, rvParam: string | undefined, url: URL, res: ServerResponse, record: RequestRecord): void {
    const held = this.held.get(collection);
    if (held) {
      held.push(() => this.watch(collection, rvParam, url, res, record));
      return;
    }
    const from = rvParam ? Number(rvParam) : this.rv;
    if (from < this.compactedRv) {
      const gone = status(410, "Expired", `too old resource version: ${from} (${this.compactedRv})`);
      record.status = 410;
      if (this.goneAs === "status") {
        res.writeHead(410, { "content-type": "application/json" }).end(JSON.stringify(gone));
      } else {
        res.writeHead(200, { "content-type": "application/json", "transfer-encoding": "chunked" });
        res.end(JSON.stringify({ type: "ERROR", object: gone }) + "\n");
      }
      return;
    }
    res.writeHead(200, { "content-type": "application/json", "transfer-encoding": "chunked" });
    const w: OpenWatch = { collection, res, bookmarks: url.searchParams.get("allowWatchBookmarks") === "true" };
    this.watches.add(w);
    for (const e of this.log) if (e.collection === collection && e.rv > from) this.send(w, e.type, e.object);
    // Bookmarks keep the client's inactivity timer fed and move its resourceVersion forward.
    w.timer = setInterval(() => {
      this.send(w, "BOOKMARK", { apiVersion: KINDS[collection].apiVersion, kind: KINDS[collection].kind, metadata: { name: "", resourceVersion: String(this.rv) } });
    }, this.bookmarkIntervalMs);
    res.on("close", () => {
      clearInterval(w.timer);
      this.watches.delete(w);
    });
  }

  private publish(e: WatchEvent): void {
    this.log.push(e);
    for (const w of this.watches) if (w.collection === e.collection) this.send(w, e.type, e.object);
  }

  private send(w: OpenWatch, type: string, object: unknown): void {
    if (this.paused.has(w.collection) || w.res.writableEnded) return;
    w.res.write(JSON.stringify({ type, object }) + "\n");
  }

  private endWatch(w: OpenWatch): void {
    clearInterval(w.timer);
    this.watches.delete(w);
    if (!w.res.writableEnded) w.res.end();
  }

  private map(collection: Collection): Map<string, KubeObject> {
    let m = this.objects.get(collection);
    if (!m) this.objects.set(collection, (m = new Map()));
    return m;
  }

  private key(collection: Collection, namespace: string | undefined, name: string): string {
    return KINDS[collection].namespaced ? `${namespace}/${name}` : name;
  }
}

function status(code: number, reason: string, message: string) {
  return { apiVersion: "v1", kind: "Status", status: "Failure", code, reason, message, metadata: {} };
}

/** RFC 7386 JSON merge patch. */
function mergePatch(target: unknown, patch: unknown): unknown {
  if (patch === null || typeof patch !== "object" || Array.isArray(patch)) return patch;
  const out: Record<string, unknown> = target && typeof target === "object" && !Array.isArray(target) ? { ...(target as object) } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

/** Builders for the objects tests create. */
export const kube = {
  namespace: (name: string, labels: Record<string, string> = {}): KubeObject => ({ metadata: { name, labels } }),
  /** `ip`: one address or several (status.podIPs); `nodeName`: spec.nodeName. */
  /** `sidecar`: an injected `istio-proxy` container ("native": a restartable init container). */
  pod: (namespace: string, name: string, ip: string | string[], labels: Record<string, string>, extra: { hostNetwork?: boolean; phase?: string; nodeName?: string; sidecar?: boolean | "native" } = {}): KubeObject => {
    const ips = typeof ip === "string" ? [ip] : ip;
    const proxy = { name: "istio-proxy", image: "proxyv2" };
    const containers = [{ name: "app", image: "app" }, ...(extra.sidecar === true ? [proxy] : [])];
    const init = extra.sidecar === "native" ? { initContainers: [{ ...proxy, restartPolicy: "Always" }] } : {};
    return {
      metadata: { name, namespace, labels },
      spec: { containers, ...init, hostNetwork: extra.hostNetwork, ...(extra.nodeName ? { nodeName: extra.nodeName } : {}) },
      status: { phase: extra.phase ?? "Running", podIP: ips[0], podIPs: ips.map((x) => ({ ip: x })) },
    };
  },
};
