// istio-agent's DNS proxy, reduced to what Egret depends on (pkg/dns/client/dns.go ServeDNS):
// listens on 127.0.0.1:15053 (UDP) inside the pod, answers the names it is configured with locally
// (ServiceEntry VIPs: A record, NOERROR without answers for other types), and forwards every other
// query unchanged — same ID, same question — to the upstream resolver from a fresh socket in the
// pod's namespace, i.e. from the pod's address. Run it as the proxy's uid/gid (1337): the pod's
// DNS REDIRECT exempts that owner, so its upstream queries are not redirected back to it.
//
// usage: node dns-proxy.js LISTEN_PORT UPSTREAM_IP [NAME=IPv4 ...]
import dgram from "node:dgram";

const [portText, upstream, ...entries] = process.argv.slice(2);
const table = new Map(entries.map((e) => [e.slice(0, e.indexOf("=")).toLowerCase(), e.slice(e.indexOf("=") + 1)]));

/** The question's name (lowercase, no trailing dot) and the offset after QTYPE/QCLASS. */
function question(msg: Buffer): { name: string; qtype: number; end: number } | undefined {
  let at = 12;
  const labels: string[] = [];
  while (at < msg.length) {
    const n = msg[at]!;
    if (n === 0) { at++; break; }
    if (n > 63 || at + 1 + n > msg.length) return undefined;
    labels.push(msg.subarray(at + 1, at + 1 + n).toString("latin1"));
    at += 1 + n;
  }
  if (at + 4 > msg.length) return undefined;
  return { name: labels.join(".").toLowerCase(), qtype: msg.readUInt16BE(at), end: at + 4 };
}

/** An authoritative answer from the table (A record for A questions, no records otherwise). */
function localAnswer(query: Buffer, q: { qtype: number; end: number }, ip: string): Buffer {
  const head = Buffer.from(query.subarray(0, q.end));
  head.writeUInt16BE(0x8400 | (query.readUInt16BE(2) & 0x0100) | 0x0080, 2); // QR, AA, RD copied, RA
  head.writeUInt16BE(1, 4);
  head.writeUInt16BE(q.qtype === 1 ? 1 : 0, 6);
  head.writeUInt16BE(0, 8);
  head.writeUInt16BE(0, 10);
  if (q.qtype !== 1) return head;
  const rr = Buffer.alloc(16);
  rr.writeUInt16BE(0xc00c, 0);
  rr.writeUInt16BE(1, 2);
  rr.writeUInt16BE(1, 4);
  rr.writeUInt32BE(30, 6);
  rr.writeUInt16BE(4, 10);
  ip.split(".").forEach((o, i) => (rr[12 + i] = Number(o)));
  return Buffer.concat([head, rr]);
}

const server = dgram.createSocket("udp4");
server.on("message", (msg, client) => {
  const q = question(msg);
  const ip = q ? table.get(q.name) : undefined;
  if (q && ip) {
    server.send(localAnswer(msg, q, ip), client.port, client.address);
    return;
  }
  const up = dgram.createSocket("udp4");
  const timer = setTimeout(() => up.close(), 5000);
  up.on("message", (answer) => {
    clearTimeout(timer);
    server.send(answer, client.port, client.address);
    up.close();
  });
  up.on("error", () => { clearTimeout(timer); up.close(); });
  up.send(msg, 53, upstream);
});
server.bind(Number(portText), "127.0.0.1", () => process.stdout.write(`dns-proxy listening on 127.0.0.1:${portText}, upstream ${upstream}\n`));
for (const sig of ["SIGTERM", "SIGINT"] as const) process.on(sig, () => { server.close(); process.exit(0); });
