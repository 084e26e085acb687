// `egret manifests`: prints the Kubernetes/Istio install for this build of Egret, with the sha256
// of the egret.wasm that this image's control service serves filled into the EnvoyFilter.
import { readFileSync, writeFileSync } from "node:fs";
import { isIP } from "node:net";
import { fileURLToPath } from "node:url";
import { parseFlags, UsageError, type CliCommand } from "../command.js";
import { findEnvoyFilter, PHASES, pluginConfigOf, renderInstall, sha256Hex, toYaml, type Phase } from "../../deploy/render.js";
import { pluginConfigProblem } from "../../deploy/plugin-check.js";
import { COMPANION_HEADER, companionNetworkPolicies } from "../../deploy/install/companion.js";

const ROOT = new URL("../../../../../", import.meta.url);

const HELP = `usage: egret manifests [options]

Renders the install (CRDs, namespace, RBAC, control, agent, EnvoyFilter) for this build, from the
same definitions manifests/ is generated from.

  --phase crds|control|mesh only this phase (repeatable; default all, in that order). Apply them
                            in order and wait between them (docs/operations.md "Install"): the
                            EnvoyFilter (mesh) names the module control serves, so control must be
                            Ready first

  --image REF               image for control and agent (default ghcr.io/egret-dev/egret:<version>)
  --wasm FILE               module whose sha256 goes into the EnvoyFilter (default: the built egret.wasm)
  --selector KEY=VALUE      only pods with this label get the filter (repeatable)
  --delivery ecds|inline|volume
                            module delivery: ecds (default) istio-agent downloads it from control;
                            inline: the module travels inside the EnvoyFilter; volume: a file
                            mounted into each sidecar (docs/operations.md "Wasm delivery")
  --istio-root-namespace NS Istio's root namespace for the mesh-wide EnvoyFilter (default istio-system)
  --trusted-resolver IP     cluster DNS address as pods see it (repeatable; default 10.96.0.10, the
                            kube-dns Service of kubeadm/kind: kubectl -n kube-system get svc kube-dns)
  --cluster-cidr CIDR       pod and service ranges, excluded by \`external: true\` rules (repeatable)
  --pod-cidr CIDR           pod address range for the agent: queries from elsewhere are ignored and
                            "answers" sent by a pod are rejected (repeatable; recommended)
  --push-generation N       put N in the module URL: raising it is a spec change istiod pushes to
                            every sidecar, whose istio-agent then downloads the module again — the
                            way back from the deny-all fallback (docs/operations.md "Recovering")
  --tls bootstrap|cert-manager
                            who makes control's TLS material (agents' tokens and the filters' gRPC
                            travel over it): bootstrap (default) an \`egret tls\` Job and daily
                            CronJob make a private CA and renew the serving certificate;
                            cert-manager: Issuers and Certificates for a cert-manager you installed
                            (docs/operations.md "TLS material")
  --sidecar-tls on|off      on (default): sidecars reach control over TLS, verified with the CA
                            through a configmap:// credential, which needs Istio >= 1.26. off: for
                            Istio 1.20-1.25, the filters use control's plaintext port (FilterService
                            only; still bound to the pod's address); agents keep TLS
  --set KEY=JSON            override a plugin configuration key, e.g. --set lookupTimeoutMs=500 (repeatable)
  -o, --output FILE         write to FILE instead of stdout

  --companion-network-policy
                            print instead, for each --namespace NS (repeatable, required), a
                            NetworkPolicy that denies UDP egress except DNS (53) to the cluster's
                            resolver (--trusted-resolver, and the pods --dns-namespace (kube-system)
                            labelled --dns-pod-label (k8s-app=kube-dns)); TCP stays open for Egret's
                            filter. Needs a CNI that enforces NetworkPolicy egress; it cannot close
                            TCP that skips the sidecar (docs/operations.md "Coverage and bypass reports")
`;

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

