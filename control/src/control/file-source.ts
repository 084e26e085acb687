// File mode: policies from files or folders, pods and namespace labels from one YAML file,
// reloaded when any of them changes (fs.watch on the containing folders + debounce, because
// editors and `kubectl cp`-like tools replace files rather than write them in place).
//
// Pods file format (YAML or JSON):
//   namespaces:                 # optional; namespaces not listed have no labels
//     - name: shop
//       labels: { team: shop }
//   pods:
//     - name: web-1
//       namespace: shop
//       ips: [198.18.1.10]       # or `ip: 198.18.1.10`, or both when `ip` is the first of `ips`
//                                # (a Pod's podIP is podIPs[0]); IPv4 and/or IPv6
//       labels: { app: web }
//       node: worker-1           # the node it runs on (spec.nodeName): only that node's agent
//                                # may deliver DNS evidence for it
//       sidecar: false           # optional: the pod runs no Envoy sidecar (true: it does); unset:
//                                # unknown — coverage then says `filter-not-connected`
//       annotations:             # optional; Istio's traffic.sidecar.istio.io/excludeOutboundPorts
//         traffic.sidecar.istio.io/excludeOutboundPorts: "5432"   # and excludeOutboundIPRanges
//                                # name bypass causes (excluded-port, excluded-range)
import { readFileSync, statSync, watch, type FSWatcher } from "node:fs";
import { basename, dirname, resolve } from "node:path";
import { LineCounter, isMap, isNode, isScalar, parseDocument } from "yaml";
import type { Logger } from "../common/log.js";
import { ControlError } from "./errors.js";
import type { ControlMetrics } from "./metrics.js";
import type { PolicyApi } from "./policy-api.js";
import type { PolicyCatalog } from "./policies.js";
import { canonicalIp, outboundExclusions, type PodRecord, type PodRegistry } from "./pods.js";
import type { ControlSource } from "./service.js";
import type { MeshConfigTable } from "./mesh-config.js";
import { loadServiceEntryFiles } from "./service-entry-files.js";

export interface PodsFile {
  pods: PodRecord[];
  namespaces: Record<string, Record<string, string>>;
}

