// Steady application traffic for install/upgrade tests, run inside a pod:
//   node traffic-probe.js --to NAME --port N [--tls --ca FILE] --stop-file PATH [--pause-ms MS]
// Until PATH exists: resolve NAME (the pod's resolver, like an app), connect, optionally TLS,
// send one HTTP GET, wait for the status line, close; then the next. One JSON line per connection
// {n, at, ok, status?, error?} on stdout. Exit 0.
import { connect as tcpConnect } from "node:net";
import { connect as tlsConnect } from "node:tls";
import { lookup } from "node:dns/promises";
import { existsSync, readFileSync } from "node:fs";
import { readFlags } from "../../common/flags.js";

const { values } = readFlags({
  options: { to: { type: "string" }, port: { type: "string" }, tls: { type: "boolean" }, ca: { type: "string" }, "stop-file": { type: "string" }, "pause-ms": { type: "string" } },
});
const to = values.to ?? "";
const port = Number(values.port ?? (values.tls ? 443 : 80));
const ca = values.ca ? readFileSync(values.ca) : undefined;
const pauseMs = Number(values["pause-ms"] ?? "50");
const TIMEOUT_MS = 10_000;

function once(): Promise<{ ok: boolean; status?: string; error?: string }> {
  return new Promise((resolve) => {
    lookup(to, { family: 4 }).then(({ address }) => {
      const sock = values.tls ? tlsConnect({ host: address, port, servername: to, ca, rejectUnauthorized: !!ca }) : tcpConnect({ host: address, port });
      let reply = "";
      let done = false;
      const finish = (r: { ok: boolean; status?: string; error?: string }) => { if (!done) { done = true; sock.destroy(); resolve(r); } };
      sock.setTimeout(TIMEOUT_MS, () => finish({ ok: false, error: "timeout" }));
      sock.once(values.tls ? "secureConnect" : "connect", () => sock.write(`GET / HTTP/1.1\r\nHost: ${to}\r\nConnection: close\r\n\r\n`));
      sock.on("data", (d: Buffer) => {
        reply += d.toString("latin1");
        const line = reply.split("\r\n")[0]!;
        if (reply.includes("\r\n")) finish(/^HTTP\/1\.[01] \d{3}/.test(line) ? { ok: true, status: line } : { ok: false, error: `bad status line ${JSON.stringify(line)}` });
      });
      sock.on("error", (e: NodeJS.ErrnoException) => finish({ ok: false, error: e.code ?? e.message }));
      sock.on("close", () => finish({ ok: false, error: "closed before an answer" }));
    }, (e: NodeJS.ErrnoException) => resolve({ ok: false, error: `resolve ${to}: ${e.code ?? e.message}` }));
  });
}

const stopFile = values["stop-file"] ?? "";
for (let n = 1; !existsSync(stopFile); n++) {
  const at = Date.now();
  const r = await once();
  process.stdout.write(JSON.stringify({ n, at, ...r }) + "\n");
  await new Promise((res) => setTimeout(res, pauseMs));
}
