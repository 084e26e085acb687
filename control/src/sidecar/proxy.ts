// A real TCP proxy around the proxy-wasm host: each accepted connection goes through the filter
// exactly as in Envoy's outbound listener (host/connection.ts), and tcp_proxy's part — connecting
// upstream, copying bytes, half-closes — is done with real sockets here.
import net from "node:net";
import { EventEmitter } from "node:events";
import type { EnvoyHost, Connection, CloseInfo } from "../host/index.js";
import type { Logger } from "../common/log.js";
import { originalDestination } from "./original-dst.js";
import { parseProxyV1 } from "./proxy-protocol.js";
import { parseHostPort } from "../common/host-port.js";
import type { FilterChoice } from "./ecds.js";

/** Envoy's default per_connection_buffer_limit_bytes: reads pause beyond it. */
const READ_BUFFER_LIMIT = 1 << 20;

/** How the sidecar learns where a connection was going. */
export type DestinationMode =
  | { kind: "original-dst" } // iptables REDIRECT + SO_ORIGINAL_DST (where Envoy's 15001 sits)
  | { kind: "fixed"; target: string } // every connection goes to one upstream
  | { kind: "proxy-protocol" }; // PROXY v1 header names it

/**
 * A ServiceEntry address Envoy routes to a cluster of its own (Istio: a VIP listener whose
 * tcp_proxy names `outbound|PORT||HOST`): connections to `address` ("ip:port") get `cluster` as
 * xds.cluster_name and go to `upstream` ("host:port", the ServiceEntry's endpoint) instead of the
 * original destination. Every other destination is PassthroughCluster.
 */
export interface ServiceRoute { address: string; cluster: string; upstream: string }

export interface SidecarProxyOptions {
  /** The filter's host for every connection; or give `filter`. */
  host?: EnvoyHost;
  /** Chooses per new connection (a module delivered through ECDS, ecds.ts): its host, no filter, or the fallback. */
  filter?: () => FilterChoice;
  /** ServiceEntry routes (VIP:port → cluster + endpoint), like Envoy's per-VIP listeners. */
  routes?: ServiceRoute[];
  listenHost: string;
  listenPort: number;
  mode: DestinationMode;
  logger: Logger;
  /** Upstream connect timeout (tcp_proxy connect_timeout). */
  connectTimeoutMs?: number;
  /** Time allowed for a PROXY header. */
  headerTimeoutMs?: number;
}

/** What happened to one connection (emitted as "connection-closed"). */
export interface ConnectionSummary {
  source: string;
  destination: string;
  bytesUpstream: number;
  bytesDownstream: number;
  close: CloseInfo;
  upstreamConnected: boolean;
}

export interface SidecarStats { accepted: number; active: number; rejected: number; upstreamConnectFailures: number; unfiltered: number }

export class SidecarProxy extends EventEmitter<{ "connection-closed": [ConnectionSummary] }> {
  readonly stats: SidecarStats = { accepted: 0, active: 0, rejected: 0, upstreamConnectFailures: 0, unfiltered: 0 };
  private server?: net.Server;
  private readonly sockets = new Set<net.Socket>();
  private listenAddress?: string;

  constructor(private readonly o: SidecarProxyOptions) { super(); }

