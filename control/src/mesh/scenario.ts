// Scenario files (istio-tests/scenarios/*.yaml; format in istio-tests/scenarios/README.md):
// pods with labels, namespaces with labels, inline policies, and steps with expected outcomes.
// The loader reports every mistake at once, each with file:line:column, the field path, what is
// wrong and what to write instead.
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { isIPv4 } from "node:net";
import { LineCounter, parseDocument, isMap, isSeq, type Document } from "yaml";
import { isDnsName } from "./world.js";
import { validatePolicyObject } from "../policy/index.js";
import { checkOutput, importDocuments } from "../import/index.js";
import { parseServiceEntry } from "../control/mesh-config.js";

export const CLIENTS = ["psql", "mariadb", "redis-cli", "curl", "openssl", "tcp"] as const;
export type ClientName = (typeof CLIENTS)[number];
export const RESOLVERS = ["dig", "getent", "node"] as const;
export type ResolverClient = (typeof RESOLVERS)[number];
export const OUTCOMES = ["connected", "refused"] as const;
export type Outcome = (typeof OUTCOMES)[number];
export const VERDICTS = ["allow", "deny", "alert", "would-deny"] as const;
export const RESTARTABLE = ["control", "agent"] as const;
/**
 * How pods resolve names. cluster-dns: straight to the cluster resolver (Istio without DNS
 * capture). dns-proxy: ISTIO_META_DNS_CAPTURE — each sidecar pod's port-53 traffic to the
 * resolver is REDIRECTed to istio-agent's DNS proxy on 127.0.0.1:15053, which answers the pod's
 * ServiceEntry names itself and forwards the rest from the pod's address. Every scenario runs in
 * both unless it names a mode it cannot apply to, with the reason (skipDnsModes).
 */
export const DNS_MODES = ["cluster-dns", "dns-proxy"] as const;
export type DnsMode = (typeof DNS_MODES)[number];

export interface ScenarioPod {
  name: string;
  namespace: string;
  labels: Record<string, string>;
  /** "namespace/name". */
  key: string;
  /** false: no sidecar and no REDIRECT (a namespace without injection); default true. */
  sidecar?: boolean;
  /** Pod annotations; Istio's traffic.sidecar.istio.io/excludeOutboundPorts takes those ports out of the REDIRECT. */
  annotations?: Record<string, string>;
}

/** A bypass report (egret.bypass line) a step must produce, within `within` ms of its start. */
export interface BypassExpectation {
  cause?: string;
  protocol?: string;
  within: number;
}

export const UDP_PAYLOADS = ["quic", "dns", "raw"] as const;
export const BYPASS_CAUSES = ["no-sidecar", "envoy-without-filter", "filter-not-connected", "excluded-port", "excluded-range", "sidecar-skipped", "udp-not-captured"] as const;

/** One UDP datagram from a pod (Istio's sidecar never sees UDP). */
export interface UdpStep {
  kind: "udp";
  title: string;
  pod: string;
  /** IPv4 address, or a world name (its address is used; the pod does not resolve it). */
  to: string;
  port: number;
  payload: (typeof UDP_PAYLOADS)[number];
  /** dns: the question name. */
  name?: string;
  expect: { bypass?: BypassExpectation | "none" };
}

export interface AuditExpectation {
  verdict?: string;
  reason?: string;
  policy?: string;
  rule?: string | number;
  /** The kind of evidence that decided: pod-dns or mesh-config ("none": no name decided). */
  evidence?: string;
  /** The Envoy cluster the filter cross-checked, e.g. outbound|443||api.example.test. */
  cluster?: string;
}
export const EVIDENCE_KINDS = ["pod-dns", "mesh-config", "none"] as const;

export interface ResolveStep {
  kind: "resolve";
  title: string;
  pod: string;
  name: string;
  with: ResolverClient;
  /** dig only: ask over TCP (dig +tcp), which the agent must reassemble. */
  tcp?: boolean;
  expect: { addresses?: string[]; rcode?: "NOERROR" | "NXDOMAIN" };
}

export interface ConnectStep {
  kind: "connect";
  title: string;
  pod: string;
  client: ClientName;
  /** DNS name (the client resolves it itself) or IPv4 address (a hard-coded destination). */
  to: string;
  port?: number;
  /** curl: "http" or "https" (default https on 443, http otherwise). */
  scheme?: "http" | "https";
  path?: string;
  /** curl: the Host header to send instead of `to` (a claim). */
  host?: string;
  /** openssl: the SNI to send instead of `to` (a claim). */
  sni?: string;
  /** curl: send the request through this forward proxy (host:port). */
  proxy?: string;
  /** tcp: bytes to send once connected (UTF-8 text). */
  send?: string;
  /** tcp: stay silent this long after connecting before sending (ms): a client whose verdict waits for its bytes. */
  silenceMs?: number;
  /** Names this connection for a later `audit` step. */
  id?: string;
  /** Run the connection this many times; "{i}" in to/host/sni/path/send becomes 1…N. */
  repeat?: number;
  /** proxy-uid: run the client with the sidecar's uid/gid (1337), which the REDIRECT exempts. */
  as?: "proxy-uid";
  expect: { outcome: Outcome; bypass?: BypassExpectation | "none" } & AuditExpectation;
}

