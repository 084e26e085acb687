// A raw-socket client for scenarios, run inside a pod namespace:
//   node tcp-probe.js HOST PORT [BASE64-PAYLOAD] [SILENCE-MS]
// Resolves HOST with the system resolver (like any app), connects, stays silent SILENCE-MS (a
// client whose verdict waits for its first bytes), sends the payload and waits for
// the first reply bytes. Prints one JSON line {connected, replyBytes, reply, error} and exits 0
// when a reply arrived, 1 otherwise. "Connected" means the far end answered: a sidecar that
// accepts and then closes a denied connection is "refused".
import { connect } from "node:net";

const [host = "", portText = "", payload = "", silenceText = "0"] = process.argv.slice(2);
const silenceMs = Number(silenceText) || 0;
const TIMEOUT_MS = 15_000;
const started = Date.now();
let reply = Buffer.alloc(0);
let done = false;

function finish(error?: string): void {
  if (done) return;
  done = true;
  const ok = reply.length > 0;
  process.stdout.write(JSON.stringify({ connected: ok, replyBytes: reply.length, reply: reply.subarray(0, 200).toString("latin1"), error, ms: Date.now() - started }) + "\n");
  process.exit(ok ? 0 : 1);
}

const sock = connect({ host, port: Number(portText) });
sock.setTimeout(TIMEOUT_MS, () => { finish("timeout"); sock.destroy(); });
sock.on("connect", () => {
  if (payload) setTimeout(() => sock.write(Buffer.from(payload, "base64")), silenceMs);
});
sock.on("data", (b: Buffer) => {
  reply = Buffer.concat([reply, b]);
  // Enough to know the server answered; give it a moment to finish a short reply.
  setTimeout(() => { finish(); sock.destroy(); }, 50);
});
sock.on("error", (e) => finish(e.message));
sock.on("close", () => finish(reply.length ? undefined : "closed without a reply"));