  /** Starts listening; resolves with the bound "ip:port". */
  async start(): Promise<string> {
    const server = net.createServer({ pauseOnConnect: true, allowHalfOpen: true }, (s) => this.accept(s));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.o.listenPort, this.o.listenHost, () => { server.off("error", reject); resolve(); });
    });
    // After listening, accept errors (EMFILE, …) are logged, never fatal.
    server.on("error", (e) => this.o.logger.error({ err: e.message }, "listener error"));
    const a = server.address() as net.AddressInfo;
    this.listenAddress = a.family === "IPv6" ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`;
    return this.listenAddress;
  }

  /** Stops accepting, closes every connection, resolves when the listener is closed. */
  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    const closed = new Promise<void>((r) => server.close(() => r()));
    for (const s of this.sockets) s.destroy();
    await closed;
  }

  private accept(socket: net.Socket): void {
    this.stats.accepted++;
    this.sockets.add(socket);
    socket.on("close", () => this.sockets.delete(socket));
    socket.on("error", () => undefined); // reported through "close"
    const source = socket.remoteFamily === "IPv6" ? `[${socket.remoteAddress}]:${socket.remotePort}` : `${socket.remoteAddress}:${socket.remotePort}`;
    const mode = this.o.mode;
    if (mode.kind === "proxy-protocol") { this.readProxyHeader(socket); return; }
    let destination: string;
    try {
      destination = mode.kind === "fixed" ? mode.target : originalDestination(socket);
    } catch (e) {
      this.reject(socket, `no original destination: ${(e as Error).message}`);
      return;
    }
    if (destination === this.listenAddress) { this.reject(socket, "connection addressed to the sidecar itself (not redirected)"); return; }
    this.run(socket, source, destination, Buffer.alloc(0));
  }

  private readProxyHeader(socket: net.Socket): void {
    let buf = Buffer.alloc(0);
    const timer = setTimeout(() => this.reject(socket, "PROXY header timeout"), this.o.headerTimeoutMs ?? 5000);
    const onData = (chunk: Buffer): void => {
      buf = Buffer.concat([buf, chunk]);
      const h = parseProxyV1(buf);
      if (h === undefined) return;
      clearTimeout(timer);
      socket.off("data", onData);
      socket.pause();
      if ("error" in h) { this.reject(socket, h.error); return; }
      this.run(socket, h.source, h.destination, Buffer.from(h.rest));
    };
    socket.on("data", onData);
    socket.resume();
  }

  private reject(socket: net.Socket, why: string): void {
    this.stats.rejected++;
    this.o.logger.warn({ remote: `${socket.remoteAddress}:${socket.remotePort}`, reason: why }, "connection rejected");
    socket.destroy();
  }

  /** Wires one client socket to a host connection and, when the filter lets it, an upstream. */
  private run(socket: net.Socket, source: string, destination: string, early: Buffer): void {
    const route = this.o.routes?.find((r) => r.address === destination);
    const filter = this.o.filter ? this.o.filter() : this.o.host;
    if (filter === undefined) { this.reject(socket, "no filter host configured"); return; }
    if (filter === "deny-all" || filter === "warming") {
      // The RBAC fallback closes every connection; a listener still warming has none to take it.
      this.emit("connection-closed", { source, destination, bytesUpstream: 0, bytesDownstream: 0, close: { by: "filter", detail: filter === "deny-all" ? "rbac_access_denied:wasm-default-deny" : "listener_warming" }, upstreamConnected: false });
      socket.destroy();
      return;
    }
    if (filter === "passthrough") { this.passthrough(socket, source, destination, early, route); return; }
    let c: Connection;
    try {
      c = filter.openConnection({ source, destination, autoConnectUpstream: false, cluster: route?.cluster ?? "PassthroughCluster" });
    } catch (e) {
      this.reject(socket, (e as Error).message);
      return;
    }
    this.stats.active++;
    let upstream: net.Socket | undefined;
    let upstreamConnected = false;
    let bytesUp = 0, bytesDown = 0;

    // Reads stay disabled until tcp_proxy has its upstream (§3.2): the socket is paused until then.
    const connectUpstream = (): void => {
      const { host, port } = splitTarget(route?.upstream ?? destination);
      const up = net.connect({ host, port, allowHalfOpen: true });
      upstream = up;
      const timer = setTimeout(() => { up.destroy(); if (!upstreamConnected) { this.stats.upstreamConnectFailures++; c.upstreamConnectFailed("upstream_connect_timeout"); } }, this.o.connectTimeoutMs ?? 10_000);
      up.on("connect", () => {
        clearTimeout(timer);
        upstreamConnected = true;
        c.upstreamConnected(`${up.localAddress}:${up.localPort}`);
        if (!c.closed) socket.resume();
      });
      up.on("data", (d: Buffer) => c.upstreamData(d));
      up.on("end", () => c.upstreamData(Buffer.alloc(0), true));
      up.on("error", (e: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        if (!upstreamConnected) { this.stats.upstreamConnectFailures++; c.upstreamConnectFailed(`upstream_connect_failed:${e.code ?? e.message}`); }
        else c.upstreamClose(`upstream_error:${e.code ?? e.message}`);
      });
      up.on("close", () => { if (upstreamConnected) c.upstreamClose("upstream_closed"); });
      up.on("drain", () => socket.resume());
    };
    // A Continue from on_new_connection asks for the upstream inside openConnection(), before
    // listeners exist: honour that request here, later ones through the event.
    c.on("upstream-connect", connectUpstream);
    if (c.upstreamConnectRequested && !c.closed) connectUpstream();
    c.on("upstream-data", (d) => {
      bytesUp += d.length;
      if (upstream && !upstream.write(d)) socket.pause();
      else if (socket.isPaused() && upstreamConnected) socket.resume(); // held bytes released
    });
    c.on("upstream-end", () => upstream?.end());
    c.on("downstream-data", (d) => { bytesDown += d.length; if (!socket.write(d)) upstream?.pause(); });
    c.on("downstream-end", () => socket.end());
    socket.on("drain", () => upstream?.resume());
    socket.on("data", (d: Buffer) => {
      c.downstreamData(d);
      // Like Envoy's per-connection buffer limit: stop reading while the filter holds too much.
      if (c.heldDownstreamBytes > READ_BUFFER_LIMIT) socket.pause();
    });
    socket.on("end", () => c.downstreamData(Buffer.alloc(0), true));
    socket.on("close", () => c.downstreamClose());
    const onClose = (info: CloseInfo): void => {
      this.stats.active--;
      // FlushWrite: what was already written to the client still goes out, then FIN.
      if (info.by === "filter" || info.by === "vm-failed" || info.by === "upstream") socket.end(); else socket.destroy();
      if (upstream) { if (info.by === "downstream" && info.detail === "both_half_closed") upstream.end(); else upstream.destroy(); }
      setTimeout(() => socket.destroy(), 1000).unref();
      this.emit("connection-closed", { source, destination, bytesUpstream: bytesUp, bytesDownstream: bytesDown, close: info, upstreamConnected });
    };
    // Like the connect request, a close from on_new_connection happens inside openConnection().
    if (c.closed) { onClose(c.closeInfo!); return; }
    c.on("close", onClose);
    if (early.length > 0) c.downstreamData(early);
  }

  /** No filter in the chain (before the EnvoyFilter exists): tcp_proxy alone, bytes copied both ways. */
  private passthrough(socket: net.Socket, source: string, destination: string, early: Buffer, route?: ServiceRoute): void {
    this.stats.unfiltered++;
    this.stats.active++;
    const { host, port } = splitTarget(route?.upstream ?? destination);
    const up = net.connect({ host, port, allowHalfOpen: true });
    let connected = false, bytesUp = 0, bytesDown = 0, done = false;
    const finish = (by: CloseInfo["by"], detail: string): void => {
      if (done) return;
      done = true;
      this.stats.active--;
      this.emit("connection-closed", { source, destination, bytesUpstream: bytesUp, bytesDownstream: bytesDown, close: { by, detail }, upstreamConnected: connected });
    };
    up.on("connect", () => {
      connected = true;
      if (early.length > 0) { bytesUp += early.length; up.write(early); }
      socket.resume();
    });
    socket.on("data", (d: Buffer) => { bytesUp += d.length; if (!up.write(d)) socket.pause(); });
    up.on("data", (d: Buffer) => { bytesDown += d.length; if (!socket.write(d)) up.pause(); });
    up.on("drain", () => socket.resume());
    socket.on("drain", () => up.resume());
    socket.on("end", () => up.end());
    up.on("end", () => socket.end());
    up.on("error", (e: NodeJS.ErrnoException) => { if (!connected) this.stats.upstreamConnectFailures++; socket.destroy(); finish("upstream", `upstream_error:${e.code ?? e.message}`); });
    socket.on("error", () => up.destroy());
    up.on("close", () => { socket.end(); finish("upstream", "upstream_closed"); });
    socket.on("close", () => { up.destroy(); finish("downstream", "closed"); });
  }
}

function splitTarget(addr: string): { host: string; port: number } {
  return parseHostPort(addr, "original destination");
}
