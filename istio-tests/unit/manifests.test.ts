// Offline checks of manifests/: what `kubectl apply` and istiod would reject, and what would
// silently weaken enforcement, caught before a cluster ever sees the files.
import { strict as assert } from "node:assert";
import { spawnSync } from "node:child_process";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { parse } from "yaml";
import { type KubeObject, readYamlObjects } from "../../control/src/deploy/objects.js";
import { checkMessage, RBAC_NETWORK_TYPE, TYPE_URL_PREFIX, WASM_NETWORK_TYPE } from "../../control/src/deploy/envoy-api.js";
import { defaultInstallObjects, extensionConfigOf, findEnvoyFilter, pluginConfigOf, WASM_SHA_PLACEHOLDER } from "../../control/src/deploy/render.js";
import { validateObject } from "../lib/k8s-schemas.js";

const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
const MANIFESTS = join(ROOT, "manifests");

function yamlFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir)) {
    const p = join(dir, e);
    if (statSync(p).isDirectory()) out.push(...yamlFiles(p));
    else if (/\.ya?ml$/.test(e)) out.push(p);
  }
  return out.sort();
}

const rendered = defaultInstallObjects(MANIFESTS);
const byKind = (kind: string): KubeObject[] => rendered.filter((o) => o.kind === kind);
const one = (kind: string, name: string): KubeObject => {
  const o = rendered.find((x) => x.kind === kind && x.metadata.name === name);
  assert.ok(o, `${kind} ${name} is rendered`);
  return o;
};

type Container = { name: string; securityContext?: Record<string, unknown>; resources?: { requests?: object; limits?: { memory?: string } };
  livenessProbe?: unknown; readinessProbe?: unknown; ports?: { name: string; containerPort: number }[]; image: string };
type PodSpec = { containers: Container[]; securityContext?: Record<string, unknown>; hostNetwork?: boolean; dnsPolicy?: string;
  tolerations?: { operator?: string }[]; automountServiceAccountToken?: boolean; serviceAccountName?: string; topologySpreadConstraints?: unknown[];
  hostPID?: boolean; hostIPC?: boolean; volumes?: Record<string, unknown>[] };
const podSpec = (o: KubeObject): PodSpec => (o.spec as { template: { spec: PodSpec } }).template.spec;
const podLabels = (o: KubeObject): Record<string, string> => (o.spec as { template: { metadata: { labels: Record<string, string> } } }).template.metadata.labels;

test("every YAML file under manifests/ parses into Kubernetes objects", () => {
  const files = yamlFiles(MANIFESTS);
  assert.ok(files.length >= 8, `found ${files.length} YAML files`);
  for (const f of files) {
    if (/kustomization\.ya?ml$/.test(f)) {
      const k = parse(readFileSync(f, "utf8")) as { kind?: string };
      assert.ok(k.kind === "Kustomization" || k.kind === "Component", `${relative(ROOT, f)}: kind ${k.kind}`);
      continue;
    }
    const objects = readYamlObjects(f);
    assert.ok(objects.length > 0, `${relative(ROOT, f)} holds at least one object`);
  }
});

test("every CRD file in manifests/crds/ is part of the install", () => {
  const listed = (parse(readFileSync(join(MANIFESTS, "kustomization.yaml"), "utf8")) as { resources: string[] }).resources;
  const crdFiles = readdirSync(join(MANIFESTS, "crds")).filter((f) => /\.ya?ml$/.test(f) && f !== "kustomization.yaml");
  assert.ok(crdFiles.length >= 2);
  for (const f of crdFiles) assert.ok(listed.includes(`crds/${f}`), `manifests/kustomization.yaml lists crds/${f}`);
  const names = byKind("CustomResourceDefinition").map((c) => c.metadata.name).sort();
  assert.deepEqual(names, ["clusteregresspolicies.egret.dev", "egresspolicies.egret.dev"]);
});

test("every rendered object validates against the Kubernetes and Istio OpenAPI schemas", async () => {
  const problems = (await Promise.all(rendered.map((o) => validateObject(o)))).flat();
  assert.deepEqual(problems, []);
});

