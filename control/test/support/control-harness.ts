// A real ControlService in file mode on loopback, and a Watch client that applies responses the
// way the filter does (SNAPSHOT replaces, DELTA patches), so tests assert on the filter's view.
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import { stringify } from "yaml";
import { silentLogger } from "../../src/common/log.js";
import { fileControlSource } from "../../src/control/file-source.js";
import { defaultPolicyApi } from "../../src/control/policy-api.js";
import { ControlService, type ControlServiceOptions } from "../../src/control/service.js";
import { FileAgentAuthenticator } from "../../src/auth/agent-tokens.js";
import { SourceBoundForwarder } from "../../src/host/upstream-bind.js";
import {
  bytesToIp,
  createAgentClient,
  createFilterClient,
  ipToBytes,
  type FilterServiceClient,
  type Observation,
  type ObserveResponse,
  type Outgoing,
  type WatchRequest,
  type WatchResponse,
} from "../../src/proto/index.js";

export interface PodSpec {
  name: string;
  namespace: string;
  ips: string[];
  labels: Record<string, string>;
  /** spec.nodeName; ControlFixture places pods without one on TEST_NODE. */
  node?: string;
  /** Whether the pod runs a sidecar (the pods file's `sidecar:`); unset: unknown. */
  sidecar?: boolean;
  /** Pod annotations (Istio's traffic.sidecar.istio.io/exclude* are read). */
  annotations?: Record<string, string>;
}

/** The node the fixture's pods run on by default, and the agent token for it. */
export const TEST_NODE = "node-1";
export const TEST_AGENT_TOKEN = "test-agent-token-for-node-1";
/** Another node and its agent's token (attacks: evidence from the wrong node). */
export const OTHER_NODE = "node-2";
export const OTHER_AGENT_TOKEN = "test-agent-token-for-node-2";

/**
 * The pod's "network namespace" on this machine: a 127.0.0.0/8 address its filter's calls come
 * from (127.b.c.d for a pod whose first IPv4 address is a.b.c.d; from the last two bytes of its
 * IPv6 address otherwise). Control binds filters to pods by that address, as in a cluster.
 */
export function loopbackOf(pod: { ips: string[] }): string {
  const v4 = pod.ips.find((ip) => ip.includes("."));
  if (v4) return `127.${v4.split(".").slice(1).join(".")}`;
  const b = ipToBytes(pod.ips[0]!);
  return `127.66.${b[14]}.${b[15]}`;
}

/** The pods file a fixture writes: each pod with its loopback address and a node. */
export function podsYaml(pods: PodSpec[], namespaces: Record<string, Record<string, string>> = {}): string {
  return stringify({
    namespaces: Object.entries(namespaces).map(([name, labels]) => ({ name, labels })),
    pods: pods.map((p) => ({ ...p, ips: [...p.ips, loopbackOf(p)], node: p.node ?? TEST_NODE })),
  });
}

/** A forwarder that makes a filter's calls come from `pod`'s loopback address (closed by the caller). */
export async function fromPod(address: string, pod: { ips: string[] }): Promise<SourceBoundForwarder> {
  return SourceBoundForwarder.start(address, loopbackOf(pod));
}

export function egressPolicy(name: string, namespace: string, podLabels: Record<string, string>, domains: string[], extra: Record<string, unknown> = {}): string {
  return stringify({
    apiVersion: "egret.dev/v1alpha1",
    kind: "EgressPolicy",
    metadata: { name, namespace },
    spec: { podSelector: { matchLabels: podLabels }, rules: [{ action: "Allow", to: { domains } }], ...extra },
  });
}

/** Polls `check` until it returns a value (not undefined/false) or the timeout passes. */
export async function eventually<T>(check: () => T | undefined | false | Promise<T | undefined | false>, what: string, timeoutMs = 10_000, intervalMs = 10): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

