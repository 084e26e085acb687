// The plugin configuration (JSON, Envoy's `configuration` StringValue), parsed and validated in
// on_configure. Every mistake is reported with the field name and what to do; any error rejects
// the whole configuration (on_configure returns false, Envoy refuses the filter). Fields are
// documented in README.md, which the manifests follow.
import { JsonKind, JsonValue, parseJson, jsonError } from "./json";
import { parseHostPort, parsedHi, parsedLo, parsedPort } from "../resolve/ip";

export const enum FailureMode { Closed = 0, Open = 1 }

export class EgressConfig {
  /** Envoy cluster of the control service (Istio: outbound|<port>||<fqdn>). Required. */
  controlCluster: string = "";
  /** :authority for the gRPC calls (Istio needs it; default: the FQDN and port from the cluster name). */
  controlAuthority: string = "";
  /** How long a connection to an IP unknown to the table is held while Lookup asks control. */
  lookupTimeoutMs: u32 = 250;
  /** How long client bytes are held waiting for the protocol detector; then the protocol is `unknown`. */
  detectTimeoutMs: u32 = 2000;
  /** Bytes per direction the detector inspects before answering `unknown`. */
  maxInspectBytes: u32 = 16384;
  /** Until the first snapshot arrives, connections are held at most this long, then the failure mode applies. */
  startupWaitMs: u32 = 5000;
  /** What happens when a decision needs control and control is unreachable. */
  failureMode: FailureMode = FailureMode.Closed;
  /** Declared HTTP forward proxies (ip:port): their CONNECT target / absolute URI is evaluated. */
  proxyHi: u64[] = [];
  proxyLo: u64[] = [];
  proxyPort: u32[] = [];
  /** Events per Report batch, and the longest a decided event waits before its batch is sent. */
  reportBatchSize: u32 = 100;
  reportIntervalMs: u32 = 1000;
  /** Report buffer (bytes of encoded events); events beyond it are dropped and counted. */
  reportBufferBytes: u32 = 256 * 1024;
  /** Watch reconnect backoff (exponential with jitter between these bounds). */
  // Small and capped low: after a control restart, new destinations fail closed until Watch is
  // back, so the next attempt must never be far away (Envoy itself reconnects on demand).
  watchBackoffInitialMs: u32 = 200;
  watchBackoffMaxMs: u32 = 5000;
  /** Resolution table bounds: entries (IP, name) and bytes of distinct names. */
  maxResolutions: i32 = 20000;
  resolutionNameBytes: i32 = 1 << 20;
  /** Timer resolution for deadlines (ms). */
  tickMs: u32 = 50;
  /** Log every decision at info level (debugging; Istio drops info unless wasm:debug/info is set). */
  logDecisions: bool = false;

  isForwardProxy(hi: u64, lo: u64, port: u32): bool {
    for (let i = 0; i < this.proxyPort.length; i++) {
      if (unchecked(this.proxyPort[i]) == port && unchecked(this.proxyLo[i]) == lo && unchecked(this.proxyHi[i]) == hi) return true;
    }
    return false;
  }
}

export let configError: string = "";

const KNOWN: string[] = [
  "controlCluster", "controlAuthority", "lookupTimeoutMs", "detectTimeoutMs", "maxInspectBytes",
  "startupWaitMs", "failureMode", "forwardProxies", "reportBatchSize", "reportIntervalMs",
  "reportBufferBytes", "watchBackoffInitialMs", "watchBackoffMaxMs", "maxResolutions",
  "resolutionNameBytes", "tickMs", "logDecisions",
];

function err(msg: string): EgressConfig | null {
  configError = "egret configuration: " + msg;
  return null;
}

/** Reads an integer field in [min, max]; returns -1 after setting configError when invalid, -2 when absent. */
function intField(obj: JsonValue, key: string, min: f64, max: f64): f64 {
  const v = obj.get(key);
  if (v === null) return -2;
  if (v.kind != JsonKind.Number || v.num != Math.floor(v.num) || v.num < min || v.num > max) {
    configError = "egret configuration: \"" + key + "\" must be an integer from " + (<i64>min).toString() + " to " + (<i64>max).toString();
    return -1;
  }
  return v.num;
}