test("the schema check rejects a broken object (so the check above can fail)", async () => {
  const d = structuredClone(one("Deployment", "egret-control"));
  (d.spec as Record<string, unknown>).replicas = "two";
  const problems = await validateObject(d);
  assert.equal(problems.length, 1);
  assert.match(problems[0].message, /replicas must be integer/);
  const ef = structuredClone(findEnvoyFilter(rendered));
  (ef.spec as { configPatches: { applyTo: string }[] }).configPatches[0].applyTo = "NETWORK_FILTR";
  assert.equal((await validateObject(ef)).length, 1);
});

test("the EnvoyFilter's values match Envoy's v3 API field by field", () => {
  const ef = findEnvoyFilter(rendered);
  const patches = (ef.spec as { configPatches: { applyTo: string; patch: { value: unknown } }[] }).configPatches;
  for (const [i, p] of patches.entries()) {
    const type = p.applyTo === "EXTENSION_CONFIG" ? "envoy.config.core.v3.TypedExtensionConfig" : "envoy.config.listener.v3.Filter";
    assert.deepEqual(checkMessage(`configPatches[${i}].patch.value`, type, p.patch.value), [], `patch ${i} (${p.applyTo})`);
  }
  const ext = extensionConfigOf(ef) as { typed_config: Record<string, unknown> };
  assert.equal(ext.typed_config["@type"], TYPE_URL_PREFIX + WASM_NETWORK_TYPE);
});

test("the Envoy API check catches misspelled, misplaced and missing fields", () => {
  const ext = structuredClone(extensionConfigOf(findEnvoyFilter(rendered))) as { typed_config: { config: Record<string, unknown> } };
  const vm = ext.typed_config.config.vm_config as Record<string, unknown>;
  vm.runtim = vm.runtime; delete vm.runtime;
  ext.typed_config.config.fail_policy = "FAIL_CLOSED";
  const problems = checkMessage("value", "envoy.config.core.v3.TypedExtensionConfig", ext);
  const paths = problems.map((p) => p.path).sort();
  assert.deepEqual(paths, ["value.typed_config.config.fail_policy", "value.typed_config.config.vm_config.runtim", "value.typed_config.config.vm_config.runtime"]);
  const bad = checkMessage("f", "envoy.config.listener.v3.Filter", { name: "x", config_discovery: { config_source: { ads: {}, initial_fetch_timeout: "0" }, type_urls: [] } });
  assert.deepEqual(bad.map((p) => p.path), ["f.config_discovery.config_source.initial_fetch_timeout"]);
});

test("the filter sits before tcp_proxy and the HTTP connection manager in every outbound chain, fail closed", () => {
  const ef = findEnvoyFilter(rendered);
  assert.equal(ef.metadata.namespace, "istio-system", "root namespace: applies mesh-wide");
  assert.equal((ef.spec as Record<string, unknown>).workloadSelector, undefined, "mesh-wide by default");
  type Patch = { applyTo: string; match?: { context?: string; listener?: { filterChain?: { name?: string; filter?: { name?: string } } } };
    patch: { operation: string; value: { name: string; config_discovery?: { config_source: { initial_fetch_timeout?: string }; type_urls: string[] } } } };
  const patches = (ef.spec as { configPatches: Patch[] }).configPatches;
  const ext = extensionConfigOf(ef) as { name: string; typed_config: { config: { failure_policy?: string; root_id?: string; vm_config: { vm_id?: string } } } };
  const filters = patches.filter((p) => p.applyTo === "NETWORK_FILTER");
  const anchors = filters.map((p) => p.match?.listener?.filterChain?.filter?.name).sort();
  assert.deepEqual(anchors, ["envoy.filters.network.http_connection_manager", "envoy.filters.network.tcp_proxy"]);
  for (const p of filters) {
    assert.equal(p.match?.context, "SIDECAR_OUTBOUND");
    assert.equal(p.match?.listener?.filterChain?.name, undefined, "no chain name: passthrough chains included");
    assert.equal(p.patch.operation, "INSERT_BEFORE");
    assert.equal(p.patch.value.name, ext.name, "references the ECDS resource by its name");
    const cd = p.patch.value.config_discovery!;
    assert.equal(cd.config_source.initial_fetch_timeout, "0s", "listeners wait for the module");
    assert.deepEqual(cd.type_urls, [TYPE_URL_PREFIX + WASM_NETWORK_TYPE, TYPE_URL_PREFIX + RBAC_NETWORK_TYPE]);
  }
  assert.equal(patches.filter((p) => p.applyTo === "EXTENSION_CONFIG").length, 1, "configuration lives in exactly one place");
  assert.equal(ext.typed_config.config.failure_policy, "FAIL_CLOSED");
  assert.equal(ext.typed_config.config.vm_config.vm_id, "egret");
  const cfg = pluginConfigOf(ef);
  assert.equal(cfg.failureMode, "closed");
  assert.equal(typeof cfg.lookupTimeoutMs, "number");
  assert.ok(Array.isArray(cfg.forwardProxies));
});

