// Helper processes for the agent e2e tests, run inside network namespaces with
// `ip netns exec NS node dist/control/test/e2e/agent-tools.js <command> ...`:
//
//   control PORT [MAXBYTES] a fake control replica (MAXBYTES: its gRPC receive limit) (AgentService.Observe on 127.0.0.1:PORT) that
//                           acknowledges every batch and prints each observation as a JSON line
//   forge BIND_IP           a DNS "server" on BIND_IP:53 that answers each query according to the
//                           first label of its name (good-, wrongid-, wrongport-, wrongq-,
//                           unsolicited-, silent-) — forged answers from a trusted address
//                           Over TCP it answers a pipelined "TXT hidden-N" + "A stolen-N": the TXT
//                           answer hides a complete framed answer "stolen-N A 198.18.66.6"; the
//                           stream is written in two parts, split where the hidden message starts,
//                           a second apart (finding 7); the real answer is stolen-N A 198.18.77.1
//   tcpdesync SERVER N FLOOD   over one TCP connection asks TXT hidden-N and A stolen-N, then, when
//                           FLOOD > 0, opens FLOOD more connections to SERVER:53 while the answer
//                           is half sent (the agent must evict the pod's own oldest connection)
//   flood SERVER COUNT      over one TCP connection asks COUNT TXT questions flood-I.egret.test; the
//                           forger answers each with ~60 KB of one-byte TXT strings (finding 9)
//   query SERVER SPORT ID NAME   sends one A query from SPORT and exits
//   respond SRC_PORT DST DST_PORT ID NAME IP   sends one unsolicited A answer and exits
//   teredo SERVER V6POD V6RESOLVER NAME IP   sends, from UDP port 3544 to SERVER:53, a Teredo-wrapped
//                           IPv6 query V6POD → V6RESOLVER for NAME and the matching forged answer
//                           (NAME A IP) — what a pod without capabilities can send (finding 1)
//   big BIND_IP N           a DNS "server" on BIND_IP:53 answering each A query over UDP with N A
//                           records (198.18.100.0 + i), whatever its size: the kernel fragments it
//   fetch URL               prints the body of an HTTP GET
import { createSocket } from "node:dgram";
import { connect, createServer, type Socket } from "node:net";
import * as grpc from "@grpc/grpc-js";
import { agentServiceDefinition, bytesToIp, type AgentServiceHandlers, type ObserveRequest } from "../../src/proto/index.js";
import { parseDnsMessage } from "../../src/dns/message.js";
import { readName } from "../../src/dns/render.js";
import { dnsMessage, T } from "../unit/dns-fixtures.js";

const [cmd, ...args] = process.argv.slice(2);

function send(sock: ReturnType<typeof createSocket>, msg: Uint8Array, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => sock.send(msg, port, host, (err) => (err ? reject(err) : resolve())));
}

function v6(text: string): number[] {
  const [head, tail] = text.includes("::") ? text.split("::") : [text, ""];
  const h = head ? head.split(":") : [];
  const t = tail ? tail.split(":") : [];
  return [...h, ...new Array<string>(8 - h.length - t.length).fill("0"), ...t].flatMap((g) => [parseInt(g, 16) >> 8, parseInt(g, 16) & 0xff]);
}

function framed(...messages: Uint8Array[]): Uint8Array {
  const parts = messages.flatMap((m) => [Uint8Array.from([m.length >> 8, m.length & 0xff]), m]);
  return Uint8Array.from(parts.flatMap((p) => [...p]));
}

/** The forger's DNS-over-TCP side: see "forge" above. Other connections are held open, silent. */
function serveTcp(conn: Socket): void {
  conn.setNoDelay(true);
  conn.on("error", () => {});
  let buf = Buffer.alloc(0);
  conn.on("data", (d: Buffer) => {
    buf = Buffer.concat([buf, d]);
    if (buf.length < 2) return;
    const first = parseDnsMessage(buf.subarray(2, 2 + buf.readUInt16BE(0)));
    if (!first.ok) return;
    const name = readName(first.message.buf, first.message.questions[0]!.nameOffset) ?? "";
    if (name.startsWith("flood-")) {
      // Pipelined flood queries: answer each complete one with ~60 KB of one-byte TXT strings.
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const q = parseDnsMessage(buf.subarray(2, 2 + buf.readUInt16BE(0)));
        buf = buf.subarray(2 + buf.readUInt16BE(0));
        if (!q.ok) continue;
        const qname = readName(q.message.buf, q.message.questions[0]!.nameOffset) ?? "";
        const txt = new Uint8Array(60_000);
        for (let i = 0; i < txt.length; i += 2) { txt[i] = 1; txt[i + 1] = 0x78; }
        conn.write(framed(dnsMessage({ id: q.message.id, response: true, questions: [{ name: qname, type: T.TXT }], answers: [{ name: qname, type: T.TXT, ttl: 604800, data: txt }] })));
      }
      return;
    }
    if (!name.startsWith("hidden-")) return;
    buf = Buffer.alloc(0);
    const stolen = name.replace(/^hidden-/, "stolen-");
    const answerA = (ip: string, ttl: number) => dnsMessage({ id: 2, response: true, questions: [{ name: stolen, type: T.A }], answers: [{ name: stolen, type: T.A, ttl, data: ip }] });
    const hidden = framed(answerA("198.18.66.6", 604800));
    const txt = dnsMessage({ id: 1, response: true, questions: [{ name, type: T.TXT }], answers: [{ name, type: T.TXT, ttl: 60, data: Uint8Array.from([hidden.length, ...hidden]) }] });
    const stream = framed(txt, answerA("198.18.77.1", 300));
    const hiddenAt = 2 + txt.length - hidden.length;
    conn.write(stream.subarray(0, hiddenAt));
    setTimeout(() => conn.write(stream.subarray(hiddenAt)), 1000);
  });
}

