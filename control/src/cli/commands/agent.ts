// `egret agent`: the node agent (DaemonSet). Flags are documented in control/src/agent/README.md.
import { readFileSync } from "node:fs";
import { hostname } from "node:os";
import { readFlags } from "../../common/flags.js";
import { Agent, type AgentOptions } from "../../agent/agent.js";
import { agentCredentials, readToken, type AgentCredentials } from "../../agent/credentials.js";
import { createAgentMetrics, serveMetrics } from "../../agent/metrics.js";
import { checkInterfacePatterns, interfacePatternError } from "../../agent/interface-patterns.js";
import { listInterfaces } from "../../agent/capture.js";
import { createLogger } from "../../common/log.js";
import { UsageError, type CliCommand } from "../command.js";
import { parseHostPort } from "../../common/host-port.js";

const HELP = `usage: egret agent --trusted-resolver IP... (--control HOST:PORT... | --control-service NAME:PORT) [options]

Captures DNS on this node (AF_PACKET, TPACKET_V3 ring) and streams the answers pods receive to every control replica.

capture
  --interface NAME|GLOB     interface or pattern to capture on, repeatable ("veth*", "cali*"), or
                            "any" (default: any). Only "*" and "?" are wildcards ("veth+" is not);
                            together the patterns must match an interface when the agent starts
  --dns-port N              DNS server port, repeatable (default 53); the kernel BPF filter keeps
                            answers from these ports toward pods, queries to them, and IP fragments
  --capture-buffer-mb N     kernel capture ring per socket (default 64 with "any", 8 per interface
                            otherwise); frames are packed, so 8 MiB hold about 45,000 DNS answers
  --capture-queue-mb N      captured frames waiting for the event loop, all sockets together
                            (default 64): a reader thread empties the kernel rings into it
  --rescan-ms MS            how often interface patterns are re-evaluated (default 5000)
evidence
  --trusted-resolver IP     resolver address or CIDR whose answers count (repeatable, required)
  --pod-cidr CIDR           pod address range (repeatable); queries from elsewhere are ignored and a
                            "response" from a pod address is rejected as sent-by-pod
  --min-ttl S, --max-ttl S  clamp answer TTLs (default 0 and 604800)
  --query-timeout-ms MS     forget unanswered queries (default 10000)
  --max-pending-per-pod N   pending queries per pod (default 1024)
  --max-pending N           pending queries in total (default 65536)
replay store
  --max-observations-per-pod N   still-valid observations kept per pod for replay (default 2048)
  --max-observations N           ... in total (default 65536)
  --max-observation-bytes-per-pod N   replay memory per pod, bytes (default 4194304); a pod over it
                                 loses its own oldest observations
  --max-observation-bytes N      replay memory in total, bytes (default 67108864); when full, the
                                 pod holding the most loses its oldest
  --negative-ttl S               how long NXDOMAIN/NODATA answers are replayed (default 30)
control
  --control HOST:PORT       a control replica (repeatable)
  --control-service NAME:PORT   headless Service resolving to every replica, re-resolved periodically
  --control-resolve-ms MS   re-resolution interval (default 10000)
  --batch-size N            observations per batch at most (default 256)
  --batch-bytes N           encoded bytes per batch at most (default 1048576, below control's 4 MiB
                            gRPC limit; halved when control refuses one as too large)
  --window N                unacknowledged batches in flight per replica (default 8)
  --queue N                 observations queued per replica before the oldest are dropped (default 100000)
  --ack-timeout-ms MS       reconnect when a batch is not acknowledged in time (default 15000)
  --token-file FILE         this agent's credential, sent as \`authorization: Bearer TOKEN\` and
                            re-read on every reconnect (file mode: the token control's
                            --agent-token-file maps to this node; Kubernetes: the projected
                            ServiceAccount token). Without it control refuses the stream
  --ca-file FILE            verify control's TLS certificate with this CA (PEM); without it the
                            connection is plaintext
  --tls-server-name NAME    the name control's certificate must carry (with --ca-file): the agent
                            dials replica IPs, which the certificate does not name (Kubernetes:
                            egret-control.egret-system.svc)
bypass detection (docs/operations.md "Coverage and bypass reports")
  --no-bypass               do not watch outbound TCP SYNs and UDP on pod interfaces
  --bypass-window-ms MS     how long a SYN waits for a filter verdict covering it before it is a
                            bypass (default 4000; above the filter's detectTimeoutMs plus its
                            reportIntervalMs: a client that sends nothing is judged only then)
  --cluster-cidr CIDR       in-cluster network (repeatable), added to the default private ranges
                            as in egret control: SYNs to it are not judged (Envoy's own upstreams,
                            in-mesh services); UDP is judged whatever its destination
  --bypass-rate N           new SYN destinations / UDP flows per pod per second reported at most
                            (default 50, burst 4x); beyond: dropped and counted
shutdown
  --drain-timeout-ms MS     on SIGTERM, wait this long at most for every replica to acknowledge what
                            was captured (default 8000; keep it below terminationGracePeriodSeconds)
  --drain-capture-ms MS     on SIGTERM, keep capturing this long first (default 300): answers still
                            in the kernel's capture ring are delivered too
identity and metrics
  --node-name NAME          node name (default $NODE_NAME, else the host name)
  --metrics-address H:P     Prometheus /metrics and /healthz (default 0.0.0.0:9102; port 0 = any)
`;