test("the plugin configuration and module URL point at the control Service's real ports", () => {
  const ef = findEnvoyFilter(rendered);
  const cfg = pluginConfigOf(ef) as { controlCluster: string; controlAuthority: string };
  const m = /^outbound\|(\d+)\|\|([a-z0-9-]+)\.([a-z0-9-]+)\.svc\.cluster\.local$/.exec(cfg.controlCluster);
  assert.ok(m, `controlCluster "${cfg.controlCluster}" is an Istio outbound cluster name`);
  const [, port, svcName, ns] = m;
  const svc = rendered.find((o) => o.kind === "Service" && o.metadata.name === svcName && o.metadata.namespace === ns);
  assert.ok(svc, `Service ${ns}/${svcName} exists`);
  const ports = (svc.spec as { ports: { name: string; port: number; targetPort: string }[] }).ports;
  const grpc = ports.find((p) => p.port === Number(port));
  assert.ok(grpc && grpc.name.startsWith("grpc-"), "the gRPC port is named grpc-* so Istio speaks HTTP/2 to it");
  assert.equal(cfg.controlAuthority, `${svcName}.${ns}.svc.cluster.local:${port}`);
  const code = ((extensionConfigOf(ef).typed_config as { config: { vm_config: { code: { remote: { http_uri: { uri: string }; sha256: string } } } } }).config.vm_config.code.remote);
  const uri = new URL(code.http_uri.uri);
  assert.equal(uri.hostname, `${svcName}.${ns}.svc.cluster.local`);
  const http = ports.find((p) => p.port === Number(uri.port));
  assert.ok(http && http.name.startsWith("http-"), "module URL uses the Service's HTTP port");
  assert.equal(uri.pathname, "/wasm/egret.wasm");
  assert.equal(uri.searchParams.get("sha256"), code.sha256, "the URL changes with the module");
  assert.equal(code.sha256, WASM_SHA_PLACEHOLDER, "the raw kustomization carries the placeholder that rendering fills");
  // The Service targets the named container ports of the control pods.
  const deploy = one("Deployment", "egret-control");
  const names = podSpec(deploy).containers[0].ports!.map((p) => p.name);
  for (const p of ports) assert.ok(names.includes(p.targetPort), `targetPort ${p.targetPort} exists on the pod`);
});