export interface SleepStep { kind: "sleep"; title: string; ms: number }
export interface RestartStep { kind: "restart" | "stop" | "start"; title: string; component: (typeof RESTARTABLE)[number] }
/** Waits until every sidecar's filter has its Watch stream to control up again. */
export interface AwaitStep { kind: "await"; title: string; condition: "sidecars-connected"; within: number }
/** Checks the verdict of an earlier connect step (by its id) that may only be reported later. */
export interface AuditStep { kind: "audit"; title: string; ref: string; expect: AuditExpectation & { within: number } }
export type Step = (ResolveStep | ConnectStep | SleepStep | RestartStep | AuditStep | AwaitStep | UdpStep) & {
  /** A known defect this step demonstrates: a failure is reported as TODO, not as a failure. */
  knownIssue?: string;
};

export interface Scenario {
  name: string;
  file: string;
  seed?: string;
  description?: string;
  namespaces: Record<string, { labels: Record<string, string> }>;
  pods: ScenarioPod[];
  /** Inline EgressPolicy / ClusterEgressPolicy objects, exactly as written (validated by control). */
  policies: unknown[];
  steps: Step[];
  /** Istio ServiceEntry objects as applied (networking.istio.io), status included when given. */
  serviceEntries: unknown[];
  /** DNS modes this scenario does not apply to, each with the reason (reported as a skip). */
  skipDnsModes: Partial<Record<DnsMode, string>>;
}

export interface ScenarioProblem { file: string; line?: number; column?: number; path: string; message: string }

/** One or more mistakes in a scenario file; `problems` has them all. */
export class ScenarioError extends Error {
  constructor(readonly problems: ScenarioProblem[]) {
    super(problems.map(formatProblem).join("\n"));
  }
}

export function formatProblem(p: ScenarioProblem): string {
  const at = p.line ? `${p.file}:${p.line}:${p.column ?? 1}` : p.file;
  return `${at}: ${p.path}: ${p.message}`;
}

const STEP_ACTIONS = ["resolve", "connect", "sleep", "restart", "stop", "start", "audit", "await", "udp"] as const;
const COMMON_STEP_FIELDS = ["title", "knownIssue"] as const;
const LABEL_KEY = /^([a-z0-9]([-a-z0-9.]*[a-z0-9])?\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
const LABEL_VALUE = /^(|[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)$/;
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

type Path = (string | number)[];

class Checker {
  readonly problems: ScenarioProblem[] = [];
  constructor(readonly file: string, private readonly doc: Document | undefined, private readonly lines: LineCounter | undefined) {}

  fail(path: Path, message: string): undefined {
    const pos = this.position(path);
    this.problems.push({ file: this.file, ...pos, path: formatPath(path), message });
    return undefined;
  }

  position(path: Path): { line?: number; column?: number } {
    if (!this.doc || !this.lines) return {};
    // The deepest node that exists along the path: a missing field points at its parent.
    for (let n = path.length; n >= 0; n--) {
      const node = n === 0 ? this.doc.contents : this.doc.getIn(path.slice(0, n), true);
      const range = (node as { range?: [number, number, number] } | undefined)?.range;
      if (range) { const p = this.lines.linePos(range[0]); return { line: p.line, column: p.col }; }
    }
    return {};
  }
}

function formatPath(path: Path): string {
  let out = "";
  for (const p of path) out += typeof p === "number" ? `[${p}]` : out ? `.${p}` : p;
  return out || "(top)";
}

const isObj = (v: unknown): v is Record<string, unknown> => !!v && typeof v === "object" && !Array.isArray(v);

function unknownKeys(c: Checker, obj: Record<string, unknown>, allowed: readonly string[], path: Path): void {
  for (const k of Object.keys(obj)) {
    if (!allowed.includes(k)) {
      const near = allowed.find((a) => a.toLowerCase() === k.toLowerCase() || editDistance(a, k) <= 2);
      c.fail([...path, k], `unknown field "${k}"${near ? ` (did you mean "${near}"?)` : ""}; allowed: ${allowed.join(", ")}`);
    }
  }
}

function editDistance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
  }
  return d[a.length]![b.length]!;
}

function labels(c: Checker, v: unknown, path: Path): Record<string, string> {
  if (v === undefined) return {};
  if (!isObj(v)) { c.fail(path, "must be a mapping of label keys to string values, e.g. {app: checkout}"); return {}; }
  const out: Record<string, string> = {};
  for (const [k, val] of Object.entries(v)) {
    if (!LABEL_KEY.test(k)) c.fail([...path, k], `"${k}" is not a valid Kubernetes label key`);
    const s = typeof val === "number" || typeof val === "boolean" ? String(val) : val;
    if (typeof s !== "string" || !LABEL_VALUE.test(s)) c.fail([...path, k], `label value must be a string of ≤63 letters, digits, "-", "_" or "." (quote numbers)`);
    else out[k] = s;
  }
  return out;
}