/** A value for an error message: short, and never throwing (YAML aliases can make cycles). */
function show(v: unknown): string {
  try {
    const text = JSON.stringify(v) ?? String(v);
    return text.length > 80 ? text.slice(0, 77) + "..." : text;
  } catch {
    return Array.isArray(v) ? "a self-referencing list" : "a self-referencing value";
  }
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const POD_NAME = /^[a-z0-9]([-.a-z0-9]{0,251}[a-z0-9])?$/;
const NODE_NAME = POD_NAME;

/** Parses a pods file; throws ControlError(EGRET_PODS_FILE_INVALID) naming file:line and the field. */
export function parsePodsFile(text: string, file: string): PodsFile {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false });
  /** Throws naming the location of `path` (of its key, with `atKey`, e.g. for unknown keys). */
  const fail = (path: (string | number)[], what: string, fix: string, atKey = false): never => {
    let node: unknown = path.length ? doc.getIn(path, true) : doc.contents;
    if (atKey && path.length > 0) {
      const parent = path.length > 1 ? doc.getIn(path.slice(0, -1), true) : doc.contents;
      const last = path[path.length - 1];
      if (isMap(parent)) node = parent.items.find((p) => isScalar(p.key) && p.key.value === last)?.key ?? node;
    }
    const offset = isNode(node) && node.range ? node.range[0] : 0;
    const pos = lines.linePos(offset);
    const field = path.map((p, i) => (typeof p === "number" ? `[${p}]` : i === 0 ? p : `.${p}`)).join("") || "(document)";
    throw new ControlError("EGRET_PODS_FILE_INVALID", `${file}:${pos.line}:${pos.col}: ${field}: ${what} (${fix})`);
  };
  if (doc.errors.length > 0) {
    const e = doc.errors[0];
    const pos = lines.linePos(e.pos[0]);
    throw new ControlError("EGRET_PODS_FILE_INVALID", `${file}:${pos.line}:${pos.col}: not valid YAML: ${e.message.split("\n")[0]}`);
  }
  let root: unknown;
  try {
    root = doc.toJS({ maxAliasCount: 100 }) ?? {};
  } catch (err) {
    // Unresolved aliases, alias bombs, bad tags: YAML that parses but cannot become data.
    throw new ControlError("EGRET_PODS_FILE_INVALID", `${file}: not usable YAML: ${(err as Error).message.split("\n")[0]}`, { cause: err });
  }
  if (typeof root !== "object" || root === null || Array.isArray(root)) fail([], "expected a mapping with `pods` (and optional `namespaces`)", "see the format in control/src/control/README.md");
  const obj = root as Record<string, unknown>;
  for (const k of Object.keys(obj)) if (k !== "pods" && k !== "namespaces") fail([k], `unknown key "${k}"`, "only `pods` and `namespaces` are allowed", true);

  const labelsAt = (value: unknown, path: (string | number)[]): Record<string, string> => {
    if (value === undefined || value === null) return {};
    if (typeof value !== "object" || Array.isArray(value)) fail(path, "labels must be a mapping of strings", "write `labels: { key: value }`");
    const out: Record<string, string> = {};
    for (const [k, v] of Object.entries(value as object)) {
      if (typeof v !== "string" && typeof v !== "number" && typeof v !== "boolean") fail([...path, k], "a label value must be a string", "quote it");
      out[k] = String(v);
    }
    return out;
  };

  const namespaces: Record<string, Record<string, string>> = {};
  if (obj.namespaces !== undefined && obj.namespaces !== null) {
    if (!Array.isArray(obj.namespaces)) fail(["namespaces"], "must be a list", "write `- name: NS` items with optional `labels`");
    (obj.namespaces as unknown[]).forEach((n, i) => {
      const ns = n as Record<string, unknown>;
      if (typeof ns !== "object" || ns === null || typeof ns.name !== "string" || !DNS_LABEL.test(ns.name)) {
        fail(["namespaces", i], "each namespace needs a `name` that is a DNS label", "e.g. `name: shop`");
      }
      if (ns.name as string in namespaces) fail(["namespaces", i, "name"], `namespace "${ns.name}" is listed twice`, "merge the entries");
      namespaces[ns.name as string] = labelsAt(ns.labels, ["namespaces", i, "labels"]);
    });
  }

  const pods: PodRecord[] = [];
  const seenPods = new Set<string>();
  const ipOwner = new Map<string, string>();
  if (obj.pods !== undefined && obj.pods !== null && !Array.isArray(obj.pods)) fail(["pods"], "must be a list", "write `- name: …` items");
  ((obj.pods as unknown[] | undefined) ?? []).forEach((p, i) => {
    if (typeof p !== "object" || p === null || Array.isArray(p)) fail(["pods", i], "each pod must be a mapping", "give name, namespace, ips, labels");
    const pod = p as Record<string, unknown>;
    for (const k of Object.keys(pod)) {
      if (!["name", "namespace", "ip", "ips", "labels", "node", "sidecar", "annotations"].includes(k)) fail(["pods", i, k], `unknown key "${k}"`, "pods take name, namespace, ip or ips, labels, node, sidecar, annotations", true);
    }
    if (typeof pod.name !== "string" || !POD_NAME.test(pod.name)) fail(["pods", i, "name"], "a pod needs a `name` (lowercase DNS subdomain)", "e.g. `name: web-1`");
    if (typeof pod.namespace !== "string" || !DNS_LABEL.test(pod.namespace)) fail(["pods", i, "namespace"], "a pod needs a `namespace` (DNS label)", "e.g. `namespace: shop`");
    const key = `${pod.namespace}/${pod.name}`;
    if (seenPods.has(key)) fail(["pods", i, "name"], `pod ${key} is listed twice`, "pod names are unique per namespace");
    seenPods.add(key);
    const rawIps: unknown[] = pod.ips !== undefined ? (Array.isArray(pod.ips) ? pod.ips : [Symbol("bad")]) : pod.ip !== undefined ? [pod.ip] : [];
    if (pod.ips !== undefined && !Array.isArray(pod.ips)) fail(["pods", i, "ips"], "must be a list of IP addresses", "e.g. `ips: [198.18.1.10]`");
    if (rawIps.length === 0) fail(["pods", i], "a pod needs at least one IP (`ip` or `ips`)", "add the pod's IP address");
    const ips: string[] = [];
    rawIps.forEach((ip, j) => {
      const path = pod.ips !== undefined ? ["pods", i, "ips", j] : ["pods", i, "ip"];
      const c = typeof ip === "string" ? canonicalIp(ip) : undefined;
      if (c === undefined) fail(path, `${show(ip)} is not an IP address`, "write an IPv4 or IPv6 address");
      const owner = ipOwner.get(c!);
      if (owner !== undefined && owner !== key) fail(path, `IP ${c} is also the IP of ${owner}`, "each pod IP belongs to one pod");
      ipOwner.set(c!, key);
      ips.push(c!);
    });
    // Both, as a Pod's status has podIP and podIPs: they must agree (podIP is podIPs[0]).
    if (pod.ip !== undefined && pod.ips !== undefined) {
      const single = typeof pod.ip === "string" ? canonicalIp(pod.ip) : undefined;
      if (single === undefined) fail(["pods", i, "ip"], `${show(pod.ip)} is not an IP address`, "write an IPv4 or IPv6 address");
      if (single !== ips[0]) fail(["pods", i, "ip"], `ip ${single} disagrees with ips [${ips.join(", ")}]`, "`ip` must be the first of `ips` (a Pod's podIP is podIPs[0]); or give only `ips`");
    }
    if (pod.node !== undefined && (typeof pod.node !== "string" || !NODE_NAME.test(pod.node))) {
      fail(["pods", i, "node"], `${show(pod.node)} is not a node name`, "give the node the pod runs on, as spec.nodeName (e.g. `node: worker-1`); only that node's agent may report its DNS");
    }
    const node = typeof pod.node === "string" ? { node: pod.node } : {};
    if (pod.sidecar !== undefined && typeof pod.sidecar !== "boolean") fail(["pods", i, "sidecar"], `${show(pod.sidecar)} is not true or false`, "write `sidecar: false` for a pod without an Envoy sidecar (or leave it out)");
    const sidecar = typeof pod.sidecar === "boolean" ? { sidecar: pod.sidecar } : {};
    const exclusions = outboundExclusions(labelsAt(pod.annotations, ["pods", i, "annotations"]));
    pods.push({ namespace: pod.namespace as string, name: pod.name as string, labels: labelsAt(pod.labels, ["pods", i, "labels"]), ips, ...node, ...sidecar, ...exclusions });
  });
  for (const p of pods) namespaces[p.namespace] ??= {};
  return { pods, namespaces };
}

