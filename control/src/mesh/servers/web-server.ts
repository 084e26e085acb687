// The outside web service, run by the mesh inside its outside namespace:
//   node web-server.js --http IP:80 … --https IP:443 … --cert PEM --key PEM
// Every response names the address that answered, the Host header and, over TLS, the SNI, so a
// scenario can check which server a connection really reached.
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import { readFileSync } from "node:fs";
import { readFlags } from "../../common/flags.js";
import type { TLSSocket } from "node:tls";
import { parseHostPort } from "../../common/host-port.js";

const { values } = readFlags({
  options: { http: { type: "string", multiple: true }, https: { type: "string", multiple: true }, cert: { type: "string" }, key: { type: "string" } },
});

function split(hostPort: string): [string, number] {
  const { host, port } = parseHostPort(hostPort, "web-server --http/--https");
  return [host, port];
}

function respond(req: IncomingMessage, res: ServerResponse): void {
  const sock = req.socket as TLSSocket;
  const sni = typeof sock.servername === "string" ? sock.servername : "-";
  const body = `egret-mesh-web local=${sock.localAddress}:${sock.localPort} host=${req.headers.host ?? "-"} sni=${sni} path=${req.url}\n`;
  res.writeHead(200, { "content-type": "text/plain", "content-length": Buffer.byteLength(body) });
  res.end(body);
}

for (const hp of values.http ?? []) {
  const [host, port] = split(hp);
  createHttpServer(respond).listen(port, host);
}
if ((values.https ?? []).length > 0) {
  if (!values.cert || !values.key) throw new Error("web-server: --https needs --cert and --key");
  const tls = { cert: readFileSync(values.cert), key: readFileSync(values.key) };
  for (const hp of values.https ?? []) {
    const [host, port] = split(hp);
    createHttpsServer(tls, respond).listen(port, host);
  }
}
for (const sig of ["SIGTERM", "SIGINT"] as const) process.on(sig, () => process.exit(0));