/** Parses "3s", "500ms", "1.5s" or a number of seconds. */
export function parseDuration(v: unknown): number | undefined {
  if (typeof v === "number" && v >= 0 && Number.isFinite(v)) return Math.round(v * 1000);
  if (typeof v !== "string") return undefined;
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)$/.exec(v.trim());
  if (!m) return undefined;
  const n = Number(m[1]);
  return Math.round(m[2] === "ms" ? n : m[2] === "s" ? n * 1000 : n * 60_000);
}

/** `bypass: {cause, protocol?, within?}` or `bypass: none`. */
function bypassExpectation(c: Checker, v: unknown, path: Path): BypassExpectation | "none" | undefined {
  if (v === undefined) return undefined;
  if (v === "none") return "none";
  if (!isObj(v)) return c.fail(path, 'must be none, or {cause: CAUSE, protocol?: tcp|quic|dns|udp, within?: "2s"}');
  unknownKeys(c, v, ["cause", "protocol", "within"], path);
  if (v.cause !== undefined && !BYPASS_CAUSES.includes(v.cause as never)) c.fail([...path, "cause"], `must be one of ${BYPASS_CAUSES.join(", ")}`);
  if (v.protocol !== undefined && !["tcp", "quic", "dns", "udp"].includes(v.protocol as string)) c.fail([...path, "protocol"], "must be tcp, quic, dns or udp");
  const within = v.within === undefined ? 2_000 : parseDuration(v.within);
  if (within === undefined || within > 60_000) return c.fail([...path, "within"], 'must be a duration such as "2s" (at most 60s)');
  return { cause: v.cause as string | undefined, protocol: v.protocol as string | undefined, within };
}

function checkEvidence(c: Checker, ex: Record<string, unknown>, path: Path): void {
  if (ex.evidence !== undefined && !EVIDENCE_KINDS.includes(ex.evidence as never)) c.fail([...path, "evidence"], `must be one of ${EVIDENCE_KINDS.join(", ")} (the audit line's "evidence")`);
  if (ex.cluster !== undefined && (typeof ex.cluster !== "string" || ex.cluster === "")) c.fail([...path, "cluster"], "must be an Envoy cluster name, e.g. outbound|443||api.example.test");
}

const DEFAULT_PORTS: Partial<Record<ClientName, number>> = { psql: 5432, mariadb: 3306, "redis-cli": 6379, openssl: 443 };

function checkStep(c: Checker, raw: unknown, i: number, pods: Set<string>, ids: Set<string>): Step | undefined {
  const step = checkStepAction(c, raw, i, pods, ids);
  if (!step || !isObj(raw) || raw.knownIssue === undefined) return step;
  if (typeof raw.knownIssue !== "string" || raw.knownIssue.trim() === "") return c.fail(["steps", i, "knownIssue"], "must say what is wrong, in a sentence (the step is then reported as TODO when it fails)");
  return { ...step, knownIssue: raw.knownIssue };
}