/** `--companion-network-policy`: the NetworkPolicies only (install/companion.ts). */
function companion(values: { namespace?: string[]; "trusted-resolver"?: string[]; "dns-namespace"?: string; "dns-pod-label"?: string[]; output?: string; phase?: string[]; selector?: string[] }): number {
  if (values.phase || values.selector) throw new UsageError("--companion-network-policy prints only the NetworkPolicies: drop --phase and --selector");
  const namespaces = values.namespace ?? [];
  if (namespaces.length === 0) throw new UsageError("--companion-network-policy needs --namespace NS (repeatable): the namespaces under Egret");
  for (const ns of namespaces) if (!DNS_LABEL.test(ns)) throw new UsageError(`--namespace must be a namespace name (a DNS label), got "${ns}"`);
  const resolvers = values["trusted-resolver"] ?? [];
  for (const ip of resolvers) if (isIP(ip) === 0) throw new UsageError(`--trusted-resolver must be an IP address (got "${ip}")`);
  const dnsNamespace = values["dns-namespace"] ?? "kube-system";
  if (!DNS_LABEL.test(dnsNamespace)) throw new UsageError(`--dns-namespace must be a namespace name, got "${dnsNamespace}"`);
  const dnsPodLabels: Record<string, string> = {};
  for (const s of values["dns-pod-label"] ?? ["k8s-app=kube-dns"]) {
    const m = /^([A-Za-z0-9./_-]+)=([A-Za-z0-9._-]*)$/.exec(s);
    if (!m) throw new UsageError(`--dns-pod-label must be KEY=VALUE (got "${s}")`);
    dnsPodLabels[m[1]!] = m[2]!;
  }
  if (resolvers.length === 0) {
    process.stderr.write("egret manifests: note: no --trusted-resolver: DNS is allowed only to the cluster DNS pods (by label); add the kube-dns Service IP or NodeLocal DNSCache's address if your CNI judges those\n");
  }
  const objects = companionNetworkPolicies({ namespaces, trustedResolvers: resolvers, dnsNamespace, dnsPodLabels });
  const text = `${COMPANION_HEADER.split("\n").map((l) => `# ${l}`).join("\n")}\n${toYaml(objects)}`;
  if (values.output) writeFileSync(values.output, text); else process.stdout.write(text);
  return 0;
}