export interface FileSourceOptions {
  policyPaths: string[];
  podsFile: string;
  catalog: PolicyCatalog;
  registry: PodRegistry;
  policyApi: PolicyApi;
  log: Logger;
  metrics: ControlMetrics;
  /** Istio ServiceEntry files or folders (mesh-configuration evidence), with the table they fill. */
  serviceEntryPaths?: string[];
  meshConfig?: MeshConfigTable;
  debounceMs?: number;
  /** Called after every reload attempt (tests wait on it). */
  onReload?: (outcome: { ok: boolean; errors: string[] }) => void;
}

export class FileSource {
  private readonly watchers: FSWatcher[] = [];
  private timer?: NodeJS.Timeout;
  private closed = false;

  constructor(private readonly o: FileSourceOptions) {}

  /** Loads everything once; throws when the pods file is unusable (fail loudly at startup). */
  start(): { errors: string[]; warnings: string[] } {
    const result = this.load(true);
    this.watchAll();
    return result;
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    for (const w of this.watchers) w.close();
    this.watchers.length = 0;
  }

  /** Re-reads everything now (also what the watcher does after the debounce). */
  reload(): { ok: boolean; errors: string[] } {
    // A path that appeared (or turned from file to folder) since the last load is watched anew.
    if (!this.closed) this.watchAll();
    try {
      const r = this.load(false);
      const outcome = { ok: r.errors.length === 0, errors: r.errors };
      this.o.metrics.fileReloads.inc({ outcome: outcome.ok ? "ok" : "error" });
      this.o.onReload?.(outcome);
      return outcome;
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      this.o.log.error({ err: message }, "file mode: reload failed; keeping the previous pods and policies");
      this.o.metrics.fileReloads.inc({ outcome: "error" });
      const outcome = { ok: false, errors: [message] };
      this.o.onReload?.(outcome);
      return outcome;
    }
  }