function checkStepAction(c: Checker, raw: unknown, i: number, pods: Set<string>, ids: Set<string>): Step | undefined {
  const path: Path = ["steps", i];
  if (!isObj(raw)) return c.fail(path, `must be a mapping with one of ${STEP_ACTIONS.join(", ")}`);
  const actions = STEP_ACTIONS.filter((a) => a in raw);
  if (actions.length !== 1) {
    return c.fail(path, actions.length === 0 ? `needs one action: ${STEP_ACTIONS.join(", ")}` : `has several actions (${actions.join(", ")}); split them into separate steps`);
  }
  const action = actions[0]!;
  const title = typeof raw.title === "string" ? raw.title : "";
  if (raw.title !== undefined && typeof raw.title !== "string") c.fail([...path, "title"], "must be a string");
  const podOf = (): string | undefined => {
    const pod = raw.pod;
    if (typeof pod !== "string") return c.fail([...path, "pod"], `names the pod running the client as "namespace/name" (one of: ${[...pods].join(", ") || "none declared"})`);
    if (!pods.has(pod)) return c.fail([...path, "pod"], `"${pod}" is not declared under pods (declared: ${[...pods].join(", ") || "none"})`);
    return pod;
  };
  switch (action) {
    case "sleep": {
      unknownKeys(c, raw, ["sleep", ...COMMON_STEP_FIELDS], path);
      const ms = parseDuration(raw.sleep);
      if (ms === undefined || ms > 600_000) return c.fail([...path, "sleep"], 'must be a duration such as "3s" or "500ms" (at most 10m)');
      return { kind: "sleep", title: title || `sleep ${raw.sleep}`, ms };
    }
    case "restart":
    case "stop":
    case "start": {
      unknownKeys(c, raw, [action, ...COMMON_STEP_FIELDS], path);
      if (!RESTARTABLE.includes(raw[action] as never)) return c.fail([...path, action], `must be one of ${RESTARTABLE.join(", ")}`);
      return { kind: action, title: title || `${action} ${raw[action]}`, component: raw[action] as RestartStep["component"] };
    }
    case "await": {
      unknownKeys(c, raw, ["await", "within", ...COMMON_STEP_FIELDS], path);
      if (raw.await !== "sidecars-connected") return c.fail([...path, "await"], "must be sidecars-connected (every sidecar's Watch stream to control is up)");
      const within = raw.within === undefined ? 60_000 : parseDuration(raw.within);
      if (within === undefined || within > 300_000) return c.fail([...path, "within"], 'must be a duration such as "60s" (at most 5m)');
      return { kind: "await", title: title || "sidecars reconnected to control", condition: "sidecars-connected", within };
    }
    case "audit": {
      unknownKeys(c, raw, ["audit", "expect", ...COMMON_STEP_FIELDS], path);
      const ref = raw.audit;
      if (typeof ref !== "string" || !ids.has(ref)) return c.fail([...path, "audit"], `must be the id of an earlier connect step (ids so far: ${[...ids].join(", ") || "none"})`);
      const ex = raw.expect;
      if (!isObj(ex)) return c.fail([...path, "expect"], "is required: {verdict?, reason?, policy?, rule?, within?}");
      unknownKeys(c, ex, ["verdict", "reason", "policy", "rule", "evidence", "cluster", "within"], [...path, "expect"]);
      if (ex.verdict !== undefined && !VERDICTS.includes(ex.verdict as never)) c.fail([...path, "expect", "verdict"], `must be one of ${VERDICTS.join(", ")}`);
      checkEvidence(c, ex, [...path, "expect"]);
      const within = ex.within === undefined ? 30_000 : parseDuration(ex.within);
      if (within === undefined || within > 300_000) return c.fail([...path, "expect", "within"], 'must be a duration such as "30s" (at most 5m)');
      return { kind: "audit", title: title || `verdict of ${ref} reported`, ref, expect: { verdict: ex.verdict as string | undefined, reason: ex.reason as string | undefined, policy: ex.policy as string | undefined, rule: ex.rule as string | number | undefined, evidence: ex.evidence as string | undefined, cluster: ex.cluster as string | undefined, within } };
    }
    case "udp": {
      unknownKeys(c, raw, ["udp", "pod", "expect", ...COMMON_STEP_FIELDS], path);
      const pod = podOf();
      const spec = raw.udp;
      const up: Path = [...path, "udp"];
      if (!isObj(spec)) return c.fail(up, `must be a mapping: {to: IP|NAME, port: N, payload: ${UDP_PAYLOADS.join("|")}, name?: DNS-NAME}`);
      unknownKeys(c, spec, ["to", "port", "payload", "name"], up);
      const to = typeof spec.to === "string" ? spec.to.toLowerCase() : "";
      if (!isIPv4(to) && !isDnsName(to)) c.fail([...up, "to"], "must be an IPv4 address or a world name");
      if (typeof spec.port !== "number" || !Number.isInteger(spec.port) || spec.port < 1 || spec.port > 65535) c.fail([...up, "port"], "must be a UDP port (1-65535)");
      if (!UDP_PAYLOADS.includes(spec.payload as never)) c.fail([...up, "payload"], `must be one of ${UDP_PAYLOADS.join(", ")}`);
      if (spec.name !== undefined && (spec.payload !== "dns" || typeof spec.name !== "string" || !isDnsName(spec.name))) c.fail([...up, "name"], "is the DNS question name, for payload dns only");
      const ex = raw.expect;
      if (!isObj(ex)) return c.fail([...path, "expect"], "is required: {bypass: {cause, protocol?, within?} | none}");
      unknownKeys(c, ex, ["bypass"], [...path, "expect"]);
      const bypass = bypassExpectation(c, ex.bypass, [...path, "expect", "bypass"]);
      if (!pod || !UDP_PAYLOADS.includes(spec.payload as never) || typeof spec.port !== "number") return undefined;
      const step: UdpStep = { kind: "udp", title: "", pod, to, port: spec.port, payload: spec.payload as UdpStep["payload"], name: spec.name as string | undefined, expect: { bypass } };
      step.title = title || `${pod}: UDP ${step.payload} to ${to}:${step.port}${bypass && bypass !== "none" ? ` → bypass ${bypass.cause ?? ""}` : " → no bypass report"}`;
      return step;
    }
    case "resolve": {
      unknownKeys(c, raw, ["resolve", "pod", "with", "tcp", "expect", ...COMMON_STEP_FIELDS], path);
      if (raw.tcp !== undefined && (typeof raw.tcp !== "boolean" || (raw.with ?? "dig") !== "dig")) c.fail([...path, "tcp"], "is true or false, and only for the dig resolver");
      const pod = podOf();
      const name = typeof raw.resolve === "string" ? raw.resolve.toLowerCase().replace(/\.$/, "") : "";
      if (!isDnsName(name)) c.fail([...path, "resolve"], "must be the DNS name to resolve, e.g. db.example.test");
      const withClient = (raw.with ?? "dig") as ResolverClient;
      if (!RESOLVERS.includes(withClient)) c.fail([...path, "with"], `must be one of ${RESOLVERS.join(", ")}`);
      const expect: ResolveStep["expect"] = {};
      if (raw.expect !== undefined) {
        if (!isObj(raw.expect)) c.fail([...path, "expect"], "must be a mapping: {addresses: [IP…]} or {rcode: NXDOMAIN}");
        else {
          unknownKeys(c, raw.expect, ["addresses", "rcode"], [...path, "expect"]);
          const a = raw.expect.addresses;
          if (a !== undefined) {
            if (!Array.isArray(a) || !a.every((x) => typeof x === "string" && isIPv4(x))) c.fail([...path, "expect", "addresses"], "must be a list of IPv4 addresses");
            else expect.addresses = a as string[];
          }
          if (raw.expect.rcode !== undefined) {
            if (raw.expect.rcode !== "NOERROR" && raw.expect.rcode !== "NXDOMAIN") c.fail([...path, "expect", "rcode"], "must be NOERROR or NXDOMAIN");
            else expect.rcode = raw.expect.rcode;
          }
        }
      }
      if (!pod || !isDnsName(name) || !RESOLVERS.includes(withClient)) return undefined;
      const tcp = raw.tcp === true ? true : undefined;
      return { kind: "resolve", title: title || `${pod}: resolve ${name} (${withClient}${tcp ? " +tcp" : ""})`, pod, name, with: withClient, tcp, expect };
    }
    case "connect": {
      unknownKeys(c, raw, ["connect", "pod", "expect", "id", "repeat", "as", ...COMMON_STEP_FIELDS], path);
      if (raw.as !== undefined && raw.as !== "proxy-uid") c.fail([...path, "as"], "must be proxy-uid (the client runs as the sidecar's uid/gid, which the REDIRECT exempts)");
      if (raw.repeat !== undefined && (typeof raw.repeat !== "number" || !Number.isInteger(raw.repeat) || raw.repeat < 1 || raw.repeat > 200)) {
        c.fail([...path, "repeat"], "must be a whole number from 1 to 200");
      }
      if (raw.repeat !== undefined && raw.id !== undefined) c.fail([...path, "id"], "a repeated step cannot be referenced by an audit step; drop id or repeat");
      if (raw.id !== undefined) {
        if (typeof raw.id !== "string" || !/^[a-z0-9][a-z0-9-]*$/.test(raw.id)) c.fail([...path, "id"], "must be a lowercase identifier, e.g. during-outage");
        else if (ids.has(raw.id)) c.fail([...path, "id"], `"${raw.id}" is already the id of an earlier step`);
        else ids.add(raw.id);
      }
      const pod = podOf();
      const cp: Path = [...path, "connect"];
      const spec = raw.connect;
      if (!isObj(spec)) return c.fail(cp, `must be a mapping: {client: ${CLIENTS.join("|")}, to: NAME|IP, …}`);
      unknownKeys(c, spec, ["client", "to", "port", "scheme", "path", "host", "sni", "proxy", "send", "silence"], cp);
      const client = spec.client as ClientName;
      if (!CLIENTS.includes(client)) c.fail([...cp, "client"], `must be one of ${CLIENTS.join(", ")}`);
      const to = typeof spec.to === "string" ? spec.to.toLowerCase().replace(/\.$/, "") : "";
      const toChecked = to.replace(/\{i\}/g, "1");
      if (to.includes("{i}") && raw.repeat === undefined) c.fail([...cp, "to"], '"{i}" is only replaced in a step with repeat: N');
      if (!isIPv4(toChecked) && !isDnsName(toChecked)) c.fail([...cp, "to"], "must be a DNS name (the client resolves it) or an IPv4 address (a hard-coded destination)");
      if (spec.port !== undefined && (typeof spec.port !== "number" || !Number.isInteger(spec.port) || spec.port < 1 || spec.port > 65535)) c.fail([...cp, "port"], "must be a TCP port (1-65535)");
      if (client === "tcp" && spec.port === undefined) c.fail([...cp, "port"], "is required for the tcp client");
      if (spec.scheme !== undefined && spec.scheme !== "http" && spec.scheme !== "https") c.fail([...cp, "scheme"], "must be http or https");
      const only = (field: string, clients: ClientName[]) => {
        if (spec[field] !== undefined && !clients.includes(client)) c.fail([...cp, field], `applies only to the ${clients.join("/")} client`);
        if (spec[field] !== undefined && typeof spec[field] !== "string") c.fail([...cp, field], "must be a string");
      };
      only("scheme", ["curl"]); only("path", ["curl"]); only("host", ["curl"]); only("proxy", ["curl"]);
      only("sni", ["openssl"]); only("send", ["tcp"]);
      const silenceMs = spec.silence === undefined ? undefined : parseDuration(spec.silence);
      if (spec.silence !== undefined && client !== "tcp") c.fail([...cp, "silence"], "applies only to the tcp client");
      else if (spec.silence !== undefined && (silenceMs === undefined || silenceMs > 10_000)) c.fail([...cp, "silence"], 'must be a duration up to 10s, e.g. "3s" (how long the client waits after connecting before it sends)');
      if (typeof spec.proxy === "string" && !/^[a-z0-9.-]+:\d{1,5}$/i.test(spec.proxy)) c.fail([...cp, "proxy"], 'must be "host:port", e.g. proxy.example.test:3128');
      if (typeof spec.path === "string" && !spec.path.startsWith("/")) c.fail([...cp, "path"], 'must start with "/"');
      const ep: Path = [...path, "expect"];
      const ex = raw.expect;
      if (!isObj(ex)) return c.fail(ep, `is required: {outcome: connected|refused, verdict?, reason?, policy?, rule?}`);
      unknownKeys(c, ex, ["outcome", "verdict", "reason", "policy", "rule", "evidence", "cluster", "bypass"], ep);
      checkEvidence(c, ex, ep);
      const bypass = bypassExpectation(c, ex.bypass, [...ep, "bypass"]);
      if (!OUTCOMES.includes(ex.outcome as Outcome)) c.fail([...ep, "outcome"], `must be ${OUTCOMES.join(" or ")}`);
      if (ex.verdict !== undefined && !VERDICTS.includes(ex.verdict as never)) c.fail([...ep, "verdict"], `must be one of ${VERDICTS.join(", ")}`);
      for (const f of ["reason", "policy"] as const) if (ex[f] !== undefined && typeof ex[f] !== "string") c.fail([...ep, f], "must be a string");
      if (ex.rule !== undefined && typeof ex.rule !== "string" && typeof ex.rule !== "number") c.fail([...ep, "rule"], "must be the rule's name or index");
      if (!pod || !CLIENTS.includes(client) || !OUTCOMES.includes(ex.outcome as Outcome)) return undefined;
      const port = (spec.port as number | undefined) ?? DEFAULT_PORTS[client];
      const step: ConnectStep = {
        kind: "connect", title: "", pod, client, to, port,
        scheme: spec.scheme as ConnectStep["scheme"], path: spec.path as string | undefined, host: spec.host as string | undefined,
        sni: spec.sni as string | undefined, proxy: spec.proxy as string | undefined, send: spec.send as string | undefined,
        ...(silenceMs !== undefined ? { silenceMs } : {}),
        id: raw.id as string | undefined,
        repeat: raw.repeat as number | undefined,
        ...(raw.as === "proxy-uid" ? { as: "proxy-uid" as const } : {}),
        expect: { outcome: ex.outcome as Outcome, ...(bypass ? { bypass } : {}), verdict: ex.verdict as string | undefined, reason: ex.reason as string | undefined, policy: ex.policy as string | undefined, rule: ex.rule as string | number | undefined, evidence: ex.evidence as string | undefined, cluster: ex.cluster as string | undefined },
      };
      step.title = title || `${pod}: ${step.repeat ? `${step.repeat}× ` : ""}${client} ${to}${port ? `:${port}` : ""}${step.proxy ? ` via ${step.proxy}` : ""}${step.host ? ` Host: ${step.host}` : ""}${step.sni ? ` SNI ${step.sni}` : ""} → ${step.expect.outcome}`;
      return step;
    }
  }
}

