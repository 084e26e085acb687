// Renders the Egret install (manifests/ through the kustomize subset) with what a plain
// kustomization cannot know: the sha256 of the exact egret.wasm the control service will serve,
// the image, the Istio root namespace, an optional workload selector, the delivery mode and
// plugin-configuration overrides. Used by `egret manifests` and by the offline checks.
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { stringify } from "yaml";
import { type KubeObject, KustomizeError, renderKustomization, setImages } from "./kustomize.js";

/** Stands for the module's sha256 in manifests/ until rendering fills it in. */
export const WASM_SHA_PLACEHOLDER = "EGRET_WASM_SHA256";
/** The image name the manifests use; `image` replaces it (name, tag or digest). */
export const IMAGE_NAME = "ghcr.io/egret-dev/egret";
export const ENVOY_FILTER_NAME = "egret-egress";

export interface InstallOptions {
  /** The manifests/ folder. */
  manifestsDir: string;
  /** sha256 (hex) of the egret.wasm that the control image serves. */
  wasmSha256: string;
  /** Full image reference, e.g. registry.example/egret:0.1.0 or …@sha256:…. */
  image?: string;
  /** Only pods with these labels get the filter (EnvoyFilter workloadSelector). */
  workloadSelector?: Record<string, string>;
  /**
   * ecds: istio-agent downloads the module from control (default); inline: the module's bytes
   * travel inside the EnvoyFilter (needs `wasm`); volume: a file mounted into each sidecar.
   */
  delivery?: "ecds" | "inline" | "volume";
  /** The module itself; required for inline delivery (its sha256 must be wasmSha256). */
  wasm?: Uint8Array;
  /** Istio's root namespace (meshConfig.rootNamespace), where the mesh-wide EnvoyFilter lives. */
  istioRootNamespace?: string;
  /** Keys merged over the plugin configuration JSON (e.g. {"lookupTimeoutMs": 500}). */
  pluginConfig?: Record<string, unknown>;
  /** Cluster DNS addresses as pods see them (agent --trusted-resolver); replaces the default. */
  trustedResolvers?: string[];
  /** Pod/service CIDRs, i.e. what `external: true` excludes (control --cluster-cidr). */
  clusterCidrs?: string[];
  /** Pod address ranges: the agent ignores queries from elsewhere and rejects "answers" from pods. */
  podCidrs?: string[];
}

/** Replaces every `--flag=…` argument of the workload's first container with the given values. */
function setFlag(objects: KubeObject[], kind: string, name: string, flag: string, values: string[]): void {
  const o = objects.find((x) => x.kind === kind && x.metadata.name === name);
  if (!o) throw new KustomizeError(`no ${kind} ${name} in the rendered manifests`);
  const c = (o.spec as { template: { spec: { containers: { args?: string[] }[] } } }).template.spec.containers[0];
  c.args = [...(c.args ?? []).filter((a) => !a.startsWith(`${flag}=`)), ...values.map((v) => `${flag}=${v}`)];
}

