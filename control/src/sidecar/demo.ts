// A local, root-free demonstration of the filter at work: real loopback TCP connections go
// through `egret sidecar`'s proxy (PROXY-protocol mode, so each connection names its own
// destination) into the Node proxy-wasm host running egret.wasm. No control service runs here, so
// the filter decides by its failure mode: once "open" (connections pass, protocol detected,
// reason control-unavailable) and once "closed" (the default: denied before any upstream connect).
// Prints one row per connection with what the filter logged, and the filter's metrics.
import net from "node:net";
import { EnvoyHost, type LogEntry } from "../host/index.js";
import { silentLogger } from "../common/log.js";
import { SidecarProxy, type ConnectionSummary } from "./proxy.js";
import { DEFAULT_WASM } from "./options.js";

const CLUSTER = "outbound|9090||egret-control.egret-system.svc.cluster.local";
const POD_IP = "10.1.0.7";

interface Row { n: number; mode: string; what: string; destination: string; sent: number; received: number; upstream: string; closedBy: string; filter: string[] }

async function listen(server: net.Server): Promise<number> {
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return (server.address() as net.AddressInfo).port;
}

/** One client connection through the proxy: PROXY header, payload (optionally byte by byte), half-close. */
function connect(proxyPort: number, dstPort: number, srcPort: number, payload: Buffer, byteByByte: boolean): Promise<Buffer> {
  return new Promise((resolve) => {
    const s = net.connect({ port: proxyPort, host: "127.0.0.1", allowHalfOpen: true });
    const parts: Buffer[] = [];
    s.on("data", (d) => parts.push(d));
    s.on("error", () => undefined);
    s.on("close", () => resolve(Buffer.concat(parts)));
    s.on("connect", async () => {
      s.write(`PROXY TCP4 ${POD_IP} 127.0.0.1 ${srcPort} ${dstPort}\r\n`);
      if (byteByByte) for (const b of payload) { s.write(Buffer.of(b)); await new Promise((r) => setTimeout(r, 1)); }
      else if (payload.length) s.write(payload);
      s.end();
    });
    setTimeout(() => s.destroy(), 10_000).unref();
  });
}

interface Planned { what: string; port: number; payload: Buffer; byteByByte: boolean }

/** Runs `plan` through a fresh host + proxy whose filter has `failureMode`; returns the rows. */
async function pass(wasm: string, failureMode: "open" | "closed", plan: Planned[], first: number, upstreamPort: number): Promise<{ rows: Row[]; metrics: string[]; notes: string[]; failed: string[] }> {
  const host = await EnvoyHost.create({
    wasm, concurrency: 1, logLevel: 2, failurePolicy: "FAIL_CLOSED",
    node: { name: "web-7d9f-abcde", namespace: "shop", labels: { app: "web" }, instanceIps: [POD_IP] },
    // Control is deliberately absent (its cluster points at a closed port).
    pluginConfig: JSON.stringify({ controlCluster: CLUSTER, failureMode, startupWaitMs: 0, logDecisions: true, detectTimeoutMs: 300 }),
    grpcClusters: { [CLUSTER]: `127.0.0.1:${upstreamPort}` },
  });
  const proxy = new SidecarProxy({ host, listenHost: "127.0.0.1", listenPort: 0, mode: { kind: "proxy-protocol" }, logger: silentLogger() });
  try {
    const proxyPort = Number((await proxy.start()).split(":").pop());
    const summaries: ConnectionSummary[] = [];
    proxy.on("connection-closed", (s) => summaries.push(s));
    const rows: Row[] = [];
    const notes = new Set<string>();
    for (const [i, p] of plan.entries()) {
      const before = summaries.length;
      const logsBefore = host.logs().length;
      const got = await connect(proxyPort, p.port, 40000 + first + i, p.payload, p.byteByByte);
      for (let t = 0; summaries.length === before && t < 500; t++) await new Promise((r) => setTimeout(r, 10));
      const s = summaries[before];
      const lines = host.logs().slice(logsBefore).filter((e: LogEntry) => !e.host && e.vm.startsWith("worker")).map((e) => e.message);
      const dst = `127.0.0.1:${p.port}`;
      const said = lines.filter((l) => l.includes(dst));
      for (const l of lines) if (!l.includes(dst)) notes.add(l.replace(/\d+\.\d+\.\d+\.\d+:\d+/g, "…"));
      rows.push({
        n: first + i + 1, mode: failureMode, what: p.what, destination: `127.0.0.1:${p.port}`, sent: p.payload.length, received: got.length,
        upstream: s?.upstreamConnected ? "connected" : "never", closedBy: s ? `${s.close.by}` : "?", filter: said,
      });
    }
    const metrics = host.prometheus().split("\n").filter((l) => l && !l.startsWith("#") && !/ 0$/.test(l) && !/_bucket/.test(l));
    return { rows, metrics, notes: [...notes], failed: host.vmStatus().filter((v) => v.failed).map((v) => `${v.name}: ${v.failure}`) };
  } finally {
    await proxy.stop();
    await host.close();
  }
}