/** Validates an already-parsed scenario object. `doc`/`lines` (optional) give line numbers. */
export function checkScenario(raw: unknown, file: string, doc?: Document, lines?: LineCounter): Scenario {
  const c = new Checker(file, doc, lines);
  if (!isObj(raw)) throw new ScenarioError([{ file, path: "(top)", message: "a scenario is a mapping with name, pods, policies and steps" }]);
  unknownKeys(c, raw, ["name", "seed", "description", "namespaces", "pods", "policies", "import", "steps", "skipDnsModes", "serviceEntries"], []);
  const name = raw.name;
  if (typeof name !== "string" || !/^[a-z0-9][a-z0-9-]*$/.test(name)) c.fail(["name"], "is required: lowercase letters, digits and dashes, e.g. postgres-only-by-name");
  for (const f of ["seed", "description"] as const) if (raw[f] !== undefined && typeof raw[f] !== "string") c.fail([f], "must be a string");

  const namespaces: Scenario["namespaces"] = {};
  if (raw.namespaces !== undefined) {
    if (!isObj(raw.namespaces)) c.fail(["namespaces"], "must map namespace names to {labels: {…}}");
    else for (const [ns, v] of Object.entries(raw.namespaces)) {
      if (!DNS_LABEL.test(ns)) c.fail(["namespaces", ns], "namespace names are DNS labels (lowercase letters, digits, dashes)");
      if (v !== null && !isObj(v)) { c.fail(["namespaces", ns], "must be a mapping with labels"); continue; }
      if (v) unknownKeys(c, v, ["labels"], ["namespaces", ns]);
      namespaces[ns] = { labels: labels(c, v?.labels, ["namespaces", ns, "labels"]) };
    }
  }

  const pods: ScenarioPod[] = [];
  if (!Array.isArray(raw.pods) || raw.pods.length === 0) c.fail(["pods"], "must list at least one pod: [{name, namespace, labels}]");
  else raw.pods.forEach((p, i) => {
    if (!isObj(p)) { c.fail(["pods", i], "must be a mapping {name, namespace, labels}"); return; }
    unknownKeys(c, p, ["name", "namespace", "labels", "sidecar", "annotations"], ["pods", i]);
    if (p.sidecar !== undefined && typeof p.sidecar !== "boolean") c.fail(["pods", i, "sidecar"], "must be true or false (false: no sidecar, no REDIRECT)");
    const annotations = p.annotations === undefined ? undefined : isObj(p.annotations) && Object.values(p.annotations).every((v) => typeof v === "string") ? (p.annotations as Record<string, string>) : c.fail(["pods", i, "annotations"], "must map annotation keys to string values");
    const pn = p.name, pns = p.namespace ?? "default";
    if (typeof pn !== "string" || !DNS_LABEL.test(pn)) { c.fail(["pods", i, "name"], "is required: a DNS label, e.g. checkout"); return; }
    if (typeof pns !== "string" || !DNS_LABEL.test(pns)) { c.fail(["pods", i, "namespace"], "must be a DNS label"); return; }
    const key = `${pns}/${pn}`;
    if (pods.some((q) => q.key === key)) c.fail(["pods", i, "name"], `pod ${key} is declared twice`);
    pods.push({ name: pn, namespace: pns, labels: labels(c, p.labels, ["pods", i, "labels"]), key, ...(p.sidecar === false ? { sidecar: false } : {}), ...(annotations ? { annotations } : {}) });
    namespaces[pns] ??= { labels: {} };
  });
  if (pods.length > 200) c.fail(["pods"], "at most 200 pods per scenario (pod addresses are 198.18.1.10-198.18.1.209)");

  const policies: unknown[] = [];
  if (raw.policies !== undefined && !Array.isArray(raw.policies)) c.fail(["policies"], "must be a list of EgressPolicy / ClusterEgressPolicy objects");
  else (raw.policies as unknown[] | undefined ?? []).forEach((p, i) => {
    if (!isObj(p)) { c.fail(["policies", i], "must be a policy object (apiVersion, kind, metadata, spec)"); return; }
    const before = c.problems.length;
    if (p.apiVersion !== "egret.dev/v1alpha1") c.fail(["policies", i, "apiVersion"], "must be egret.dev/v1alpha1");
    if (p.kind !== "EgressPolicy" && p.kind !== "ClusterEgressPolicy") c.fail(["policies", i, "kind"], "must be EgressPolicy or ClusterEgressPolicy");
    if (!isObj(p.metadata) || typeof p.metadata.name !== "string") c.fail(["policies", i, "metadata", "name"], "is required");
    if (p.kind === "EgressPolicy" && isObj(p.metadata) && typeof p.metadata.namespace !== "string") c.fail(["policies", i, "metadata", "namespace"], "is required for an EgressPolicy");
    // The same validator as `egret validate` and control: a scenario never ships a policy that
    // control would reject.
    const { diagnostics } = c.problems.length === before ? validatePolicyObject(p, { file }) : { diagnostics: [] };
    for (const d of diagnostics) {
      if (d.severity !== "error") continue;
      const segs = d.path ? d.path.split(/\.|\[|\]/).filter(Boolean).map((x) => (/^\d+$/.test(x) ? Number(x) : x)) : [];
      c.fail(["policies", i, ...segs], `${d.message}${d.hint ? ` (${d.hint})` : ""}`);
    }
    policies.push(p);
  });

  // `import:` source policies (NetworkPolicy, OpenShift, Istio, Cilium, network-policy-api) run
  // through `egret import`'s translation; the result joins the scenario's policies.
  if (raw.import !== undefined) {
    if (!Array.isArray(raw.import) || !raw.import.every(isObj)) c.fail(["import"], "must be a list of source policy objects (NetworkPolicy, EgressNetworkPolicy, EgressRule, …)");
    else {
      const imported = importDocuments((raw.import as Record<string, unknown>[]).map((obj) => ({ obj, file })));
      const problems = checkOutput(imported.policies);
      problems.forEach((m) => c.fail(["import"], m));
      policies.push(...imported.policies);
    }
  }

  const podKeys = new Set(pods.map((p) => p.key));
  const ids = new Set<string>();
  const steps: Step[] = [];
  if (!Array.isArray(raw.steps) || raw.steps.length === 0) c.fail(["steps"], "must list at least one step");
  else raw.steps.forEach((s, i) => { const st = checkStep(c, s, i, podKeys, ids); if (st) steps.push(st); });

  const skipDnsModes = checkSkipDnsModes(c, raw.skipDnsModes);
  const serviceEntries = checkServiceEntries(c, raw.serviceEntries);

  if (c.problems.length > 0) throw new ScenarioError(c.problems);
  return {
    name: name as string, file,
    seed: raw.seed as string | undefined, description: raw.description as string | undefined,
    namespaces, pods, policies, steps, skipDnsModes, serviceEntries,
  };
}