export class ControlFixture {
  readonly dir: string;
  readonly policyDir: string;
  readonly podsFile: string;
  readonly audit: string[] = [];
  readonly tokenFile: string;
  service!: ControlService;
  address = "";
  ports: { grpcPort: number; httpPort?: number; tlsPort?: number } = { grpcPort: 0 };
  private source?: ReturnType<typeof fileControlSource>;
  private readonly forwarders = new Map<string, Promise<SourceBoundForwarder>>();

  constructor(
    pods: PodSpec[],
    policies: Record<string, string>,
    namespaces: Record<string, Record<string, string>> = {},
    private readonly extra: Partial<ControlServiceOptions> = {},
  ) {
    this.dir = mkdtempSync(join(tmpdir(), "egE-control-"));
    this.policyDir = join(this.dir, "policies");
    this.podsFile = join(this.dir, "pods.yaml");
    writeFileSync(this.podsFile, podsYaml(pods, namespaces));
    rmSync(this.policyDir, { recursive: true, force: true });
    for (const [file, text] of Object.entries(policies)) this.writePolicy(file, text);
    this.tokenFile = join(this.dir, "agent-tokens");
    writeFileSync(this.tokenFile, `# test agents\n${TEST_AGENT_TOKEN} ${TEST_NODE}\n${OTHER_AGENT_TOKEN} ${OTHER_NODE}\n`);
  }

  /** A file holding one agent's token (what `egret agent --token-file` reads). */
  agentTokenFile(token = TEST_AGENT_TOKEN): string {
    const file = join(this.dir, `agent-token-${createHash("sha256").update(token).digest("hex").slice(0, 8)}`);
    writeFileSync(file, `${token}\n`);
    return file;
  }

  /** The address a filter of `pod` dials: a forwarder from the pod's loopback address (one per pod). */
  filterAddress(pod: { ips: string[] }): Promise<string> {
    const from = loopbackOf(pod);
    let f = this.forwarders.get(from);
    if (!f) this.forwarders.set(from, (f = SourceBoundForwarder.start(this.address, from)));
    return f.then((x) => x.address);
  }

  writePolicy(file: string, text: string): void {
    mkdirSync(this.policyDir, { recursive: true });
    writeFileSync(join(this.policyDir, file), text);
  }

  writePods(pods: PodSpec[], namespaces: Record<string, Record<string, string>> = {}): void {
    writeFileSync(this.podsFile, podsYaml(pods, namespaces));
  }

  /** Reloads files now (tests do not wait for fs.watch). */
  reload(): void {
    this.source?.reload();
  }

  async start(port = 0): Promise<this> {
    this.source = fileControlSource({ policyPaths: [this.policyDir], podsFile: this.podsFile, policyApi: defaultPolicyApi, log: silentLogger(), debounceMs: 50 });
    this.service = new ControlService({
      policyApi: defaultPolicyApi,
      source: this.source,
      log: silentLogger(),
      grpcListen: `127.0.0.1:${port}`,
      audit: { write: (line) => void this.audit.push(line) },
      sweepIntervalMs: 50,
      agentAuth: new FileAgentAuthenticator(this.tokenFile, silentLogger()),
      ...this.extra,
    });
    this.ports = await this.service.start();
    this.address = `127.0.0.1:${this.ports.grpcPort}`;
    return this;
  }

  async stop(): Promise<void> {
    await this.service?.stop();
    for (const f of this.forwarders.values()) (await f).close();
    this.forwarders.clear();
  }