export const command: CliCommand = {
  name: "manifests",
  summary: "print the Kubernetes/Istio install manifests for this build",
  async run(argv) {
    const { values } = parseFlags({
        args: argv,
        options: {
          image: { type: "string" }, wasm: { type: "string" }, selector: { type: "string", multiple: true },
          delivery: { type: "string" }, "trusted-resolver": { type: "string", multiple: true },
          "cluster-cidr": { type: "string", multiple: true }, "pod-cidr": { type: "string", multiple: true }, "istio-root-namespace": { type: "string" }, set: { type: "string", multiple: true },
          output: { type: "string", short: "o" }, "companion-network-policy": { type: "boolean" }, namespace: { type: "string", multiple: true },
          "dns-namespace": { type: "string" }, "dns-pod-label": { type: "string", multiple: true }, phase: { type: "string", multiple: true }, "push-generation": { type: "string" }, tls: { type: "string" }, "sidecar-tls": { type: "string" }, help: { type: "boolean", short: "h" },
        },
        strict: true, allowPositionals: false,
    }, HELP);
    if (values.help) { process.stdout.write(HELP); return 0; }
    if (values["companion-network-policy"]) return companion(values);
    for (const f of ["namespace", "dns-namespace", "dns-pod-label"] as const) {
      if (values[f] !== undefined) throw new UsageError(`--${f} is for --companion-network-policy`);
    }
    const delivery = values.delivery ?? "ecds";
    if (delivery !== "ecds" && delivery !== "inline" && delivery !== "volume") throw new UsageError(`--delivery must be ecds, inline or volume (got "${delivery}")`);
    const tls = values.tls ?? "bootstrap";
    if (tls !== "bootstrap" && tls !== "cert-manager") throw new UsageError(`--tls must be bootstrap or cert-manager (got "${tls}")`);
    const sidecarTlsFlag = values["sidecar-tls"] ?? "on";
    if (sidecarTlsFlag !== "on" && sidecarTlsFlag !== "off") throw new UsageError(`--sidecar-tls must be on or off (got "${sidecarTlsFlag}"); off is for Istio 1.20-1.25`);
    const sidecarTls = sidecarTlsFlag === "on";
    for (const p of values.phase ?? []) {
      if (!(PHASES as readonly string[]).includes(p)) throw new UsageError(`--phase must be one of ${PHASES.join(", ")} (got "${p}")`);
    }
    const pushGeneration = values["push-generation"] === undefined ? 0 : Number(values["push-generation"]);
    if (!Number.isSafeInteger(pushGeneration) || pushGeneration < 0) throw new UsageError(`--push-generation must be a whole number (got "${values["push-generation"]}")`);
    const phases = values.phase ? PHASES.filter((p) => values.phase!.includes(p)) : [...PHASES];
    const workloadSelector: Record<string, string> = {};
    for (const s of values.selector ?? []) {
      const m = /^([A-Za-z0-9./_-]+)=([A-Za-z0-9._-]*)$/.exec(s);
      if (!m) throw new UsageError(`--selector must be KEY=VALUE with a valid label key and value (got "${s}")`);
      workloadSelector[m[1]] = m[2];
    }
    const pluginConfig: Record<string, unknown> = {};
    for (const s of values.set ?? []) {
      const eq = s.indexOf("=");
      if (eq <= 0) throw new UsageError(`--set must be KEY=JSON (got "${s}")`);
      try { pluginConfig[s.slice(0, eq)] = JSON.parse(s.slice(eq + 1)); } catch {
        throw new UsageError(`--set ${s.slice(0, eq)}: value is not JSON (strings need quotes: --set 'failureMode="open"')`);
      }
    }
    for (const ip of values["trusted-resolver"] ?? []) {
      if (isIP(ip) === 0) throw new UsageError(`--trusted-resolver must be an IP address (got "${ip}")`);
    }
    for (const cidr of [...(values["cluster-cidr"] ?? []), ...(values["pod-cidr"] ?? [])]) {
      const [addr, len, extra] = cidr.split("/");
      const max = isIP(addr ?? "") === 4 ? 32 : isIP(addr ?? "") === 6 ? 128 : -1;
      if (extra !== undefined || max < 0 || !/^\d+$/.test(len ?? "") || Number(len) > max) {
        throw new UsageError(`--cluster-cidr and --pod-cidr take ADDRESS/PREFIX, e.g. 10.244.0.0/16 (got "${cidr}")`);
      }
    }
    const wasm = values.wasm ?? fileURLToPath(new URL("filter/build/egret.wasm", ROOT));
    let sha: string;
    let wasmBytes: Uint8Array;
    try { wasmBytes = readFileSync(wasm); sha = sha256Hex(wasmBytes); } catch (err) {
      throw new UsageError(`cannot read the wasm module ${wasm}: ${(err as Error).message} (run \`npm run build\` or pass --wasm)`);
    }
    const objects = renderInstall({
      manifestsDir: fileURLToPath(new URL("manifests", ROOT)),
      wasmSha256: sha,
      image: values.image,
      workloadSelector,
      delivery,
      wasm: wasmBytes,
      istioRootNamespace: values["istio-root-namespace"],
      trustedResolvers: values["trusted-resolver"],
      clusterCidrs: values["cluster-cidr"],
      podCidrs: values["pod-cidr"],
      pluginConfig: Object.keys(pluginConfig).length > 0 ? pluginConfig : undefined,
      phases: phases as Phase[],
      pushGeneration,
      tls,
      sidecarTls,
    });
    // The plugin configuration is checked whatever the phase: a mesh phase rendered later from
    // the same flags must not be refused then.
    const config = pluginConfigOf(findEnvoyFilter(renderInstall({
      manifestsDir: fileURLToPath(new URL("manifests", ROOT)), wasmSha256: sha, phases: ["mesh"], sidecarTls,
      pluginConfig: Object.keys(pluginConfig).length > 0 ? pluginConfig : undefined,
    })));
    const problem = await pluginConfigProblem(wasmBytes, JSON.stringify(config), String(config.controlCluster ?? ""));
    if (problem) {
      throw new UsageError(`the filter refuses this plugin configuration, so every sidecar would close its outbound connections; nothing rendered.\n${problem}`);
    }
    // Defaults that are right only for some clusters: say so on stderr (stdout stays pure YAML).
    if (!values["trusted-resolver"]) {
      process.stderr.write("egret manifests: note: the agent trusts DNS answers from 10.96.0.10 only (kubeadm/kind kube-dns); " +
        "pass --trusted-resolver with your cluster's address (kubectl -n kube-system get svc kube-dns)\n");
    }
    if (!values["pod-cidr"]) {
      process.stderr.write("egret manifests: note: without --pod-cidr the agent cannot reject DNS \"answers\" sent by pods; pass your pod range\n");
    }
    const text = `# egret manifests: module sha256 ${sha}; phases ${phases.join(", ")}\n${toYaml(objects)}`;
    if (values.output) writeFileSync(values.output, text); else process.stdout.write(text);
    return 0;
  },
};
