// `egret control`: the control service. Kubernetes mode (--kubernetes) or file mode
// (--policies PATH… --pods FILE). See control/src/control/README.md.
import type { KubeConfig } from "@kubernetes/client-node";
import { loadKubeConfig, parseFlags, UsageError, type CliCommand } from "../command.js";
import { createLogger } from "../../common/log.js";
import { openAuditWriter } from "../../control/audit.js";
import { fileControlSource } from "../../control/file-source.js";
import { defaultPolicyApi } from "../../control/policy-api.js";
import { ControlService, LISTEN_ADDRESS, type ControlSource } from "../../control/service.js";
import { parseHostPort } from "../../common/host-port.js";
import { KubeSource, LeaderElector, kubeBoundPodReader, kubeLeaseClient, kubeTokenReviewer } from "../../k8s/index.js";
import { hostname } from "node:os";
import { TokenReviewAuthenticator } from "../../auth/token-review.js";
import { createControlMetrics, type ControlMetrics } from "../../control/metrics.js";
import { LoopbackOrTokenAuth } from "../../auth/operator-auth.js";
import { createWasmHandler, fetchPreviousModule, loadWasmModule, type WasmModuleSet } from "../../wasmserve/index.js";
import type { Route } from "../../control/http-server.js";
import { InsecureAgents, NoAgentCredentials, type AgentAuthenticator } from "../../auth/agent-auth.js";
import { FileAgentAuthenticator } from "../../auth/agent-tokens.js";
import { CidrSet } from "../../dns/cidr.js";
import { isLoopbackListen } from "../../auth/peer.js";
import { FileOperatorAuthenticator, KubernetesOperatorAuthenticator, NoOperatorCredentials, type OperatorAuthenticator } from "../../auth/operator-access.js";
import { KubeAccessReviewer } from "../../k8s/access-review.js";
import { readFileSync } from "node:fs";
import { createSecureContext } from "node:tls";
import type { Logger } from "../../common/log.js";

const TLS_RELOAD_MS = 60_000;