/** `serviceEntries:` Istio ServiceEntry objects, read by control's own parser (what it rejects is an error here). */
function checkServiceEntries(c: Checker, v: unknown): unknown[] {
  if (v === undefined) return [];
  if (!Array.isArray(v)) { c.fail(["serviceEntries"], "must be a list of ServiceEntry objects (apiVersion networking.istio.io/v1, kind ServiceEntry, metadata, spec)"); return []; }
  v.forEach((e, i) => {
    const path: Path = ["serviceEntries", i];
    if (!isObj(e)) { c.fail(path, "must be a ServiceEntry object"); return; }
    if (typeof e.apiVersion !== "string" || !/^networking\.istio\.io\/(v1|v1beta1|v1alpha3)$/.test(e.apiVersion)) c.fail([...path, "apiVersion"], "must be networking.istio.io/v1 (or v1beta1, v1alpha3)");
    if (e.kind !== "ServiceEntry") c.fail([...path, "kind"], "must be ServiceEntry");
    const parsed = parseServiceEntry(e);
    if (typeof parsed === "string") { c.fail([...path, "metadata"], parsed); return; }
    const spec = isObj(e.spec) ? e.spec : {};
    if (!Array.isArray(spec.hosts) || spec.hosts.length === 0) c.fail([...path, "spec", "hosts"], "must list at least one host");
    if (!Array.isArray(spec.ports) || !spec.ports.every((p) => isObj(p) && Number.isInteger(p.number))) c.fail([...path, "spec", "ports"], "must list ports as {number, name, protocol}");
    if (spec.resolution !== undefined && !["NONE", "STATIC", "DNS", "DNS_ROUND_ROBIN"].includes(spec.resolution as string)) c.fail([...path, "spec", "resolution"], "must be NONE, STATIC, DNS or DNS_ROUND_ROBIN");
  });
  return v;
}

