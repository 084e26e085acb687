// Envoy's `upstream_bind_config` (cluster_manager / Cluster: the source address of upstream
// connections) for the Node host, whose gRPC library cannot choose one: a loopback forwarder that
// accepts the client's connection and opens the real one from `sourceAddress`. On one machine,
// any 127.0.0.0/8 address works as a source without configuration, so tests and offline
// commands can give every simulated pod its own address, as pod network namespaces do, and the
// control service binds each filter to its pod by that address, exactly as in a cluster.
import net from "node:net";
import { parseHostPort } from "../common/host-port.js";

export class SourceBoundForwarder {
  private constructor(
    private readonly server: net.Server,
    private readonly sockets: Set<net.Socket>,
    readonly address: string,
  ) {}

  /** Forwards every connection made to `.address` to `target` ("host:port") from `sourceAddress`. */
  static async start(target: string, sourceAddress: string): Promise<SourceBoundForwarder> {
    const { host, port } = parseHostPort(target, "gRPC cluster endpoint");
    const sockets = new Set<net.Socket>();
    const server = net.createServer((down) => {
      const up = net.connect({ host, port, localAddress: sourceAddress });
      for (const s of [down, up]) {
        sockets.add(s);
        s.setNoDelay(true);
        s.on("close", () => sockets.delete(s));
      }
      down.pipe(up);
      up.pipe(down);
      down.on("error", () => up.destroy());
      up.on("error", () => down.destroy());
      down.on("close", () => up.destroy());
      up.on("close", () => down.destroy());
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(0, "127.0.0.1", () => resolve());
    });
    return new SourceBoundForwarder(server, sockets, `127.0.0.1:${(server.address() as net.AddressInfo).port}`);
  }

  private closed = false;

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.server.close();
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
  }
}

