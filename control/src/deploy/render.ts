// Renders the Egret install from the typed definitions (install/) with what only render time
// knows: the sha256 of the exact egret.wasm the control service will serve, the image, the Istio
// root namespace, an optional workload selector, the delivery mode, cluster addresses and
// plugin-configuration overrides. Used by `egret manifests` and by the offline checks.
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import {
  DEFAULT_SETTINGS, ENVOY_FILTER_NAME, installObjects, PHASES, type Delivery, type InstallSettings, type Phase, type TlsProvider,
} from "./install/index.js";
import { RenderError, type KubeObject } from "./objects.js";

export { ENVOY_FILTER_NAME, IMAGE_NAME, PHASES, WASM_SHA_PLACEHOLDER, type Phase } from "./install/index.js";
export { RenderError, toYaml, type KubeObject } from "./objects.js";

export interface InstallOptions {
  /** The manifests/ folder (its crds/ are part of the install). */
  manifestsDir: string;
  /** sha256 (hex) of the egret.wasm that the control image serves. */
  wasmSha256: string;
  /** Full image reference, e.g. registry.example/egret:0.1.0 or …@sha256:…. */
  image?: string;
  /** Only pods with these labels get the filter (EnvoyFilter workloadSelector). */
  workloadSelector?: Record<string, string>;
  /** ecds (default), inline (needs `wasm`) or volume; see InstallSettings. */
  delivery?: Delivery;
  /** The module itself; required for inline delivery (its sha256 must be wasmSha256). */
  wasm?: Uint8Array;
  /** Istio's root namespace (meshConfig.rootNamespace), where the mesh-wide EnvoyFilter lives. */
  istioRootNamespace?: string;
  /** Keys merged over the plugin configuration JSON (e.g. {"lookupTimeoutMs": 500}). */
  pluginConfig?: Record<string, unknown>;
  /** Cluster DNS addresses as pods see them (agent --trusted-resolver); replaces the default. */
  trustedResolvers?: string[];
  /** Pod/service CIDRs, added to what `external: true` excludes (control --cluster-cidr). */
  clusterCidrs?: string[];
  /** Pod address ranges: the agent ignores queries from elsewhere and rejects "answers" from pods. */
  podCidrs?: string[];
  /** Raise to make istiod push the EnvoyFilter again (recovery from the fallback); see InstallSettings. */
  pushGeneration?: number;
  /** Who issues control's TLS material: bootstrap (default, no dependency) or cert-manager. */
  tls?: TlsProvider;
  /** Sidecars reach control over TLS (default; Istio >= 1.26) or its plaintext FilterService port. */
  sidecarTls?: boolean;
  /** Only these phases (default: all, in order). */
  phases?: readonly Phase[];
}

export function sha256Hex(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

export function sha256File(path: string): string {
  return sha256Hex(readFileSync(path));
}

/** The EnvoyFilter's EXTENSION_CONFIG patch value (the one place the filter is configured). */
export function extensionConfigOf(envoyFilter: KubeObject): Record<string, unknown> {
  const patches = ((envoyFilter.spec as { configPatches?: unknown[] } | undefined)?.configPatches ?? []) as
    { applyTo?: string; patch?: { value?: Record<string, unknown> } }[];
  const ext = patches.find((p) => p.applyTo === "EXTENSION_CONFIG");
  if (!ext?.patch?.value) throw new RenderError(`EnvoyFilter ${envoyFilter.metadata.name}: no EXTENSION_CONFIG patch`);
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
    throw new RenderError(`EnvoyFilter ${envoyFilter.metadata.name}: plugin configuration is not JSON: ${(err as Error).message}`);
  }
}

export function findEnvoyFilter(objects: KubeObject[]): KubeObject {
  const ef = objects.find((o) => o.kind === "EnvoyFilter" && o.metadata.name === ENVOY_FILTER_NAME);
  if (!ef) throw new RenderError(`no EnvoyFilter named ${ENVOY_FILTER_NAME} in the rendered manifests`);
  return ef;
}

/** Checks the options and turns them into the settings the definitions are written against. */
export function installSettings(opts: InstallOptions): InstallSettings {
  if (!/^[0-9a-f]{64}$/.test(opts.wasmSha256)) {
    throw new RenderError(`wasm sha256 must be 64 lowercase hex digits (got "${opts.wasmSha256}")`);
  }
  const delivery = opts.delivery ?? "ecds";
  let wasmBase64: string | undefined;
  if (delivery === "inline") {
    if (!opts.wasm) throw new RenderError("inline delivery needs the module bytes");
    if (sha256Hex(opts.wasm) !== opts.wasmSha256) throw new RenderError("inline delivery: the module's sha256 differs from wasmSha256");
    wasmBase64 = Buffer.from(opts.wasm).toString("base64");
  }
  const nonEmpty = (list: string[] | undefined, fallback: string[]) => (list && list.length > 0 ? [...list] : fallback);
  return {
    wasmSha256: opts.wasmSha256,
    image: opts.image ?? DEFAULT_SETTINGS.image,
    istioRootNamespace: opts.istioRootNamespace ?? DEFAULT_SETTINGS.istioRootNamespace,
    workloadSelector: { ...(opts.workloadSelector ?? {}) },
    delivery,
    ...(wasmBase64 !== undefined ? { wasmBase64 } : {}),
    pluginConfig: { ...(opts.pluginConfig ?? {}) },
    trustedResolvers: nonEmpty(opts.trustedResolvers, DEFAULT_SETTINGS.trustedResolvers),
    clusterCidrs: nonEmpty(opts.clusterCidrs, []),
    podCidrs: nonEmpty(opts.podCidrs, []),
    pushGeneration: opts.pushGeneration ?? 0,
    tls: opts.tls ?? DEFAULT_SETTINGS.tls,
    sidecarTls: opts.sidecarTls ?? DEFAULT_SETTINGS.sidecarTls,
  };
}

export function renderInstall(opts: InstallOptions): KubeObject[] {
  const phases = opts.phases ?? PHASES;
  return installObjects(opts.manifestsDir, installSettings(opts)).filter((o) => phases.includes(o.phase)).map((o) => o.object);
}

/** What manifests/ holds: the install with the default settings and the sha256 placeholder. */
export function defaultInstallObjects(manifestsDir: string): KubeObject[] {
  return installObjects(manifestsDir, DEFAULT_SETTINGS).map((o) => o.object);
}