/** A Teredo datagram body (RFC 4380: origin indication, then IPv6) carrying one IPv6 UDP packet. */
function teredo(src: string, sport: number, dst: string, dport: number, payload: Uint8Array): Uint8Array {
  const udpLen = 8 + payload.length;
  const udp = [sport >> 8, sport & 0xff, dport >> 8, dport & 0xff, udpLen >> 8, udpLen & 0xff, 0, 0, ...payload];
  const ip6 = [0x60, 0, 0, 0, udpLen >> 8, udpLen & 0xff, 17, 64, ...v6(src), ...v6(dst)];
  return Uint8Array.from([0, 0, 0x9c, 0x40, 1, 2, 3, 4, ...ip6, ...udp]);
}

async function main(): Promise<void> {
  switch (cmd) {
    case "control": {
      const server = new grpc.Server(args[1] ? { "grpc.max_receive_message_length": Number(args[1]) } : {});
      const handlers: AgentServiceHandlers = {
        Observe(call) {
          call.on("data", (req: ObserveRequest) => {
            for (const o of req.observations) {
              process.stdout.write(JSON.stringify({
                agent: req.agent_id, replay: req.replay, pod: bytesToIp(o.pod_ip), qname: o.query_name, qtype: o.query_type, rcode: o.rcode,
                chain: o.cname_chain, answers: o.answers.map((a) => [bytesToIp(a.ip), a.ttl_seconds]),
                resolver: bytesToIp(o.resolver_ip), transport: o.transport, iface: o.interface_name,
              }) + "\n");
            }
            call.write({ acked_sequence: req.sequence, accepted_observations: req.observations.length, server_id: "e2e" });
          });
          call.on("error", () => {});
          call.on("end", () => call.end());
        },
      };
      server.addService(agentServiceDefinition(), handlers);
      await new Promise<void>((resolve, reject) =>
        server.bindAsync(`127.0.0.1:${args[0]}`, grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())));
      process.stdout.write(JSON.stringify({ ready: true }) + "\n");
      return;
    }
    case "forge": {
      const ip = args[0]!;
      const main = createSocket("udp4");
      await new Promise<void>((r) => main.bind(53, ip, () => r()));
      main.on("message", (msg, from) => {
        const p = parseDnsMessage(msg);
        if (!p.ok || p.message.isResponse) return;
        const name = readName(p.message.buf, p.message.questions[0]!.nameOffset) ?? "";
        const kind = name.split("-")[0];
        const id = p.message.id;
        const answer = (qname: string, rid: number) => dnsMessage({
          id: rid, response: true, questions: [{ name: qname, type: T.A }],
          answers: [{ name: qname, type: T.A, ttl: 300, data: "198.18.77.1" }],
        });
        switch (kind) {
          case "good": void send(main, answer(name, id), from.port, from.address); break;
          case "wrongid": void send(main, answer(name, (id + 1) & 0xffff), from.port, from.address); break;
          case "wrongport": void send(main, answer(name, id), from.port + 1, from.address); break;
          case "wrongq": void send(main, answer("bank.egret.test", id), from.port, from.address); break;
          case "unsolicited": void send(main, answer(name, (id + 7) & 0xffff), from.port + 1, from.address); break;
          default: break; // silent-: never answered
        }
      });
      const tcp = createServer((conn) => serveTcp(conn));
      await new Promise<void>((r) => tcp.listen(53, ip, () => r()));
      process.stdout.write(JSON.stringify({ ready: true }) + "\n");
      return;
    }
    case "big": {
      const [ip, n] = args;
      const sock = createSocket("udp4");
      await new Promise<void>((r) => sock.bind(53, ip, () => r()));
      sock.on("message", (msg, from) => {
        const p = parseDnsMessage(msg);
        if (!p.ok || p.message.isResponse) return;
        const name = readName(p.message.buf, p.message.questions[0]!.nameOffset) ?? "";
        const answers = Array.from({ length: Number(n) }, (_, i) => ({ name, type: T.A, ttl: 300, data: `198.18.${100 + (i >> 8)}.${i & 0xff}` }));
        void send(sock, dnsMessage({ id: p.message.id, response: true, questions: [{ name, type: T.A }], answers }), from.port, from.address);
      });
      process.stdout.write(JSON.stringify({ ready: true }) + "\n");
      return;
    }
    case "tcpdesync": {
      const [server, n, flood] = args;
      const conn = connect(53, server!);
      conn.setNoDelay(true);
      await new Promise<void>((r) => conn.once("connect", () => r()));
      conn.write(framed(dnsMessage({ id: 1, questions: [{ name: `hidden-${n}.egret.test`, type: T.TXT }] }), dnsMessage({ id: 2, questions: [{ name: `stolen-${n}.egret.test`, type: T.A }] })));
      let got = 0;
      const done = new Promise<void>((r) => conn.on("data", (d: Buffer) => { got += d.length; if (got >= 2) setTimeout(r, 1800); }));
      const others: Socket[] = [];
      await new Promise((r) => setTimeout(r, 300));
      for (let i = 0; i < Number(flood); i++) {
        const o = connect(53, server!);
        o.on("error", () => {});
        others.push(o);
        await new Promise<void>((r) => { o.once("connect", () => r()); o.once("error", () => r()); });
      }
      await done;
      for (const o of others) o.destroy();
      conn.destroy();
      return;
    }
    case "flood": {
      const [server, count] = args;
      const conn = connect(53, server!);
      conn.on("error", () => {});
      await new Promise<void>((r) => conn.once("connect", () => r()));
      let got = 0;
      const want = Number(count);
      const done = new Promise<void>((r) => {
        let buf = Buffer.alloc(0);
        conn.on("data", (d: Buffer) => {
          buf = Buffer.concat([buf, d]);
          while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
            buf = buf.subarray(2 + buf.readUInt16BE(0));
            if (++got === want) r();
          }
        });
        conn.on("close", () => r());
      });
      for (let i = 0; i < want; i++) {
        const q = framed(dnsMessage({ id: i & 0xffff, questions: [{ name: `flood-${i}.egret.test`, type: T.TXT }] }));
        if (!conn.write(q)) await new Promise((r) => conn.once("drain", r));
      }
      await done;
      conn.destroy();
      process.stdout.write(`${got}\n`);
      return;
    }
    case "query": {
      const [server, sport, id, name] = args;
      const sock = createSocket("udp4");
      await new Promise<void>((r) => sock.bind(Number(sport), () => r()));
      await send(sock, dnsMessage({ id: Number(id), questions: [{ name: name!, type: T.A }] }), 53, server!);
      // Stay a moment so the answers find an open socket (no ICMP noise), then exit.
      setTimeout(() => sock.close(), 1500);
      return;
    }
    case "respond": {
      const [sport, dst, dport, id, name, ip] = args;
      const sock = createSocket("udp4");
      await new Promise<void>((r) => sock.bind(Number(sport), () => r()));
      await send(sock, dnsMessage({ id: Number(id), response: true, questions: [{ name: name!, type: T.A }], answers: [{ name: name!, type: T.A, data: ip! }] }), Number(dport), dst!);
      sock.close();
      return;
    }
    case "teredo": {
      const [server, pod, resolver, name, ip] = args;
      const sock = createSocket("udp4");
      await new Promise<void>((r) => sock.bind(3544, () => r()));
      const query = dnsMessage({ id: 4242, questions: [{ name: name!, type: T.A }] });
      const answer = dnsMessage({ id: 4242, response: true, questions: [{ name: name!, type: T.A }], answers: [{ name: name!, type: T.A, ttl: 604800, data: ip! }] });
      await send(sock, teredo(pod!, 40000, resolver!, 53, query), 53, server!);
      await send(sock, teredo(resolver!, 53, pod!, 40000, answer), 53, server!);
      sock.close();
      return;
    }
    case "fetch": {
      const res = await fetch(args[0]!);
      process.stdout.write(await res.text());
      return;
    }
    default:
      process.stderr.write(`unknown command ${cmd}\n`);
      process.exitCode = 2;
  }
}

main().catch((err: Error) => {
  process.stderr.write(`${err.stack ?? err.message}\n`);
  process.exit(1);
});
