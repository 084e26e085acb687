// Helper processes for the agent e2e tests, run inside network namespaces with
// `ip netns exec NS node dist/control/test/e2e/agent-tools.js <command> ...`:
//
//   control PORT            a fake control replica (AgentService.Observe on 127.0.0.1:PORT) that
//                           acknowledges every batch and prints each observation as a JSON line
//   forge BIND_IP           a DNS "server" on BIND_IP:53 that answers each query according to the
//                           first label of its name (good-, wrongid-, wrongport-, wrongq-,
//                           unsolicited-, silent-) — forged answers from a trusted address
//   query SERVER SPORT ID NAME   sends one A query from SPORT and exits
//   respond SRC_PORT DST DST_PORT ID NAME IP   sends one unsolicited A answer and exits
//   teredo SERVER V6POD V6RESOLVER NAME IP   sends, from UDP port 3544 to SERVER:53, a Teredo-wrapped
//                           IPv6 query V6POD → V6RESOLVER for NAME and the matching forged answer
//                           (NAME A IP) — what a pod without capabilities can send (finding 1)
//   fetch URL               prints the body of an HTTP GET
import { createSocket } from "node:dgram";
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
      const server = new grpc.Server();
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
      process.stdout.write(JSON.stringify({ ready: true }) + "\n");
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