  cleanup(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** The filter's view of one Watch stream. */
export class WatchClient {
  readonly responses: WatchResponse[] = [];
  readonly entries = new Map<string, { names: string[]; expires: number }>();
  policyHash = "";
  selected = false;
  epoch = "";
  version = 0;
  error?: grpc.ServiceError;
  ended = false;
  private readonly client: FilterServiceClient;
  private readonly call: grpc.ClientDuplexStream<Outgoing<WatchRequest>, WatchResponse>;

  constructor(
    address: string,
    pod: { namespace: string; name: string; ips?: string[] },
    resume?: { epoch: string; version: number },
    private readonly options: { ack?: boolean; nackWhen?: (r: WatchResponse) => boolean } = {},
  ) {
    this.client = createFilterClient(address);
    this.call = this.client.Watch();
    this.call.on("data", (r: WatchResponse) => this.apply(r));
    this.call.on("error", (err: grpc.ServiceError) => (this.error = err));
    this.call.on("end", () => (this.ended = true));
    this.call.write({
      type: "WATCH_REQUEST_TYPE_SUBSCRIBE",
      pod_name: pod.name,
      pod_namespace: pod.namespace,
      pod_ips: (pod.ips ?? []).map(ipToBytes),
      instance_id: "test-filter",
      resume_epoch: resume?.epoch ?? "",
      resume_version: resume?.version ?? 0,
    });
    if (resume) {
      this.epoch = resume.epoch;
      this.version = resume.version;
    }
  }

  /** Sends a raw request (tests of protocol errors). */
  send(req: Outgoing<WatchRequest>): void {
    this.call.write(req);
  }

  names(ip: string): string[] | undefined {
    return this.entries.get(ip)?.names;
  }

  close(): void {
    this.call.cancel();
    this.client.close();
  }

  private apply(r: WatchResponse): void {
    this.responses.push(r);
    if (this.options.nackWhen?.(r)) {
      this.call.write({ type: "WATCH_REQUEST_TYPE_NACK", response_version: r.version, response_nonce: r.nonce, error_detail: "test says no" });
      return;
    }
    if (r.type === "WATCH_RESPONSE_TYPE_SNAPSHOT") {
      this.entries.clear();
      this.policyHash = r.policy_hash;
    } else {
      if (r.epoch !== this.epoch || r.base_version !== this.version) throw new Error(`delta base ${r.epoch}/${r.base_version} does not apply to ${this.epoch}/${this.version}`);
      if (r.policy_hash) this.policyHash = r.policy_hash;
      for (const ip of r.removals) this.entries.delete(bytesToIp(ip)!);
    }
    for (const u of r.upserts) this.entries.set(bytesToIp(u.ip)!, { names: u.names.map((n) => n.name), expires: u.expires_unix_ms });
    this.selected = r.pod_selected;
    this.epoch = r.epoch;
    this.version = r.version;
    if (this.options.ack !== false) {
      this.call.write({ type: "WATCH_REQUEST_TYPE_ACK", response_version: r.version, response_nonce: r.nonce });
    }
  }
}

export function observation(podIp: string, name: string, ips: string[], ttl = 300, extra: Partial<Outgoing<Observation>> = {}): Outgoing<Observation> {
  return {
    pod_ip: ipToBytes(podIp),
    query_name: name,
    query_type: ips[0]?.includes(":") ? 28 : 1,
    rcode: 0,
    cname_chain: [],
    answers: ips.map((ip) => ({ ip: ipToBytes(ip), ttl_seconds: ttl })),
    resolver_ip: ipToBytes("198.19.0.53"),
    resolver_port: 53,
    transport: "DNS_TRANSPORT_UDP",
    observed_unix_ms: Date.now(),
    ...extra,
  };
}

/** Metadata `authorization: Bearer TOKEN` (an agent's credential). */
export function bearer(token: string): grpc.Metadata {
  const md = new grpc.Metadata();
  md.set("authorization", `Bearer ${token}`);
  return md;
}

/** Sends one Observe batch as TEST_NODE's agent (or with `token`; "" = none) and resolves with the server's ack. */
export async function observe(address: string, observations: Outgoing<Observation>[], sequence = 1, replay = false, token = TEST_AGENT_TOKEN) {
  const client = createAgentClient(address);
  try {
    const call = client.Observe(token ? bearer(token) : new grpc.Metadata());
    const ack = await new Promise<ObserveResponse>((resolve, reject) => {
      call.on("data", resolve);
      call.on("error", reject);
      call.write({ agent_id: "test-agent", sequence, observations, replay });
    });
    call.end();
    return ack;
  } finally {
    client.close();
  }
}
