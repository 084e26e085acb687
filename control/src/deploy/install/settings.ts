// What one install of Egret is rendered from. Every object in install/ is a function of these
// settings; `egret manifests` fills them from its flags, and manifests/ is rendered from the
// defaults (with the module digest left as a placeholder).

/** Stands for the module's sha256 in manifests/ until `egret manifests` fills it in. */
export const WASM_SHA_PLACEHOLDER = "EGRET_WASM_SHA256";
/** The image name the manifests use; `--image` replaces it (name, tag or digest). */
export const IMAGE_NAME = "ghcr.io/egret-dev/egret";
export const DEFAULT_IMAGE = `${IMAGE_NAME}:0.1.0`;
export const NAMESPACE = "egret-system";
export const ENVOY_FILTER_NAME = "egret-egress";
export const CONTROL_NAME = "egret-control";
export const AGENT_NAME = "egret-agent";
export const GRPC_PORT = 9090;
export const HTTP_PORT = 9091;
/** Control's TLS listener (--grpc-tls-listen): agents, filters and operators use it. */
export const GRPC_TLS_PORT = 9443;
export const AGENT_METRICS_PORT = 9102;
/** The audience of the agents' projected tokens (control --agent-audience). */
export const AGENT_TOKEN_AUDIENCE = "egret-control";
/** The agents' token lifetime; the kubelet refreshes it at 80 % (the API's minimum is 600). */
export const AGENT_TOKEN_EXPIRATION_SECONDS = 3600;
export const AGENT_TOKEN_DIR = "/var/run/secrets/egret";
export const AGENT_TOKEN_FILE = "token";
/** Control's TLS material (install/tls.ts): the serving Secret control mounts, the CA's Secret, the public CA. */
export const TLS_SECRET = "egret-control-tls";
export const CA_SECRET = "egret-ca";
export const CA_CONFIGMAP = "egret-control-ca";
export const CONTROL_TLS_DIR = "/etc/egret/tls";
export const AGENT_CA_DIR = "/etc/egret/ca";

/** Where the volume delivery mode expects the module inside each sidecar. */
export const WASM_VOLUME_PATH = "/var/local/lib/egret/egret.wasm";

/**
 * Install phases, applied in this order with a wait between them (docs/operations.md "Install"):
 * the control plane is Ready before any EnvoyFilter names its module.
 */
export const PHASES = ["crds", "control", "mesh"] as const;
export type Phase = (typeof PHASES)[number];

export type Delivery = "ecds" | "inline" | "volume";
/** Who makes control's TLS material: Egret's own bootstrap Job, or cert-manager (installed by you). */
export type TlsProvider = "bootstrap" | "cert-manager";

export interface InstallSettings {
  /** sha256 (hex) of the egret.wasm that the control image serves, or the placeholder. */
  wasmSha256: string;
  /** Full image reference, e.g. registry.example/egret:0.1.0 or …@sha256:…. */
  image: string;
  /** Istio's root namespace (meshConfig.rootNamespace), where the mesh-wide EnvoyFilter lives. */
  istioRootNamespace: string;
  /** Only pods with these labels get the filter (EnvoyFilter workloadSelector); empty = every sidecar. */
  workloadSelector: Record<string, string>;
  /**
   * ecds: istio-agent downloads the module from control; inline: the module's bytes travel inside
   * the EnvoyFilter (needs wasmBase64); volume: a file mounted into each sidecar.
   */
  delivery: Delivery;
  wasmBase64?: string;
  /** Keys merged over the default plugin configuration JSON (e.g. {"lookupTimeoutMs": 500}). */
  pluginConfig: Record<string, unknown>;
  /** Cluster DNS addresses as pods see them (agent --trusted-resolver). */
  trustedResolvers: string[];
  /** Pod/service CIDRs added to the default internal ranges (control --cluster-cidr). */
  clusterCidrs: string[];
  /** Pod address ranges (agent --pod-cidr). */
  podCidrs: string[];
  /**
   * Recovery from istio-agent's fallback: a number carried in the module URL, so raising it is a
   * spec change istiod pushes to every sidecar, and each istio-agent fetches the module again
   * (its cache is keyed by URL). 0 = not in the URL.
   */
  pushGeneration: number;
  /** Who issues control's CA and serving certificate (install/tls.ts). */
  tls: TlsProvider;
  /**
   * Sidecars reach control over TLS (port GRPC_TLS_PORT, CA from a configmap:// credential: Istio
   * >= 1.26). False: the plaintext port GRPC_PORT (FilterService only), for Istio 1.20-1.25.
   */
  sidecarTls: boolean;
}

export const DEFAULT_SETTINGS: InstallSettings = {
  wasmSha256: WASM_SHA_PLACEHOLDER,
  image: DEFAULT_IMAGE,
  istioRootNamespace: "istio-system",
  workloadSelector: {},
  delivery: "ecds",
  pluginConfig: {},
  // kube-dns Service of kubeadm/kind; `egret manifests --trusted-resolver` sets the real one.
  trustedResolvers: ["10.96.0.10"],
  clusterCidrs: [],
  podCidrs: [],
  pushGeneration: 0,
  tls: "bootstrap",
  sidecarTls: true,
};

export const controlHost = `${CONTROL_NAME}.${NAMESPACE}.svc.cluster.local`;
/**
 * The one name control's certificate is verified against, by agents (--tls-server-name: they dial
 * replica IPs) and by sidecars (the DestinationRule's sni and subjectAltNames). Without the cluster
 * domain, so it holds whatever the cluster's domain is.
 */
export const TLS_SERVER_NAME = `${CONTROL_NAME}.${NAMESPACE}.svc`;
/** The serving certificate's names: the verified one first, then the Service's full name (operators). */
export const TLS_SERVER_NAMES = [TLS_SERVER_NAME, controlHost];

/** Labels on every object; `component` names the part (control, agent, filter). */
export function labels(component?: string): Record<string, string> {
  return component
    ? { "app.kubernetes.io/name": "egret", "app.kubernetes.io/component": component, "app.kubernetes.io/part-of": "egret" }
    : { "app.kubernetes.io/part-of": "egret" };
}

export function selectorLabels(component: string): Record<string, string> {
  return { "app.kubernetes.io/name": "egret", "app.kubernetes.io/component": component };
}
