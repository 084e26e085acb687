// An "application" for the demo (and any caller without curl/openssl), run inside a pod:
//   node app-probe.js --to NAME|IP --port N [--tls] [--sni NAME] [--host NAME] [--ca FILE]
// Resolves NAME with the system resolver (glibc, the pod's resolv.conf) like an app, connects,
// optionally does TLS (SNI defaults to NAME), sends one HTTP GET with Host (default NAME) and
// prints one JSON line {ok, address, status, error, local} (local: the client's ip:port, once
// connected — the corpus recorder's truth names each connection by it). Exit 0 when a response arrived.
import { connect as tcpConnect, isIP } from "node:net";
import { connect as tlsConnect } from "node:tls";
import { lookup } from "node:dns/promises";
import { readFileSync } from "node:fs";
import { readFlags } from "../../common/flags.js";

const { values } = readFlags({
  options: { to: { type: "string" }, port: { type: "string" }, tls: { type: "boolean" }, sni: { type: "string" }, host: { type: "string" }, ca: { type: "string" } },
});
const TIMEOUT_MS = 10_000;

let local: string | undefined;

function out(result: { ok: boolean; address?: string; status?: string; error?: string }): never {
  process.stdout.write(JSON.stringify(local ? { ...result, local } : result) + "\n");
  process.exit(result.ok ? 0 : 1);
}

async function main(): Promise<void> {
  const to = values.to ?? "";
  const port = Number(values.port ?? (values.tls ? 443 : 80));
  let address = to;
  if (!isIP(to)) {
    try { address = (await lookup(to, { family: 4 })).address; } catch (e) { out({ ok: false, error: `resolve ${to}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}` }); }
  }
  const host = values.host ?? to;
  const sni = values.sni ?? (isIP(to) ? undefined : to);
  const sock = values.tls
    ? tlsConnect({ host: address, port, servername: sni, ca: values.ca ? readFileSync(values.ca) : undefined, rejectUnauthorized: !!values.ca })
    : tcpConnect({ host: address, port });
  sock.once("connect", () => { local = `${sock.localAddress}:${sock.localPort}`; });
  sock.setTimeout(TIMEOUT_MS, () => { sock.destroy(); out({ ok: false, address, error: "timeout" }); });
  sock.once(values.tls ? "secureConnect" : "connect", () => sock.write(`GET / HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`));
  let reply = "";
  sock.on("data", (b: Buffer) => {
    reply += b.toString("latin1");
    const line = reply.split("\r\n")[0] ?? "";
    if (line.startsWith("HTTP/")) { sock.destroy(); out({ ok: true, address, status: line }); }
  });
  sock.on("error", (e: NodeJS.ErrnoException) => out({ ok: false, address, error: e.code ?? e.message }));
  sock.on("close", () => out({ ok: false, address, error: reply ? "bad reply" : "closed by peer" }));
}
void main();