test("control Deployment: 2 replicas, PDB, probes, resources, restricted security context, spread", () => {
  const d = one("Deployment", "egret-control");
  const spec = d.spec as { replicas: number; selector: { matchLabels: Record<string, string> } };
  assert.equal(spec.replicas, 2);
  const pod = podSpec(d);
  const labels = podLabels(d);
  for (const [k, v] of Object.entries(spec.selector.matchLabels)) assert.equal(labels[k], v);
  const pdb = one("PodDisruptionBudget", "egret-control").spec as { minAvailable: number; selector: { matchLabels: Record<string, string> } };
  assert.deepEqual(pdb.selector.matchLabels, spec.selector.matchLabels);
  assert.ok(pdb.minAvailable >= 1 && pdb.minAvailable < spec.replicas, "a drain can proceed and one replica always serves");
  for (const svc of byKind("Service")) {
    for (const [k, v] of Object.entries((svc.spec as { selector: Record<string, string> }).selector)) assert.equal(labels[k], v, `${svc.metadata.name} selects the control pods`);
  }
  assert.equal(pod.securityContext?.runAsNonRoot, true);
  assert.deepEqual(pod.securityContext?.seccompProfile, { type: "RuntimeDefault" });
  assert.ok((pod.topologySpreadConstraints ?? []).length > 0);
  assert.ok(!pod.hostNetwork && !pod.hostPID && !pod.hostIPC);
  for (const c of pod.containers) {
    const sc = c.securityContext ?? {};
    assert.equal(sc.allowPrivilegeEscalation, false, c.name);
    assert.equal(sc.readOnlyRootFilesystem, true, c.name);
    assert.equal(sc.runAsNonRoot, true, c.name);
    assert.deepEqual(sc.capabilities, { drop: ["ALL"] }, c.name);
    assert.ok(c.livenessProbe && c.readinessProbe, `${c.name} has probes`);
    assert.ok(c.resources?.requests && c.resources.limits?.memory, `${c.name} has requests and a memory limit`);
  }
  const headless = one("Service", "egret-control-agents").spec as { clusterIP: string; publishNotReadyAddresses: boolean };
  assert.equal(headless.clusterIP, "None");
});

test("agent DaemonSet: host network, only NET_RAW, no API token, runs on every node", () => {
  const ds = one("DaemonSet", "egret-agent");
  const pod = podSpec(ds);
  assert.equal(pod.hostNetwork, true);
  assert.equal(pod.dnsPolicy, "ClusterFirstWithHostNet");
  assert.ok(!pod.hostPID && !pod.hostIPC);
  assert.equal(pod.automountServiceAccountToken, false);
  assert.ok(pod.tolerations?.some((t) => t.operator === "Exists"), "tolerates every taint");
  for (const c of pod.containers) {
    const sc = c.securityContext ?? {};
    assert.deepEqual(sc.capabilities, { drop: ["ALL"], add: ["NET_RAW"] });
    assert.equal(sc.privileged, false);
    assert.equal(sc.allowPrivilegeEscalation, false);
    assert.equal(sc.readOnlyRootFilesystem, true);
    assert.ok(c.resources?.limits?.memory);
  }
  assert.ok(!(pod.volumes ?? []).some((v) => "hostPath" in v), "no host filesystem");
  const sa = one("ServiceAccount", "egret-agent") as KubeObject & { automountServiceAccountToken?: boolean };
  assert.equal(sa.automountServiceAccountToken, false);
  assert.equal(rendered.filter((o) => /Binding$/.test(o.kind) && JSON.stringify(o).includes("egret-agent")).length, 0, "agent has no RBAC");
});

test("agent credential: a projected token for control's audience only, short-lived, sent with --token-file; control accepts exactly that ServiceAccount", () => {
  const pod = podSpec(one("DaemonSet", "egret-agent"));
  type Projected = { name: string; projected?: { sources: { serviceAccountToken?: { audience?: string; expirationSeconds?: number; path: string } }[] } };
  const volumes = (pod.volumes ?? []) as Projected[];
  const tokenVolumes = volumes.filter((v) => v.projected?.sources.some((src) => src.serviceAccountToken));
  assert.equal(tokenVolumes.length, 1, "one projected token volume");
  const src = tokenVolumes[0]!.projected!.sources.find((x) => x.serviceAccountToken)!.serviceAccountToken!;
  assert.ok(src.audience && !/kubernetes/.test(src.audience), `an audience of Egret's own, not the API server's (${src.audience})`);
  assert.ok(src.expirationSeconds! >= 600 && src.expirationSeconds! <= 3600, `short-lived (600 s is the API's minimum): ${src.expirationSeconds}`);
  const agent = pod.containers[0]! as unknown as { args: string[]; volumeMounts: { name: string; mountPath: string; readOnly?: boolean }[] };
  const mount = agent.volumeMounts.find((m) => m.name === tokenVolumes[0]!.name)!;
  assert.equal(mount.readOnly, true);
  assert.ok(agent.args.includes(`--token-file=${mount.mountPath}/${src.path}`), agent.args.join(" "));
  const control = podSpec(one("Deployment", "egret-control")).containers[0]! as unknown as { args: string[] };
  assert.ok(control.args.includes(`--agent-audience=${src.audience}`), "control checks the same audience");
  assert.ok(control.args.includes(`--agent-service-account=egret-system:${pod.serviceAccountName}`), "control accepts the agent's ServiceAccount");
});