  private load(initial: boolean): { errors: string[]; warnings: string[] } {
    let podsText: string;
    try {
      podsText = readFileSync(this.o.podsFile, "utf8");
    } catch (err) {
      throw new ControlError("EGRET_PODS_FILE_INVALID", `cannot read ${this.o.podsFile}: ${(err as Error).message}`, { cause: err });
    }
    const pods = parsePodsFile(podsText, this.o.podsFile);
    // Parsed before anything is applied: an unreadable ServiceEntry file leaves everything as it was.
    const serviceEntries = this.o.serviceEntryPaths?.length ? loadServiceEntryFiles(this.o.serviceEntryPaths) : undefined;
    const loaded = this.o.policyApi.loadPolicyFiles(this.o.policyPaths);
    const r = this.o.catalog.replaceFromFiles(loaded);
    for (const e of r.errors) this.o.log.error({ diagnostic: e }, "policy error; the previous version of the policy (if any) stays in force");
    for (const w of r.warnings) this.o.log.warn({ diagnostic: w }, "policy warning");
    this.o.registry.replaceAll(pods.pods, pods.namespaces);
    if (serviceEntries && this.o.meshConfig) {
      for (const problem of this.o.meshConfig.replaceAll(serviceEntries)) this.o.log.warn({ serviceEntry: problem }, "ServiceEntry: part ignored as evidence");
    }
    this.o.log.info(
      { policies: this.o.catalog.active().length, pods: pods.pods.length, errors: r.errors.length, initial },
      "file mode: loaded policies and pods",
    );
    return r;
  }

  private watchAll(): void {
    for (const w of this.watchers) w.close();
    this.watchers.length = 0;
    // Watch each containing folder once; react to events that concern our paths.
    const folders = new Map<string, Set<string> | "all">();
    const add = (path: string) => {
      const abs = resolve(path);
      let isDir = false;
      try {
        isDir = statSync(abs).isDirectory();
      } catch {
        /* a missing path is watched through its folder, so creating it triggers a reload */
      }
      if (isDir) folders.set(abs, "all");
      else {
        const dir = dirname(abs);
        const cur = folders.get(dir);
        if (cur === "all") return;
        const set = cur ?? new Set<string>();
        set.add(basename(abs));
        folders.set(dir, set);
      }
    };
    for (const p of this.o.policyPaths) add(p);
    for (const p of this.o.serviceEntryPaths ?? []) add(p);
    add(this.o.podsFile);
    for (const [dir, names] of folders) {
      try {
        // Policy folders are loaded recursively, so they are watched recursively.
        const w = watch(dir, { persistent: false, recursive: names === "all" }, (_event, filename) => {
          if (names !== "all" && filename !== null && !names.has(filename.toString())) return;
          this.schedule();
        });
        w.on("error", (err) => this.o.log.warn({ err: err.message, dir }, "file mode: watcher error"));
        this.watchers.push(w);
      } catch (err) {
        this.o.log.warn({ err: (err as Error).message, dir }, "file mode: cannot watch; changes there need a restart");
      }
    }
  }

  private schedule(): void {
    if (this.closed) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (!this.closed) this.reload();
    }, this.o.debounceMs ?? 200);
  }
}

/** File mode as a ControlSource for ControlService. */
export function fileControlSource(o: Omit<FileSourceOptions, "catalog" | "registry" | "metrics" | "meshConfig">): ControlSource & { reload(): void } {
  let source: FileSource | undefined;
  return {
    async start(ctx) {
      source = new FileSource({ ...o, catalog: ctx.catalog, registry: ctx.registry, metrics: ctx.metrics, meshConfig: ctx.meshConfig });
      source.start();
    },
    notReadyReason: () => undefined,
    close: () => source?.close(),
    reload: () => void source?.reload(),
  };
}