/** `skipDnsModes: {dns-proxy: "why it cannot apply"}`: a mode left out must say why; one mode must remain. */
function checkSkipDnsModes(c: Checker, v: unknown): Partial<Record<DnsMode, string>> {
  if (v === undefined) return {};
  if (!isObj(v)) { c.fail(["skipDnsModes"], `must map a DNS mode (${DNS_MODES.join(", ")}) to the reason the scenario cannot apply in it`); return {}; }
  unknownKeys(c, v, DNS_MODES, ["skipDnsModes"]);
  const out: Partial<Record<DnsMode, string>> = {};
  for (const mode of DNS_MODES) {
    const why = v[mode];
    if (why === undefined) continue;
    if (typeof why !== "string" || why.trim().length < 10) c.fail(["skipDnsModes", mode], "must say, in a sentence, why this scenario cannot apply in this mode");
    else out[mode] = why.trim();
  }
  if (DNS_MODES.every((m) => out[m] !== undefined)) c.fail(["skipDnsModes"], "leaves no DNS mode to run in; a scenario must apply in at least one");
  return out;
}

export function parseScenario(text: string, file: string): Scenario {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false });
  if (doc.errors.length > 0) {
    throw new ScenarioError(doc.errors.map((e) => {
      const p = lines.linePos(e.pos[0]);
      return { file, line: p.line, column: p.col, path: "(yaml)", message: e.message.split("\n")[0]! };
    }));
  }
  if (!isMap(doc.contents) && !isSeq(doc.contents)) throw new ScenarioError([{ file, path: "(top)", message: "the file is empty; a scenario is a mapping with name, pods, policies and steps" }]);
  return checkScenario(doc.toJS(), file, doc, lines);
}

export function loadScenarioFile(file: string): Scenario {
  let text: string;
  try { text = readFileSync(file, "utf8"); } catch (e) {
    throw new ScenarioError([{ file, path: "(file)", message: `cannot read: ${(e as Error).message}` }]);
  }
  return parseScenario(text, file);
}

/** Every scenario file in `dir` (*.yaml except world.yaml), sorted; throws with all problems. */
export function loadScenarioDir(dir: string): Scenario[] {
  const files = readdirSync(dir).filter((f) => /\.ya?ml$/.test(f) && f !== "world.yaml").sort();
  const out: Scenario[] = [];
  const problems: ScenarioProblem[] = [];
  for (const f of files) {
    try { out.push(loadScenarioFile(join(dir, f))); } catch (e) {
      if (e instanceof ScenarioError) problems.push(...e.problems); else throw e;
    }
  }
  const seen = new Map<string, string>();
  for (const s of out) {
    const other = seen.get(s.name);
    if (other) problems.push({ file: s.file, path: "name", message: `"${s.name}" is also the name of ${other}; scenario names must be unique` });
    seen.set(s.name, s.file);
  }
  if (problems.length > 0) throw new ScenarioError(problems);
  return out;
}