test("control RBAC is least privilege: read pods/namespaces/policies/ServiceEntries, write only status and events, review agent tokens and operator callers", () => {
  const rules = (one("ClusterRole", "egret-control") as KubeObject & { rules: { apiGroups: string[]; resources: string[]; verbs: string[] }[] }).rules;
  const grants = new Set<string>();
  for (const r of rules) for (const g of r.apiGroups) for (const res of r.resources) for (const v of r.verbs) grants.add(`${g || "core"}/${res}:${v}`);
  for (const g of grants) assert.ok(!g.includes("*"), `no wildcard (${g})`);
  const expected = [
    "core/pods:get", "core/pods:list", "core/pods:watch", "core/namespaces:get", "core/namespaces:list", "core/namespaces:watch",
    "egret.dev/egresspolicies:get", "egret.dev/egresspolicies:list", "egret.dev/egresspolicies:watch",
    "egret.dev/clusteregresspolicies:get", "egret.dev/clusteregresspolicies:list", "egret.dev/clusteregresspolicies:watch",
    "networking.istio.io/serviceentries:get", "networking.istio.io/serviceentries:list", "networking.istio.io/serviceentries:watch",
    "egret.dev/egresspolicies/status:update", "egret.dev/egresspolicies/status:patch",
    "egret.dev/clusteregresspolicies/status:update", "egret.dev/clusteregresspolicies/status:patch",
    "core/events:create", "core/events:patch",
    // Agents' projected tokens and egret observe / egret status callers (TokenReview); the callers' own RBAC (operator-auth.ts).
    "authentication.k8s.io/tokenreviews:create", "authorization.k8s.io/subjectaccessreviews:create",
  ];
  assert.deepEqual([...grants].sort(), expected.sort());
  // Namespaced grants: the leader-election Lease in egret-system…
  const role = one("Role", "egret-control-leader-election") as KubeObject & { rules: { apiGroups: string[]; resources: string[]; verbs: string[]; resourceNames?: string[] }[] };
  assert.equal(role.metadata.namespace, "egret-system");
  assert.deepEqual(role.rules.map((r) => `${r.apiGroups.join()}/${r.resources.join()}:${r.verbs.join()}@${(r.resourceNames ?? ["*"]).join()}`).sort(), [
    "coordination.k8s.io/leases:create@*",
    "coordination.k8s.io/leases:get,update@egret-control",
  ]);
  // And the replicas' shared coverage: ConfigMaps in egret-system only (k8s/coverage-share.ts).
  const coverage = one("Role", "egret-control-coverage") as KubeObject & { rules: { apiGroups: string[]; resources: string[]; verbs: string[]; resourceNames?: string[] }[] };
  assert.equal(coverage.metadata.namespace, "egret-system");
  assert.deepEqual(coverage.rules.map((r) => `${r.apiGroups.join() || "core"}/${r.resources.join()}:${[...r.verbs].sort().join()}`), ["core/configmaps:create,delete,get,list,update,watch"]);
  // The other Role is the TLS Job's (its own ServiceAccount; tls-wiring.test.ts checks its rules).
  assert.deepEqual(byKind("Role").map((r) => r.metadata.name).sort(), ["egret-control-coverage", "egret-control-leader-election", "egret-tls"]);
  assert.deepEqual(byKind("RoleBinding").map((r) => (r as KubeObject & { subjects: { name: string }[] }).subjects.map((s) => s.name).join()).sort(), ["egret-control", "egret-control", "egret-tls"]);
  for (const name of ["egret-control-leader-election", "egret-control-coverage"]) {
    assert.deepEqual((one("RoleBinding", name) as KubeObject & { subjects: unknown[] }).subjects, [{ kind: "ServiceAccount", name: "egret-control", namespace: "egret-system" }]);
  }
  const binding = one("ClusterRoleBinding", "egret-control") as KubeObject & { subjects: { kind: string; name: string; namespace: string }[] };
  assert.deepEqual(binding.subjects, [{ kind: "ServiceAccount", name: "egret-control", namespace: "egret-system" }]);
});