const OPTIONS = {
  interface: { type: "string", multiple: true },
  "dns-port": { type: "string", multiple: true },
  "capture-buffer-mb": { type: "string" },
  "capture-queue-mb": { type: "string" },
  "rescan-ms": { type: "string" },
  "trusted-resolver": { type: "string", multiple: true },
  "pod-cidr": { type: "string", multiple: true },
  "min-ttl": { type: "string" },
  "max-ttl": { type: "string" },
  "query-timeout-ms": { type: "string" },
  "max-pending-per-pod": { type: "string" },
  "max-pending": { type: "string" },
  "max-observations-per-pod": { type: "string" },
  "max-observations": { type: "string" },
  "max-observation-bytes-per-pod": { type: "string" },
  "max-observation-bytes": { type: "string" },
  "batch-bytes": { type: "string" },
  "negative-ttl": { type: "string" },
  control: { type: "string", multiple: true },
  "control-service": { type: "string" },
  "control-resolve-ms": { type: "string" },
  "batch-size": { type: "string" },
  window: { type: "string" },
  queue: { type: "string" },
  "ack-timeout-ms": { type: "string" },
  "token-file": { type: "string" },
  "ca-file": { type: "string" },
  "tls-server-name": { type: "string" },
  "node-name": { type: "string" },
  "metrics-address": { type: "string" },
  "drain-timeout-ms": { type: "string" },
  "drain-capture-ms": { type: "string" },
  "no-bypass": { type: "boolean" },
  "bypass-window-ms": { type: "string" },
  "bypass-rate": { type: "string" },
  "cluster-cidr": { type: "string", multiple: true },
  help: { type: "boolean", short: "h" },
} as const;

