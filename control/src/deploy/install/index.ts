// The install as typed definitions: every object Egret installs, grouped into the files of
// manifests/ and into the phases that must be applied in order. `egret manifests` renders from
// here, and manifests/ is generated from here (scripts/generate-manifests.mjs), so the two cannot
// drift; istio-tests/unit/manifests-agree.test.ts also checks `kubectl kustomize manifests/`.
// To add an object: return it from the file's function below (or add a file to INSTALL_FILES).
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { readYamlObjects, type KubeObject } from "../objects.js";
import { agentObjects, AGENT_HEADER } from "./agent.js";
import { controlObjects, CONTROL_HEADER, destinationRuleObjects, DESTINATION_RULE_HEADER } from "./control.js";
import { envoyFilterObjects, ENVOY_FILTER_HEADER } from "./mesh.js";
import { namespaceObjects, NAMESPACE_HEADER } from "./namespace.js";
import { controlRbacObjects, CONTROL_RBAC_HEADER } from "./rbac.js";
import { networkPolicyObjects, NETWORK_POLICY_HEADER } from "./network-policy.js";
import { PHASES, type InstallSettings, type Phase } from "./settings.js";
import { tlsObjects, TLS_HEADER } from "./tls.js";

export * from "./settings.js";
export { DEFAULT_PLUGIN_CONFIG, EXTENSION_NAME, RBAC_NETWORK_TYPE_URL, WASM_NETWORK_TYPE_URL } from "./mesh.js";

/** One generated file of manifests/: its path, phase, the comment at its top, and its objects. */
export interface InstallFile {
  path: string;
  phase: Phase;
  header: string;
  objects: (s: InstallSettings) => KubeObject[];
}

/** The generated files, in apply order within each phase. CRDs come from manifests/crds/. */
export const INSTALL_FILES: readonly InstallFile[] = [
  { path: "control/namespace.yaml", phase: "control", header: NAMESPACE_HEADER, objects: namespaceObjects },
  { path: "control/control-rbac.yaml", phase: "control", header: CONTROL_RBAC_HEADER, objects: controlRbacObjects },
  { path: "control/networkpolicy.yaml", phase: "control", header: NETWORK_POLICY_HEADER, objects: networkPolicyObjects },
  { path: "control/tls.yaml", phase: "control", header: TLS_HEADER, objects: tlsObjects },
  { path: "control/control.yaml", phase: "control", header: CONTROL_HEADER, objects: controlObjects },
  { path: "control/destinationrule.yaml", phase: "control", header: DESTINATION_RULE_HEADER, objects: destinationRuleObjects },
  { path: "control/agent.yaml", phase: "control", header: AGENT_HEADER, objects: agentObjects },
  { path: "mesh/envoyfilter.yaml", phase: "mesh", header: ENVOY_FILTER_HEADER, objects: envoyFilterObjects },
];

/** The CRD files (the policy API's own source, read by control/src/policy/schema.ts too). */
export function crdFiles(manifestsDir: string): string[] {
  return readdirSync(join(manifestsDir, "crds")).filter((f) => f.endsWith(".yaml") && f !== "kustomization.yaml").sort().map((f) => `crds/${f}`);
}

export interface PhasedObject {
  phase: Phase;
  /** The manifests/ file it is generated into. */
  file: string;
  object: KubeObject;
}

/** Every object of the install, in phase order (crds, control, mesh). */
export function installObjects(manifestsDir: string, s: InstallSettings): PhasedObject[] {
  const crds = crdFiles(manifestsDir).flatMap((file) => readYamlObjects(join(manifestsDir, file)).map((object) => ({ phase: "crds" as const, file, object })));
  const generated = INSTALL_FILES.flatMap((f) => f.objects(s).map((object) => ({ phase: f.phase, file: f.path, object })));
  return [...crds, ...generated].sort((a, b) => PHASES.indexOf(a.phase) - PHASES.indexOf(b.phase));
}
