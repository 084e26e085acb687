// The HTTP port of egret control: /metrics (Prometheus text), /healthz (the process serves),
// /readyz (initial sync done, 503 with the reason before), /status (JSON: policies in force,
// invalid ones, watched pods, store size — for operators and tests). Extra routes (e.g. serving
// the wasm module) can be mounted by the caller.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { Registry } from "prom-client";

export type Route = (req: IncomingMessage, res: ServerResponse) => boolean | Promise<boolean>;

export interface HttpEdgeOptions {
  registry: Registry;
  /** undefined = ready; otherwise why not. */
  notReadyReason: () => string | undefined;
  /** Shown after "ready" on /readyz when set (e.g. the Kubernetes API has been unreachable: stale state). */
  readyDetail?: () => string | undefined;
  status: () => unknown;
  routes?: Route[];
}

export class HttpEdge {
  private readonly server: Server;

  constructor(private readonly o: HttpEdgeOptions) {
    this.server = createServer((req, res) => {
      this.handle(req, res).catch((err: unknown) => {
        if (!res.headersSent) res.writeHead(500, { "content-type": "text/plain" });
        res.end(`internal error: ${err instanceof Error ? err.message : String(err)}\n`);
      });
    });
  }

  listen(port: number, host = "0.0.0.0"): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(port, host, () => resolve((this.server.address() as AddressInfo).port));
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? "/").split("?")[0];
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { allow: "GET, HEAD" }).end();
      return;
    }
    switch (path) {
      case "/metrics": {
        const body = await this.o.registry.metrics();
        res.writeHead(200, { "content-type": this.o.registry.contentType }).end(body);
        return;
      }
      case "/healthz":
        res.writeHead(200, { "content-type": "text/plain" }).end("ok\n");
        return;
      case "/readyz": {
        const reason = this.o.notReadyReason();
        const detail = reason === undefined ? this.o.readyDetail?.() : undefined;
        if (reason === undefined) res.writeHead(200, { "content-type": "text/plain" }).end(detail ? `ready (stale: ${detail})\n` : "ready\n");
        else res.writeHead(503, { "content-type": "text/plain" }).end(`not ready: ${reason}\n`);
        return;
      }
      case "/status":
        res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(this.o.status(), null, 2) + "\n");
        return;
    }
    for (const route of this.o.routes ?? []) if (await route(req, res)) return;
    res.writeHead(404, { "content-type": "text/plain" }).end("not found\n");
  }
}