/** --token-file / --ca-file, checked now so a wrong path is a usage error rather than a retry loop. */
function credentialsFrom(tokenFile: unknown, caFile: unknown, serverName: unknown): AgentCredentials {
  const o = {
    ...(typeof tokenFile === "string" ? { tokenFile } : {}),
    ...(typeof caFile === "string" ? { caFile } : {}),
    ...(typeof serverName === "string" ? { serverName } : {}),
  };
  try {
    if (o.tokenFile) readToken(o.tokenFile);
    return agentCredentials(o);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

function bootId(): string {
  try {
    return readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim().slice(0, 8);
  } catch {
    return "noboot";
  }
}

export const command: CliCommand = {
  name: "agent",
  summary: "node agent: capture DNS answers to pods (libpcap) and stream them to control",
  async run(argv) {
    let values: Record<string, string | string[] | boolean | undefined>;
    try {
      ({ values } = readFlags({ args: argv, options: OPTIONS, strict: true, allowPositionals: false }));
    } catch (err) {
      throw new UsageError(`${(err as Error).message}\n\n${HELP}`);
    }
    if (values.help) {
      process.stdout.write(HELP);
      return 0;
    }
    const int = (name: string, fallback: number, min = 0): number => {
      const v = values[name];
      if (v === undefined) return fallback;
      if (typeof v !== "string" || !/^\d+$/.test(v) || Number(v) < min) throw new UsageError(`--${name} must be an integer >= ${min}, got "${String(v)}"`);
      return Number(v);
    };
    const list = (name: string): string[] => (values[name] as string[] | undefined) ?? [];
    const ports = (list("dns-port").length ? list("dns-port") : ["53"]).map((p) => {
      if (!/^\d+$/.test(p) || Number(p) < 1 || Number(p) > 65535) throw new UsageError(`--dns-port must be 1..65535, got "${p}"`);
      return Number(p);
    });
    let metricsHost = "0.0.0.0", metricsPort = 9102;
    if (typeof values["metrics-address"] === "string") {
      let m: { host: string; port: number };
      try {
        m = parseHostPort(values["metrics-address"], "--metrics-address", { allowEmptyHost: true, allowPortZero: true });
      } catch (e) {
        throw new UsageError((e as Error).message);
      }
      metricsHost = m.host;
      metricsPort = m.port;
    }
    const nodeName = (values["node-name"] as string | undefined) ?? process.env.NODE_NAME ?? hostname();
    const log = createLogger("agent");
    const minTtlSec = int("min-ttl", 0);
    const maxTtlSec = int("max-ttl", 604_800);
    if (maxTtlSec < minTtlSec) throw new UsageError(`--max-ttl (${maxTtlSec}) is below --min-ttl (${minTtlSec})`);
    const interfaces = list("interface").length ? list("interface") : ["any"];
    for (const p of interfaces) {
      const why = interfacePatternError(p);
      if (why) throw new UsageError(why);
    }
    const check = checkInterfacePatterns(interfaces, listInterfaces());
    if (check.error) throw new UsageError(check.error);
    if (check.unmatched.length > 0) log.warn({ patterns: check.unmatched }, "these --interface patterns match no interface yet (re-checked every --rescan-ms)");
    const options: AgentOptions = {
      agentId: `${nodeName}/${bootId()}/${process.pid}`,
      log,
      capture: {
        interfaces,
        bufferBytes: int("capture-buffer-mb", list("interface").length === 0 || list("interface").includes("any") ? 64 : 8, 1) * 2 ** 20,
        queueBytes: int("capture-queue-mb", 64, 1) * 2 ** 20,
        rescanMs: int("rescan-ms", 5000, 100),
      },
      dns: {
        ports,
        trustedResolvers: list("trusted-resolver"),
        podCidrs: list("pod-cidr"),
        minTtlSec, maxTtlSec,
        queryTimeoutMs: int("query-timeout-ms", 10_000, 1),
        maxPendingPerPod: int("max-pending-per-pod", 1024, 1),
        maxPendingTotal: int("max-pending", 65_536, 1),
      },
      store: {
        maxPerPod: int("max-observations-per-pod", 2048, 1),
        maxTotal: int("max-observations", 65_536, 1),
        negativeTtlSec: int("negative-ttl", 30),
        maxBytesPerPod: int("max-observation-bytes-per-pod", 4 << 20, 4096),
        maxBytesTotal: int("max-observation-bytes", 64 << 20, 4096),
      },
      control: {
        addresses: list("control"),
        ...(typeof values["control-service"] === "string" ? { service: values["control-service"] } : {}),
        resolveEveryMs: int("control-resolve-ms", 10_000, 100),
        maxBatch: int("batch-size", 256, 1),
        maxBatchBytes: int("batch-bytes", 1 << 20, 16 << 10),
        window: int("window", 8, 1),
        maxQueue: int("queue", 100_000, 1),
        ackTimeoutMs: int("ack-timeout-ms", 15_000, 100),
        connectTimeoutMs: 5_000,
        credentials: credentialsFrom(values["token-file"], values["ca-file"], values["tls-server-name"]),
      },
    };
    if (!values["no-bypass"]) {
      const rate = int("bypass-rate", 50, 1);
      options.egress = { clusterCidrs: list("cluster-cidr"), limits: { windowMs: int("bypass-window-ms", 4_000, 100), newPerPodPerSecond: rate, newBurst: 4 * rate } };
    }
    if (options.control.addresses.length === 0 && !options.control.service) {
      throw new UsageError(`give at least one --control HOST:PORT or --control-service NAME:PORT\n\n${HELP}`);
    }
    let agent: Agent;
    try {
      agent = new Agent(options);
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
    const { registry, batchLatency } = createAgentMetrics(agent);
    agent.onBatchAcked = (replica, seconds) => batchLatency.labels(replica).observe(seconds);
    await agent.start();
    const { server, port } = await serveMetrics(agent, registry, metricsHost, metricsPort,
      (err) => log.warn({ err: err.message }, "metrics port busy (the previous agent is draining?); capturing anyway, retrying the port every 500 ms"));
    if (typeof values["token-file"] !== "string") log.warn("no --token-file: control refuses Observe from unauthenticated agents unless it runs with --insecure-agents");
    log.info({ agentId: options.agentId, interfaces: agent.health().interfaces, metricsPort: port, trusted: options.dns.trustedResolvers }, "egret agent running");
    await new Promise<void>((resolve) => {
      const stop = (sig: string) => {
        log.info({ signal: sig }, "stopping");
        resolve();
      };
      process.once("SIGTERM", () => stop("SIGTERM"));
      process.once("SIGINT", () => stop("SIGINT"));
    });
    // Drain: what this agent captured reaches every replica before it exits (a rolling update
    // starts the next agent first — maxSurge — so the two overlap and nothing falls between them).
    const drainStarted = Date.now();
    const undelivered = await agent.drain({ captureTailMs: int("drain-capture-ms", 300), timeoutMs: int("drain-timeout-ms", 8_000) });
    if (Object.keys(undelivered).length > 0) log.warn({ undelivered, ms: Date.now() - drainStarted }, "drain deadline passed: these replicas did not acknowledge everything (the next agent cannot replay it)");
    else log.info({ ms: Date.now() - drainStarted }, "drained: every replica acknowledged every observation");
    server.close();
    return 0;
  },
};