export async function runLocalDemo(out: NodeJS.WritableStream, wasm = DEFAULT_WASM): Promise<number> {
  const echo = net.createServer({ allowHalfOpen: true }, (s) => { s.on("error", () => undefined); s.pipe(s); });
  const banner = net.createServer({ allowHalfOpen: true }, (s) => { s.on("error", () => undefined); s.end("220 mail.demo ESMTP ready\r\n"); s.resume(); });
  const closedPort = net.createServer();
  try {
    const echoPort = await listen(echo);
    const bannerPort = await listen(banner);
    const deadPort = await listen(closedPort);
    await new Promise<void>((r) => closedPort.close(() => r()));
    const open = await pass(wasm, "open", [
      { what: "HTTP request", port: echoPort, payload: Buffer.from("GET / HTTP/1.1\r\nHost: api.example.com\r\n\r\n"), byteByByte: false },
      { what: "PostgreSQL startup, 1 byte at a time", port: echoPort, payload: pgStartup(), byteByByte: true },
      { what: "server speaks first (SMTP)", port: bannerPort, payload: Buffer.alloc(0), byteByByte: false },
    ], 0, deadPort);
    const closed = await pass(wasm, "closed", [
      { what: "HTTP request", port: echoPort, payload: Buffer.from("GET / HTTP/1.1\r\nHost: api.example.com\r\n\r\n"), byteByByte: false },
    ], 3, deadPort);
    const rows = [...open.rows, ...closed.rows];
    const w = (s: string): boolean => out.write(s + "\n");
    w(`egret demo (local, no root): real TCP connections from pod ${POD_IP} through egret sidecar's proxy`);
    w(`filter: ${wasm}`);
    w("No control service runs here, so there is no DNS evidence: the filter applies its failure mode.\n");
    const header = ["#", "failureMode", "connection", "destination", "sent", "received", "upstream", "closed by"];
    const table = rows.map((r) => [String(r.n), r.mode, r.what, r.destination, `${r.sent} B`, `${r.received} B`, r.upstream, r.closedBy]);
    const widths = header.map((h, i) => Math.max(h.length, ...table.map((r) => r[i].length)));
    const line = (cells: string[]): string => cells.map((c, i) => c.padEnd(widths[i])).join("  ").trimEnd();
    w(line(header));
    w(widths.map((n) => "-".repeat(n)).join("  "));
    for (const r of table) w(line(r));
    w("\nwhat the filter logged, per connection:");
    for (const r of rows) for (const f of r.filter.length ? r.filter : ["(nothing)"]) w(`  #${r.n}  ${f}`);
    const notes = new Set([...open.notes, ...closed.notes]);
    if (notes.size) { w("\nother filter log lines:"); for (const n of notes) w(`  ${n}`); }
    w("\nfilter metrics that moved (open run, then closed run; Envoy's /stats/prometheus naming):");
    for (const m of open.metrics) w(`  open    ${m}`);
    for (const m of closed.metrics) w(`  closed  ${m}`);
    w("\nFor policies and DNS evidence end to end, see egret mesh / the full demo (root, network namespaces).");
    const failed = [...open.failed, ...closed.failed];
    if (failed.length) { w(`\nFAILED VMs: ${failed.join("; ")}`); return 1; }
    return 0;
  } finally {
    echo.close();
    banner.close();
  }
}

/** A PostgreSQL StartupMessage (protocol 3.0, user=app, database=shop). */
function pgStartup(): Buffer {
  const body = Buffer.concat([Buffer.from([0, 3, 0, 0]), Buffer.from("user\0app\0database\0shop\0\0")]);
  const len = Buffer.alloc(4);
  len.writeUInt32BE(body.length + 4);
  return Buffer.concat([len, body]);
}