/** Parses and validates the configuration bytes; null with configError set when invalid. */
export function parseConfig(ptr: usize, len: usize): EgressConfig | null {
  configError = "";
  const c = new EgressConfig();
  if (len == 0) return err("empty; at least \"controlCluster\" is required (see filter/assembly/egress/README.md)");
  const root = parseJson(ptr, len);
  if (root === null) return err("invalid JSON: " + jsonError);
  if (root.kind != JsonKind.Object) return err("must be a JSON object");
  for (let i = 0; i < root.keys.length; i++) {
    if (!KNOWN.includes(root.keys[i])) return err("unknown field \"" + root.keys[i] + "\" (known: " + KNOWN.join(", ") + ")");
  }

  const cluster = root.get("controlCluster");
  if (cluster === null || cluster.kind != JsonKind.String || cluster.str.length == 0) {
    return err("\"controlCluster\" is required: the Envoy cluster of egret control, e.g. \"outbound|9090||egret-control.egret-system.svc.cluster.local\"");
  }
  c.controlCluster = cluster.str;
  const auth = root.get("controlAuthority");
  if (auth !== null) {
    if (auth.kind != JsonKind.String || auth.str.length == 0) return err("\"controlAuthority\" must be a non-empty string (host:port)");
    c.controlAuthority = auth.str;
  } else {
    c.controlAuthority = defaultAuthority(c.controlCluster);
  }

  let n: f64;
  if ((n = intField(root, "lookupTimeoutMs", 1, 60000)) == -1) return null;
  if (n >= 0) c.lookupTimeoutMs = <u32>n;
  if ((n = intField(root, "detectTimeoutMs", 1, 600000)) == -1) return null;
  if (n >= 0) c.detectTimeoutMs = <u32>n;
  if ((n = intField(root, "maxInspectBytes", 64, 1048576)) == -1) return null;
  if (n >= 0) c.maxInspectBytes = <u32>n;
  if ((n = intField(root, "startupWaitMs", 0, 600000)) == -1) return null;
  if (n >= 0) c.startupWaitMs = <u32>n;
  if ((n = intField(root, "reportBatchSize", 1, 10000)) == -1) return null;
  if (n >= 0) c.reportBatchSize = <u32>n;
  if ((n = intField(root, "reportIntervalMs", 10, 3600000)) == -1) return null;
  if (n >= 0) c.reportIntervalMs = <u32>n;
  if ((n = intField(root, "reportBufferBytes", 4096, 67108864)) == -1) return null;
  if (n >= 0) c.reportBufferBytes = <u32>n;
  if ((n = intField(root, "watchBackoffInitialMs", 10, 600000)) == -1) return null;
  if (n >= 0) c.watchBackoffInitialMs = <u32>n;
  if ((n = intField(root, "watchBackoffMaxMs", 10, 3600000)) == -1) return null;
  if (n >= 0) c.watchBackoffMaxMs = <u32>n;
  if (c.watchBackoffMaxMs < c.watchBackoffInitialMs) return err("\"watchBackoffMaxMs\" must be at least \"watchBackoffInitialMs\"");
  if ((n = intField(root, "maxResolutions", 16, 4000000)) == -1) return null;
  if (n >= 0) c.maxResolutions = <i32>n;
  if ((n = intField(root, "resolutionNameBytes", 4096, 268435456)) == -1) return null;
  if (n >= 0) c.resolutionNameBytes = <i32>n;
  if ((n = intField(root, "tickMs", 5, 10000)) == -1) return null;
  if (n >= 0) c.tickMs = <u32>n;
  if (c.tickMs > c.lookupTimeoutMs) c.tickMs = c.lookupTimeoutMs; // deadlines need ticks at least that fine

  const fm = root.get("failureMode");
  if (fm !== null) {
    if (fm.kind != JsonKind.String) return err("\"failureMode\" must be \"closed\" or \"open\"");
    const s = fm.str.toLowerCase();
    if (s == "closed") c.failureMode = FailureMode.Closed;
    else if (s == "open") c.failureMode = FailureMode.Open;
    else return err("\"failureMode\" must be \"closed\" (default: deny what needs control) or \"open\" (allow), not \"" + fm.str + "\"");
  }

  const ld = root.get("logDecisions");
  if (ld !== null) {
    if (ld.kind != JsonKind.Bool) return err("\"logDecisions\" must be true or false");
    c.logDecisions = ld.bool;
  }

  const fp = root.get("forwardProxies");
  if (fp !== null) {
    if (fp.kind != JsonKind.Array) return err("\"forwardProxies\" must be a list of \"ip:port\" strings, e.g. [\"10.0.0.5:3128\"]");
    for (let i = 0; i < fp.items.length; i++) {
      const item = fp.items[i];
      const bad = "\"forwardProxies[" + i.toString() + "]\" must be \"ipv4:port\" or \"[ipv6]:port\"";
      if (item.kind != JsonKind.String) return err(bad);
      const b = String.UTF8.encode(item.str);
      if (!parseHostPort(changetype<usize>(b), <usize>b.byteLength) || parsedPort == 0) return err(bad + ", not \"" + item.str + "\"");
      c.proxyHi.push(parsedHi);
      c.proxyLo.push(parsedLo);
      c.proxyPort.push(parsedPort);
    }
  }
  return c;
}

/** "outbound|9090||egret-control.egret-system.svc.cluster.local" → "egret-control.egret-system.svc.cluster.local:9090". */
export function defaultAuthority(cluster: string): string {
  const parts = cluster.split("|");
  if (parts.length == 4 && parts[1].length > 0 && parts[3].length > 0) return parts[3] + ":" + parts[1];
  return cluster;
}