export function sha256Hex(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

export function sha256File(path: string): string {
  return sha256Hex(readFileSync(path));
}

function replaceStrings(node: unknown, from: string, to: string): unknown {
  if (typeof node === "string") return node.split(from).join(to);
  if (Array.isArray(node)) return node.map((n) => replaceStrings(n, from, to));
  if (node && typeof node === "object") {
    return Object.fromEntries(Object.entries(node).map(([k, v]) => [k, replaceStrings(v, from, to)]));
  }
  return node;
}

/** The EnvoyFilter's EXTENSION_CONFIG patch value (the one place the filter is configured). */
export function extensionConfigOf(envoyFilter: KubeObject): Record<string, unknown> {
  const patches = ((envoyFilter.spec as { configPatches?: unknown[] } | undefined)?.configPatches ?? []) as
    { applyTo?: string; patch?: { value?: Record<string, unknown> } }[];
  const ext = patches.find((p) => p.applyTo === "EXTENSION_CONFIG");
  if (!ext?.patch?.value) throw new KustomizeError(`EnvoyFilter ${envoyFilter.metadata.name}: no EXTENSION_CONFIG patch`);
  return ext.patch.value;
}

interface WasmPluginConfigJson {
  config: { configuration: { "@type": string; value: string }; vm_config: { code: Record<string, unknown> } };
}

/** The plugin configuration object (parsed from the StringValue JSON). */
export function pluginConfigOf(envoyFilter: KubeObject): Record<string, unknown> {
  const value = (extensionConfigOf(envoyFilter).typed_config as WasmPluginConfigJson).config.configuration.value;
  try {
    return JSON.parse(value) as Record<string, unknown>;
  } catch (err) {
    throw new KustomizeError(`EnvoyFilter ${envoyFilter.metadata.name}: plugin configuration is not JSON: ${(err as Error).message}`);
  }
}

export function findEnvoyFilter(objects: KubeObject[]): KubeObject {
  const ef = objects.find((o) => o.kind === "EnvoyFilter" && o.metadata.name === ENVOY_FILTER_NAME);
  if (!ef) throw new KustomizeError(`no EnvoyFilter named ${ENVOY_FILTER_NAME} in the rendered manifests`);
  return ef;
}

export function renderInstall(opts: InstallOptions): KubeObject[] {
  if (!/^[0-9a-f]{64}$/.test(opts.wasmSha256)) {
    throw new KustomizeError(`wasm sha256 must be 64 lowercase hex digits (got "${opts.wasmSha256}")`);
  }
  const components = opts.delivery === "volume" ? [join(opts.manifestsDir, "components", "wasm-volume")] : [];
  let objects = renderKustomization(opts.manifestsDir, components);
  if (opts.image) {
    const at = opts.image.indexOf("@");
    const slash = opts.image.lastIndexOf("/");
    const colon = opts.image.indexOf(":", slash + 1);
    const nameEnd = at >= 0 ? at : colon >= 0 ? colon : opts.image.length;
    const newName = opts.image.slice(0, nameEnd);
    objects = setImages(objects, [{
      name: IMAGE_NAME, newName,
      ...(at >= 0 ? { digest: opts.image.slice(at + 1) } : colon >= 0 ? { newTag: opts.image.slice(colon + 1) } : {}),
    }]);
  }
  objects = objects.map((o) => replaceStrings(o, WASM_SHA_PLACEHOLDER, opts.wasmSha256) as KubeObject);
  const ef = findEnvoyFilter(objects);
  if (opts.istioRootNamespace) ef.metadata.namespace = opts.istioRootNamespace;
  if (opts.delivery === "inline") {
    if (!opts.wasm) throw new KustomizeError("inline delivery needs the module bytes");
    if (sha256Hex(opts.wasm) !== opts.wasmSha256) throw new KustomizeError("inline delivery: the module's sha256 differs from wasmSha256");
    (extensionConfigOf(ef).typed_config as WasmPluginConfigJson).config.vm_config.code = {
      local: { inline_bytes: Buffer.from(opts.wasm).toString("base64") },
    };
  }
  if (opts.workloadSelector && Object.keys(opts.workloadSelector).length > 0) {
    (ef.spec as Record<string, unknown>).workloadSelector = { labels: { ...opts.workloadSelector } };
  }
  if (opts.trustedResolvers && opts.trustedResolvers.length > 0) setFlag(objects, "DaemonSet", "egret-agent", "--trusted-resolver", opts.trustedResolvers);
  if (opts.podCidrs && opts.podCidrs.length > 0) setFlag(objects, "DaemonSet", "egret-agent", "--pod-cidr", opts.podCidrs);
  if (opts.clusterCidrs && opts.clusterCidrs.length > 0) setFlag(objects, "Deployment", "egret-control", "--cluster-cidr", opts.clusterCidrs);
  if (opts.pluginConfig) {
    const merged = { ...pluginConfigOf(ef), ...opts.pluginConfig };
    (extensionConfigOf(ef).typed_config as WasmPluginConfigJson).config.configuration.value = JSON.stringify(merged, null, 2);
  }
  return objects;
}

/** Multi-document YAML, one object per document, as kubectl apply -f expects. */
export function toYaml(objects: KubeObject[]): string {
  return objects.map((o) => stringify(o, { lineWidth: 0 })).join("---\n");
}
