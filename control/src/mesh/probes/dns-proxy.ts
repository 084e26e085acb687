// istio-agent's DNS proxy, reduced to what Egret depends on (istio/istio pkg/dns/client/dns.go
// ServeDNS, pkg/dns/client/proxy.go): listens on 127.0.0.1:15053 over UDP **and TCP** inside the
// pod (one dnsProxy per protocol), answers the names it is configured with locally (ServiceEntry
// VIPs: A records, authoritative, NOERROR without answers for other types), and forwards every
// other query unchanged — same ID, same question — to the upstream resolver over the protocol it
// arrived on (the upstream client's Net is the listener's protocol), from a fresh socket in the
// pod's namespace, i.e. from the pod's address. Run it as the proxy's uid/gid (1337): the pod's
// DNS REDIRECT exempts that owner, so its upstream queries are not redirected back to it.
//
// usage: node dns-proxy.js LISTEN_PORT UPSTREAM_IP [NAME=IPv4[,IPv4…] ...]
import dgram from "node:dgram";
import net from "node:net";

const UPSTREAM_TIMEOUT_MS = 5000;
/** A DNS message over TCP is at most 65535 bytes after its 2-byte length prefix. */
const MAX_TCP_BUFFER = 2 + 65_535;

const [portText, upstream, ...entries] = process.argv.slice(2);
const table = new Map(entries.map((e) => [e.slice(0, e.indexOf("=")).toLowerCase().replace(/\.$/, ""), e.slice(e.indexOf("=") + 1).split(",")]));

interface Question { name: string; qtype: number; end: number }

/** The question's name (lowercase, no trailing dot) and the offset after QTYPE/QCLASS. */
function question(msg: Buffer): Question | undefined {
  if (msg.length < 12 || msg.readUInt16BE(4) !== 1) return undefined;
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

/** An authoritative answer from the table (A records for A questions, no records otherwise). */
function localAnswer(query: Buffer, q: Question, ips: string[]): Buffer {
  const head = Buffer.from(query.subarray(0, q.end));
  const records = q.qtype === 1 ? ips : [];
  head.writeUInt16BE(0x8400 | (query.readUInt16BE(2) & 0x0100) | 0x0080, 2); // QR, AA, RD copied, RA
  head.writeUInt16BE(1, 4);
  head.writeUInt16BE(records.length, 6);
  head.writeUInt16BE(0, 8);
  head.writeUInt16BE(0, 10);
  const rrs = records.map((ip) => {
    const rr = Buffer.alloc(16);
    rr.writeUInt16BE(0xc00c, 0);
    rr.writeUInt16BE(1, 2);
    rr.writeUInt16BE(1, 4);
    rr.writeUInt32BE(30, 6);
    rr.writeUInt16BE(4, 10);
    ip.split(".").forEach((o, i) => (rr[12 + i] = Number(o)));
    return rr;
  });
  return Buffer.concat([head, ...rrs]);
}

/** The local answer for a query the table knows, else undefined (forward it). */
function answerLocally(msg: Buffer): Buffer | undefined {
  const q = question(msg);
  const ips = q ? table.get(q.name) : undefined;
  return q && ips ? localAnswer(msg, q, ips) : undefined;
}

function forwardUdp(msg: Buffer, reply: (answer: Buffer) => void): void {
  const up = dgram.createSocket("udp4");
  const timer = setTimeout(() => up.close(), UPSTREAM_TIMEOUT_MS);
  up.on("message", (answer) => {
    clearTimeout(timer);
    reply(answer);
    up.close();
  });
  up.on("error", () => { clearTimeout(timer); up.close(); });
  up.send(msg, 53, upstream);
}

/** One query over a new TCP connection to the upstream (miekg/dns Client{Net: "tcp"}.Exchange). */
function forwardTcp(msg: Buffer, reply: (answer: Buffer) => void, fail: () => void): void {
  const up = net.connect({ host: upstream, port: 53 });
  let buf = Buffer.alloc(0);
  let done = false;
  const finish = (answer?: Buffer) => {
    if (done) return;
    done = true;
    up.destroy();
    if (answer) reply(answer); else fail();
  };
  up.setTimeout(UPSTREAM_TIMEOUT_MS, () => finish());
  up.on("error", () => finish());
  up.on("close", () => finish());
  up.on("connect", () => up.write(framed(msg)));
  up.on("data", (chunk: Buffer) => {
    buf = Buffer.concat([buf, chunk]);
    if (buf.length > MAX_TCP_BUFFER) return finish();
    if (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) finish(buf.subarray(2, 2 + buf.readUInt16BE(0)));
  });
}

function framed(msg: Buffer): Buffer {
  const len = Buffer.alloc(2);
  len.writeUInt16BE(msg.length, 0);
  return Buffer.concat([len, msg]);
}

const udp = dgram.createSocket("udp4");
udp.on("message", (msg, client) => {
  const send = (answer: Buffer) => udp.send(answer, client.port, client.address);
  const local = answerLocally(msg);
  if (local) send(local); else forwardUdp(msg, send);
});

/** A client connection: length-prefixed queries, each answered in turn (pipelining allowed). */
const tcp = net.createServer((client) => {
  let buf = Buffer.alloc(0);
  client.on("error", () => client.destroy());
  client.on("data", (chunk: Buffer) => {
    buf = Buffer.concat([buf, chunk]);
    if (buf.length > MAX_TCP_BUFFER) { client.destroy(); return; }
    while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
      const msg = buf.subarray(2, 2 + buf.readUInt16BE(0));
      buf = buf.subarray(2 + msg.length);
      const send = (answer: Buffer) => { if (!client.destroyed) client.write(framed(answer)); };
      const local = answerLocally(msg);
      if (local) send(local); else forwardTcp(Buffer.from(msg), send, () => client.destroy());
    }
  });
});

const port = Number(portText);
let listening = 0;
const ready = () => {
  if (++listening === 2) process.stdout.write(`dns-proxy listening on 127.0.0.1:${port} (udp, tcp), upstream ${upstream}, ${table.size} local names\n`);
};
udp.bind(port, "127.0.0.1", ready);
tcp.listen(port, "127.0.0.1", ready);
for (const sig of ["SIGTERM", "SIGINT"] as const) process.on(sig, () => { udp.close(); tcp.close(); process.exit(0); });