/** --tls-cert/--tls-key → the TLS listener; warns when credentials would travel in plaintext. */
function tlsOptions(values: { "tls-cert"?: string; "tls-key"?: string; "grpc-tls-listen"?: string; "grpc-listen"?: string }, log: Logger) {
  const certFile = values["tls-cert"];
  const keyFile = values["tls-key"];
  if ((certFile === undefined) !== (keyFile === undefined)) throw new UsageError("give both --tls-cert FILE and --tls-key FILE, or neither");
  if (certFile === undefined || keyFile === undefined) {
    const { host } = parseHostPort(values["grpc-listen"]!, "--grpc-listen", LISTEN_ADDRESS);
    if (!isLoopbackListen(host)) {
      log.warn({ listen: values["grpc-listen"] }, "serving gRPC in plaintext on a non-loopback address: agent tokens travel unencrypted; give --tls-cert and --tls-key");
    }
    return undefined;
  }
  const read = (flag: string, file: string): Buffer => {
    try {
      return readFileSync(file);
    } catch (err) {
      throw new UsageError(`--${flag} ${file}: cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    }
  };
  const cert = read("tls-cert", certFile);
  const key = read("tls-key", keyFile);
  try {
    createSecureContext({ cert, key });
  } catch (err) {
    throw new UsageError(`--tls-cert/--tls-key: not a usable PEM certificate and matching key (${(err as Error).message})`);
  }
  try {
    parseHostPort(values["grpc-tls-listen"]!, "--grpc-tls-listen", LISTEN_ADDRESS);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  // Re-read every minute: the kubelet replaces a mounted Secret's files when the bootstrap CronJob
  // or cert-manager renews the certificate; new connections get the new one.
  return { cert, key, listen: values["grpc-tls-listen"]!, files: { cert: certFile, key: keyFile, reloadMs: TLS_RELOAD_MS } };
}

interface AgentAuthFlags {
  "agent-token-file"?: string;
  "insecure-agents"?: boolean;
  "agent-audience"?: string;
  "agent-service-account"?: string[];
}

/** The default agent ServiceAccount: egret-agent in control's own namespace. */
function defaultAgentServiceAccount(): string {
  return `${process.env.POD_NAMESPACE ?? "egret-system"}:egret-agent`;
}

/** Kubernetes mode: projected ServiceAccount tokens checked by TokenReview (docs/security.md). */
function tokenReviewAuthenticator(values: AgentAuthFlags, kube: { kc: KubeConfig; metrics: ControlMetrics }, log: Logger): AgentAuthenticator {
  const serviceAccounts = values["agent-service-account"] ?? [defaultAgentServiceAccount()];
  for (const sa of serviceAccounts) {
    if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?:[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(sa)) {
      throw new UsageError(`--agent-service-account: "${sa}" is not NAMESPACE:NAME (e.g. egret-system:egret-agent)`);
    }
  }
  const audience = values["agent-audience"]!;
  log.info({ audience, serviceAccounts }, "agents authenticate with projected ServiceAccount tokens (TokenReview)");
  return new TokenReviewAuthenticator({
    reviewer: kubeTokenReviewer(kube.kc),
    pods: kubeBoundPodReader(kube.kc),
    audience,
    serviceAccounts,
    onReview: (outcome) => kube.metrics.tokenReviews.inc({ outcome }),
  });
}

/** --agent-token-file / --insecure-agents (or, in Kubernetes mode, TokenReview) → who may deliver DNS evidence. */
function agentAuthenticator(values: AgentAuthFlags, log: Logger, kube?: { kc: KubeConfig; metrics: ControlMetrics }): AgentAuthenticator {
  const file = values["agent-token-file"];
  if (file !== undefined && values["insecure-agents"]) throw new UsageError("give either --agent-token-file FILE or --insecure-agents, not both");
  if (values["insecure-agents"]) {
    log.error(
      "--insecure-agents: ANY client that reaches the gRPC port may deliver DNS evidence for ANY pod. A pod can forge its own resolutions and " +
        "get past every name-based rule. Use --agent-token-file FILE (or --kubernetes) outside a lab.",
    );
    return new InsecureAgents();
  }
  if (file === undefined && kube) return tokenReviewAuthenticator(values, kube, log);
  if (file === undefined) {
    log.warn("no --agent-token-file: every Observe is refused with UNAUTHENTICATED (agents cannot deliver DNS evidence)");
    return new NoAgentCredentials();
  }
  try {
    return new FileAgentAuthenticator(file, log);
  } catch (err) {
    throw new UsageError(`--agent-token-file: ${(err as Error).message}`);
  }
}

/** Who may use `egret observe` / `egret status`: Kubernetes RBAC, a token file, or nobody. */
function operatorAuthenticator(values: { "operator-token-file"?: string }, kc: KubeConfig | undefined, log: Logger): OperatorAuthenticator {
  const file = values["operator-token-file"];
  if (kc) return new KubernetesOperatorAuthenticator(new KubeAccessReviewer(kc), log);
  if (file === undefined) {
    log.info("no --operator-token-file: egret observe and egret status are refused (UNAUTHENTICATED)");
    return new NoOperatorCredentials();
  }
  try {
    return new FileOperatorAuthenticator(file, log);
  } catch (err) {
    throw new UsageError(`--operator-token-file: ${(err as Error).message}`);
  }
}

const HELP = `usage: egret control (--kubernetes [--kubeconfig FILE] | --policies PATH... --pods FILE) [options]

Serves the egret.v1 gRPC API (FilterService for filters, AgentService for node agents) and an
HTTP port with /metrics, /healthz, /readyz, /status (and /wasm/egret.wasm with --wasm).

sources (exactly one):
  --kubernetes              watch Pods, Namespaces, EgressPolicy, ClusterEgressPolicy (in-cluster
                            config, or --kubeconfig / $KUBECONFIG)
  --policies PATH           policy file or folder (repeatable), with --pods FILE (YAML: pods with
                            name, namespace, ips, labels; namespaces with labels); reloaded on change

mesh configuration as evidence (Istio ServiceEntry addresses, docs/operations.md "Istio DNS proxying"):
  --service-entries PATH    file mode: ServiceEntry YAML/JSON file or folder (repeatable; reloaded)
  --no-service-entries      Kubernetes mode: do not watch networking.istio.io/v1 ServiceEntries
  --no-leader-election      Kubernetes mode: every replica writes policy status (default: the
                            replicas elect a leader on the Lease egret-control in
                            --leader-election-namespace, default $POD_NAMESPACE; only it writes)
  --leader-election-namespace NS
  --no-coverage-sharing     Kubernetes mode: count only this replica's filters in coverage (default:
                            each replica publishes its Watch bindings in the ConfigMap
                            egret-coverage-$POD_NAME in that namespace and counts every live
                            replica's; docs/operations.md "Coverage across replicas")
  --default-export-to NS    exportTo of ServiceEntries that set none, like Istio's
                            meshConfig.defaultServiceExportTo (repeatable; default "*")

options:
  --grpc-listen HOST:PORT   gRPC address (default 0.0.0.0:9090)
  --http-listen HOST:PORT   HTTP address (default 0.0.0.0:9091; "off" to disable)
  --audit-log stdout|FILE   verdict audit lines, one JSON object each (default stdout)
  --cluster-cidr CIDR       in-cluster network for "external: true" rules (repeatable); added to
                            the default private ranges (10/8, 172.16/12, 192.168/16, 100.64/10,
                            fc00::/7)
  --replace-default-cluster-cidrs
                            the --cluster-cidr list replaces those defaults. Loopback, link-local
                            and the cloud metadata addresses are never external either way
  --wasm FILE               serve this filter module at /wasm/egret.wasm (+ .sha256, /wasm/modules)
  --wasm-previous FILE|URL  also serve the previous release's module: a file, or the http:// URL of
                            the control Service, whose running replicas are asked for theirs at
                            start (none there = first install); an EnvoyFilter still naming the
                            previous sha256 keeps working during a rollout
  --operator-token-file FILE   who may read GET /debug/names?pod=NS/NAME[&ip=IP] (the names
                            control holds for a pod, and why) besides loopback callers (kubectl
                            port-forward), and (file mode) who may use egret observe / egret
                            status: lines "TOKEN NAMESPACES [WHO]", NAMESPACES * (all, and the
                            cluster-wide status rows) or ns1,ns2; without it egret observe/status
                            are refused in file mode. Kubernetes mode: for them the caller's own
                            RBAC decides (TokenReview, then SubjectAccessReview: list
                            egresspolicies.egret.dev in each namespace)
  --break-glass-namespace NS
                            the namespace whose label egret.dev/break-glass=monitor|exclude applies
                            to the whole mesh (default $POD_NAMESPACE, else egret-system); on any
                            other namespace the label applies to that namespace (docs/operations.md
                            "Break glass")
  --min-ttl SECONDS         floor for DNS TTLs (default 5)
  --max-ttl SECONDS         ceiling for DNS TTLs (default 86400)
  --grace SECONDS           keep entries this long past their TTL (default 30; a pod's policies may ask more)
  --max-entries-per-pod N   resolution entries per pod (default 20000)
  --max-entries N           resolution entries in total (default 2000000)
  --max-lookup-wait-ms MS   longest Lookup wait honoured (default 5000)

one peer cannot starve the others (per source address; each refusal counted in
egret_control_peer_limit_exceeded_total{limit}):
  --max-streams-per-peer N  open Watch/Observe/Report streams (default 64; RESOURCE_EXHAUSTED beyond)
  --max-lookups-per-peer N  Lookups waiting at once (default 256)
  --max-connections-per-peer N  HTTP/2 connections (default 32; more are closed at once)
  --max-message-bytes N     largest request message (default 4194304)

coverage (docs/operations.md "Coverage and bypass reports"):
  --filter-selector KEY=VALUE  the EnvoyFilter's workloadSelector (\`egret manifests --selector\`;
                            repeatable): selected pods with a sidecar it leaves out are reported
                            \`envoy-without-filter\` rather than \`filter-not-connected\`
  --coverage-grace-ms MS    a selected pod unenforced this long is announced (log, Event
                            EgressNotEnforced); default 30000. /status and /coverage show it at once

trust (docs/security.md):
  --agent-token-file FILE   agents allowed to deliver DNS evidence, one per line: \`TOKEN NODE-NAME\`
                            (blank lines and # comments allowed; re-read when it changes). An agent
                            sends \`authorization: Bearer TOKEN\` and speaks only for pods whose
                            \`node:\` (pods file) is NODE-NAME. Without it (file mode) every Observe
                            is refused with UNAUTHENTICATED
  --tls-cert FILE, --tls-key FILE
                            serve TLS (PEM) on --grpc-tls-listen; agents (bearer tokens) are then
                            served only there, verifying with \`egret agent --ca-file\`. Re-read
                            every minute (a renewed Secret is served without a restart). Without
                            them gRPC is plaintext, with a warning unless it listens on loopback
  --grpc-tls-listen HOST:PORT   TLS address (default 0.0.0.0:9443; AgentService and FilterService)
  --insecure-agents         accept Observe from anyone, for any pod (labs only; logged loudly)
  --agent-audience AUD      Kubernetes mode (without --agent-token-file): agents send a projected
                            ServiceAccount token with this audience (default egret-control), checked
                            by a TokenReview (cached); the stream is bound to the node of the pod the
                            token is bound to, and ends when the token expires
  --agent-service-account NS:NAME
                            the agents' ServiceAccount (repeatable; default $POD_NAMESPACE:egret-agent)
  --filter-snat-peer CIDR   (repeatable; off by default) clusters that SNAT pod traffic to control:
                            filter calls from these addresses are served for the pod they name,
                            unverified. Otherwise Watch/Lookup/Report are served only when the
                            peer address is one of the named pod's IPs (PERMISSION_DENIED if not)
`;

function int(name: string, value: string | undefined, min: number, max = Number.MAX_SAFE_INTEGER): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max) throw new UsageError(`--${name} must be an integer from ${min} to ${max} (got ${JSON.stringify(value)})`);
  return n;
}

/** This release's module, plus the previous release's from a file or from the running replicas. */
async function wasmModules(currentPath: string, previous: string | undefined, log: ReturnType<typeof createLogger>): Promise<WasmModuleSet> {
  let set: WasmModuleSet;
  try {
    set = { current: loadWasmModule(currentPath) };
  } catch (err) {
    throw new UsageError(`--wasm: ${(err as Error).message}`);
  }
  if (previous === undefined) return set;
  if (/^https?:\/\//.test(previous)) {
    const result = await fetchPreviousModule({ peerUrl: previous, own: set.current });
    log.info({ previous: result.module?.sha256 }, result.note);
    return { ...set, previous: result.module };
  }
  try {
    return { ...set, previous: loadWasmModule(previous) };
  } catch (err) {
    throw new UsageError(`--wasm-previous: ${(err as Error).message}`);
  }
}

/** --filter-selector KEY=VALUE… → labels (like the EnvoyFilter's workloadSelector). */
function parseSelector(pairs: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf("=");
    if (eq <= 0) throw new UsageError(`--filter-selector ${JSON.stringify(pair)}: expected KEY=VALUE (a label of the EnvoyFilter's workloadSelector)`);
    out[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return out;
}

export const command: CliCommand = {
  name: "control",
  summary: "run the control service (gRPC API for filters and agents; Kubernetes or file mode)",
  async run(argv) {
    const { values } = parseFlags({
        args: argv,
        options: {
          kubernetes: { type: "boolean" },
          kubeconfig: { type: "string" },
          policies: { type: "string", multiple: true },
          pods: { type: "string" },
          "service-entries": { type: "string", multiple: true },
          "no-service-entries": { type: "boolean" },
          "no-leader-election": { type: "boolean" },
          "no-coverage-sharing": { type: "boolean" },
          "leader-election-namespace": { type: "string" },
          "default-export-to": { type: "string", multiple: true },
          "grpc-listen": { type: "string", default: "0.0.0.0:9090" },
          "http-listen": { type: "string", default: "0.0.0.0:9091" },
          "audit-log": { type: "string", default: "stdout" },
          "cluster-cidr": { type: "string", multiple: true },
          "replace-default-cluster-cidrs": { type: "boolean" },
          "break-glass-namespace": { type: "string" },
          wasm: { type: "string" },
          "wasm-previous": { type: "string" },
          "operator-token-file": { type: "string" },
          "min-ttl": { type: "string" },
          "max-ttl": { type: "string" },
          grace: { type: "string" },
          "max-entries-per-pod": { type: "string" },
          "max-entries": { type: "string" },
          "max-lookup-wait-ms": { type: "string" },
          "max-streams-per-peer": { type: "string" },
          "max-lookups-per-peer": { type: "string" },
          "max-connections-per-peer": { type: "string" },
          "max-message-bytes": { type: "string" },
          "agent-token-file": { type: "string" },
          "insecure-agents": { type: "boolean" },
          "agent-audience": { type: "string", default: "egret-control" },
          "agent-service-account": { type: "string", multiple: true },
          "tls-cert": { type: "string" },
          "tls-key": { type: "string" },
          "grpc-tls-listen": { type: "string", default: "0.0.0.0:9443" },
          "filter-snat-peer": { type: "string", multiple: true },
          "filter-selector": { type: "string", multiple: true },
          "coverage-grace-ms": { type: "string" },
          help: { type: "boolean", short: "h" },
        },
        strict: true,
        allowPositionals: false,
    }, HELP);
    if (values.help) {
      process.stdout.write(HELP);
      return 0;
    }
    const fileMode = values.policies !== undefined || values.pods !== undefined;
    if (Boolean(values.kubernetes) === fileMode) throw new UsageError(`choose one source: --kubernetes, or --policies PATH... with --pods FILE\n\n${HELP}`);
    if (fileMode && (!values.policies || !values.pods)) throw new UsageError("file mode needs both --policies PATH (repeatable) and --pods FILE");
    if (values["service-entries"] && !fileMode) throw new UsageError("--service-entries PATH is for file mode; in Kubernetes mode ServiceEntries are watched (--no-service-entries turns that off)");
    if (values["no-service-entries"] && fileMode) throw new UsageError("--no-service-entries is for Kubernetes mode; in file mode simply omit --service-entries");
    const listens: ["grpc-listen" | "http-listen", string][] = [["grpc-listen", values["grpc-listen"]]];
    if (values["http-listen"] !== "off") listens.push(["http-listen", values["http-listen"]]);
    for (const [a, address] of listens) {
      try {
        parseHostPort(address, `--${a}`, LISTEN_ADDRESS);
      } catch (err) {
        throw new UsageError((err as Error).message);
      }
    }
    const storeLimits = {
      minTtlSeconds: int("min-ttl", values["min-ttl"], 0, 86_400),
      maxTtlSeconds: int("max-ttl", values["max-ttl"], 1, 7 * 86_400),
      graceSeconds: int("grace", values.grace, 0, 86_400),
      maxEntriesPerPod: int("max-entries-per-pod", values["max-entries-per-pod"], 1),
      maxEntriesTotal: int("max-entries", values["max-entries"], 1),
    };
    const limits = Object.fromEntries(Object.entries(storeLimits).filter(([, v]) => v !== undefined));
    const maxLookupWaitMs = int("max-lookup-wait-ms", values["max-lookup-wait-ms"], 1, 60_000);
    const peerLimitFlags = {
      maxStreamsPerPeer: int("max-streams-per-peer", values["max-streams-per-peer"], 1),
      maxLookupsPerPeer: int("max-lookups-per-peer", values["max-lookups-per-peer"], 1),
      maxConnectionsPerPeer: int("max-connections-per-peer", values["max-connections-per-peer"], 1),
      maxMessageBytes: int("max-message-bytes", values["max-message-bytes"], 64 * 1024, 64 * 1024 * 1024),
    };
    const peerLimits = Object.fromEntries(Object.entries(peerLimitFlags).filter(([, v]) => v !== undefined));

    const filterSelector = parseSelector(values["filter-selector"] ?? []);
    const coverageGraceMs = int("coverage-grace-ms", values["coverage-grace-ms"], 0, 86_400_000);
    const log = createLogger("control");
    const metrics = createControlMetrics({ defaultMetrics: true });
    const kc = values.kubernetes ? loadKubeConfig(values.kubeconfig) : undefined;
    const agentAuth = agentAuthenticator(values, log, kc ? { kc, metrics } : undefined);
    const tls = tlsOptions(values, log);
    const filterSnatPeers = values["filter-snat-peer"] ?? [];
    try {
      new CidrSet(filterSnatPeers, "--filter-snat-peer");
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
    if (filterSnatPeers.length > 0) {
      log.warn({ ranges: filterSnatPeers }, "--filter-snat-peer: filter calls from these addresses are served for the pod they claim, unverified");
    }
    const routes: Route[] = [];
    if (values["wasm-previous"] !== undefined && !values.wasm) throw new UsageError("--wasm-previous needs --wasm FILE (the module this release serves)");
    if (values.wasm) routes.push(createWasmHandler(await wasmModules(values.wasm, values["wasm-previous"], log)));
    let source: ControlSource;
    let leader: LeaderElector | undefined;
    if (kc) {
      const leaseNamespace = values["leader-election-namespace"] ?? process.env.POD_NAMESPACE ?? "egret-system";
      const identity = process.env.POD_NAME ?? `${hostname()}-${process.pid}`;
      leader = values["no-leader-election"]
        ? undefined
        : new LeaderElector({
            client: kubeLeaseClient(kc, leaseNamespace, "egret-control"),
            identity,
            name: "egret-control",
            namespace: leaseNamespace,
            log,
          });
      source = new KubeSource({
        leader,
        kubeConfig: kc,
        policyApi: defaultPolicyApi,
        log,
        instance: process.env.POD_NAME,
        serviceEntries: !values["no-service-entries"],
        ...(values["no-coverage-sharing"] ? {} : { coverageSharing: { namespace: leaseNamespace, identity } }),
      });
    } else {
      source = fileControlSource({
        policyPaths: values.policies!,
        podsFile: values.pods!,
        serviceEntryPaths: values["service-entries"],
        policyApi: defaultPolicyApi,
        log,
      });
    }
    const operatorAccess = operatorAuthenticator(values, kc, log);
    const podNamespace = process.env.POD_NAMESPACE;
    const audit = openAuditWriter(values["audit-log"]!);
    let operatorAuth: LoopbackOrTokenAuth;
    try {
      operatorAuth = new LoopbackOrTokenAuth(values["operator-token-file"]);
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
    const elector = leader;
    const service = new ControlService({
      operatorAuth,
      // `egret status` shows which replica leads; without election (file mode, --no-leader-election) it is unknown.
      ...(elector ? { leader: () => ({ self: elector.isLeader, holder: elector.observedHolder }) } : {}),
      policyApi: defaultPolicyApi,
      source,
      log,
      grpcListen: values["grpc-listen"]!,
      httpListen: values["http-listen"] === "off" ? undefined : values["http-listen"],
      audit,
      clusterCidrs: values["cluster-cidr"],
      defaultExportTo: values["default-export-to"],
      replaceDefaultClusterCidrs: values["replace-default-cluster-cidrs"] === true,
      breakGlassNamespace: values["break-glass-namespace"] ?? process.env.POD_NAMESPACE ?? "egret-system",
      storeLimits: limits,
      grpcLimits: maxLookupWaitMs ? { maxLookupWaitMs } : undefined,
      peerLimits,
      httpRoutes: routes,
      serverId: process.env.POD_NAME,
      metrics,
      agentAuth,
      filterSnatPeers,
      operatorAccess,
      ...(kc && podNamespace ? { replicaSelector: { namespace: podNamespace, labels: { "app.kubernetes.io/name": "egret", "app.kubernetes.io/component": "control" } } } : {}),
      filterSelector,
      coverageGraceMs,
      ...(tls ? { tls } : {}),
    });

    return await new Promise<number>((resolve) => {
      let exiting = false;
      const exit = async (code: number, why: string, err?: unknown) => {
        if (exiting) return;
        exiting = true;
        if (err) log.error({ err: err instanceof Error ? err.message : String(err) }, why);
        else log.info(why);
        await service.stop().catch(() => undefined);
        await audit.close();
        resolve(code);
      };
      process.once("SIGTERM", () => void exit(0, "SIGTERM: shutting down"));
      process.once("SIGINT", () => void exit(0, "SIGINT: shutting down"));
      service.start().catch((err: unknown) => void exit(1, "egret control failed to start", err));
    });
  },
};