test("namespace keeps Egret's own pods out of the mesh; every pod says so too", () => {
  const ns = one("Namespace", "egret-system");
  assert.equal(ns.metadata.labels?.["istio-injection"], "disabled");
  for (const o of [...byKind("Deployment"), ...byKind("DaemonSet")]) {
    assert.equal((o.spec as { template: { metadata: { annotations?: Record<string, string> } } }).template.metadata.annotations?.["sidecar.istio.io/inject"], "false", o.metadata.name);
    assert.equal(o.metadata.namespace, "egret-system");
  }
});

test("every container's arguments are accepted by this build's egret command", () => {
  // `egret <cmd> ARGS --help` parses ARGS strictly before printing help: exit 0 means every flag
  // the manifests pass exists with the right arity (exit 2 names the unknown one).
  const jobPod = (o: KubeObject) => (o.spec as { jobTemplate: { spec: { template: { spec: PodSpec } } } }).jobTemplate.spec.template.spec;
  const pods = [...byKind("Deployment"), ...byKind("DaemonSet"), ...byKind("Job"), ...byKind("CronJob")].map((o) => ({ o, pod: o.kind === "CronJob" ? jobPod(o) : podSpec(o) }));
  assert.ok(pods.some((p) => p.o.kind === "Job"), "the TLS bootstrap Job is checked too");
  for (const { o, pod } of pods) {
    for (const c of pod.containers) {
      const args = (c as Container & { args: string[] }).args;
      const r = spawnSync(process.execPath, [join(ROOT, "bin", "egret.js"), ...args, "--help"], { encoding: "utf8", timeout: 60_000 });
      assert.equal(r.status, 0, `${o.kind} ${o.metadata.name}: egret ${args.join(" ")} → ${r.stderr.split("\n")[0]}`);
    }
  }
});

test("the image tag in manifests/ is this package's version", () => {
  const version = (JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string }).version;
  for (const o of [...byKind("Deployment"), ...byKind("DaemonSet")]) {
    for (const c of podSpec(o).containers) assert.equal(c.image, `ghcr.io/egret-dev/egret:${version}`);
  }
});

test("control namespace NetworkPolicy: default deny, then only control's declared ports", () => {
  type Np = KubeObject & { spec: { podSelector: { matchLabels?: Record<string, string> }; policyTypes: string[]; ingress?: { ports?: { port: number }[] }[] } };
  const policies = byKind("NetworkPolicy") as Np[];
  assert.ok(policies.every((p) => p.metadata.namespace === "egret-system"));
  const deny = policies.find((p) => Object.keys(p.spec.podSelector.matchLabels ?? {}).length === 0)!;
  assert.deepEqual(deny.spec.policyTypes, ["Ingress"]);
  assert.equal(deny.spec.ingress, undefined, "selects every pod of the namespace and admits nothing");
  const control = policies.find((p) => p !== deny)!;
  const pod = podSpec(one("Deployment", "egret-control"));
  const declared = pod.containers.flatMap((c) => ((c as unknown as { ports?: { containerPort: number }[] }).ports ?? []).map((p) => p.containerPort)).sort();
  const admitted = (control.spec.ingress ?? []).flatMap((r) => (r.ports ?? []).map((p) => p.port)).sort();
  assert.deepEqual(admitted, declared, "exactly the ports control serves");
  assert.deepEqual(control.spec.podSelector.matchLabels, (one("Deployment", "egret-control").spec as { selector: { matchLabels: Record<string, string> } }).selector.matchLabels);
});
