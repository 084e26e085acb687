// Builds captures for replay tests (egret simulate, egret learn): DNS exchanges and whole TCP
// connections at increasing times (Ethernet, IPv4), written as a pcap file.
import { pcapFile, ethernet, ipv4, tcpSegment, udpDatagram } from "../unit/pcap/builders.js";
import { dnsMessage, T } from "../unit/dns-fixtures.js";

export class CaptureScript {
  private records: { time: number; data: Uint8Array }[] = [];
  private t = 1_767_225_600; // 2026-01-01
  private nextId = 1;

  private add(frame: Uint8Array, dt = 0.001): void {
    this.t += dt;
    this.records.push({ time: this.t, data: frame });
  }

  /** The pod asks `resolver` for `name`; the answer follows the CNAME chain to `ips`. */
  dns(pod: string, resolver: string, name: string, ips: string[], o: { cnames?: string[]; ttl?: number; id?: number; answerOnly?: boolean } = {}): this {
    const id = o.id ?? this.nextId++;
    const port = 30000 + (id % 30000);
    const q = dnsMessage({ id, questions: [{ name, type: T.A }] });
    const chain = [name, ...(o.cnames ?? [])];
    const answers = [
      ...chain.slice(1).map((target, i) => ({ name: chain[i]!, type: T.CNAME, ttl: o.ttl ?? 300, data: target })),
      ...ips.map((ip) => ({ name: chain.at(-1)!, type: T.A, ttl: o.ttl ?? 300, data: ip })),
    ];
    const a = dnsMessage({ id, response: true, questions: [{ name, type: T.A }], answers });
    if (!o.answerOnly) this.add(ethernet(ipv4(pod, resolver, 17, udpDatagram(port, 53, q))));
    this.add(ethernet(ipv4(resolver, pod, 17, udpDatagram(53, port, a))));
    return this;
  }

  /** A complete TCP connection: handshake, client bytes, server bytes, FIN both ways. */
  tcp(client: string, cport: number, server: string, sport: number, fromClient: Uint8Array, fromServer: Uint8Array = new Uint8Array()): this {
    const c = 1000, s = 5000;
    const seg = (src: string, sp: number, dst: string, dp: number, payload: Uint8Array, seq: number, ack: number, flags: number) =>
      this.add(ethernet(ipv4(src, dst, 6, tcpSegment(sp, dp, payload, { seq, ack, flags }))));
    seg(client, cport, server, sport, new Uint8Array(), c, 0, 0x02);
    seg(server, sport, client, cport, new Uint8Array(), s, c + 1, 0x12);
    seg(client, cport, server, sport, new Uint8Array(), c + 1, s + 1, 0x10);
    if (fromClient.length) seg(client, cport, server, sport, fromClient, c + 1, s + 1, 0x18);
    if (fromServer.length) seg(server, sport, client, cport, fromServer, s + 1, c + 1 + fromClient.length, 0x18);
    seg(client, cport, server, sport, new Uint8Array(), c + 1 + fromClient.length, s + 1 + fromServer.length, 0x11);
    seg(server, sport, client, cport, new Uint8Array(), s + 1 + fromServer.length, c + 2 + fromClient.length, 0x11);
    return this;
  }

  /**
   * A TCP connection whose client and server segments alternate as listed; `wait` (seconds) passes
   * before a segment. Ends with FIN both ways.
   */
  conversation(client: string, cport: number, server: string, sport: number, segments: Array<{ fromClient: boolean; bytes: Uint8Array; wait?: number }>): this {
    let c = 1000, s = 5000;
    const seg = (fromClient: boolean, payload: Uint8Array, flags: number) => {
      const frame = fromClient ? ipv4(client, server, 6, tcpSegment(cport, sport, payload, { seq: c, ack: s, flags }))
        : ipv4(server, client, 6, tcpSegment(sport, cport, payload, { seq: s, ack: c, flags }));
      this.add(ethernet(frame));
    };
    seg(true, new Uint8Array(), 0x02);
    c++;
    seg(false, new Uint8Array(), 0x12);
    s++;
    seg(true, new Uint8Array(), 0x10);
    for (const x of segments) {
      if (x.wait) this.t += x.wait;
      seg(x.fromClient, x.bytes, 0x18);
      if (x.fromClient) c += x.bytes.length; else s += x.bytes.length;
    }
    seg(true, new Uint8Array(), 0x11);
    c++;
    seg(false, new Uint8Array(), 0x11);
    return this;
  }

  wait(seconds: number): this {
    this.t += seconds;
    return this;
  }

  bytes(): Uint8Array {
    return pcapFile(1, this.records);
  }
}
