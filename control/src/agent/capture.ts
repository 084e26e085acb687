// Live capture: one AF_PACKET socket with a TPACKET_V3 ring per selected interface (or one for
// every interface, "any"), each with a kernel BPF filter (bpf.ts) for DNS over UDP and TCP and the
// IP fragments that may carry it, so only those ever cross into user space. Interfaces matching
// the patterns are re-scanned periodically: pods come and go.
//
// Frames start at the IP header and carry the kernel's packet type and receive timestamp. A native
// reader thread per socket empties the kernel ring into a bounded queue (packet_ring.cc), so the
// ring keeps draining while JavaScript is busy. Kernel counters (accepted, dropped for lack of
// ring space, ring-full events) come from getsockopt(PACKET_STATISTICS), the queue's own drops
// from the addon; all are summed over every socket this capture ever opened.
import { readdirSync } from "node:fs";
import { LinkType, PACKET_OUTGOING } from "../pcap/index.js";
import type { Logger } from "../common/log.js";
import { assemble, dnsSocketFilter } from "./bpf.js";
import { interfaceName, loadPacketRing, PacketRing, setCaptureQueueLimit, type RingStats } from "./packet-ring.js";

export interface Frame {
  linkType: number;
  data: Uint8Array;
  iface: string;
  /** Receive time, ms since the epoch. */
  time: number;
  /** The frame was longer than the snap length (it is cut). */
  truncated: boolean;
  /** Kernel packet type (4 = PACKET_OUTGOING) when the capture states it (live capture does). */
  pktType?: number;
}

export interface CaptureOptions {
  /** Interface names or glob patterns ("veth*", "cali*"), or ["any"]. */
  interfaces: readonly string[];
  /** DNS server ports (the kernel filter, bpf.ts). */
  dnsPorts: readonly number[];
  /** Kernel capture ring per socket, bytes. */
  bufferBytes: number;
  /** Bytes kept of each frame. */
  snapLength?: number;
  /** Another kernel filter (assembled `struct sock_filter[]`) instead of the DNS one (bypass detection's). */
  socketFilter?: Buffer;
  /** Frames read from the rings but not yet processed, bytes, shared by every socket (default 64 MiB). */
  queueBytes?: number;
  rescanMs: number;
  log: Logger;
  onFrame(frame: Frame): void;
}

/** Enough for any DNS message over UDP (65,535) with its IP header, and a GSO TCP frame. */
export const DEFAULT_SNAP_LENGTH = 65_535 + 60;

/**
 * The same rules as the agent's kernel filter (bpf.ts), in pcap-filter(7) syntax, for tcpdump and
 * libpcap tools (the capture benchmark's baseline runs tcpdump with it): DNS over UDP and TCP on
 * the given server ports. Answers (from a DNS
 * port) only as the node sends them to the pod (`outbound`: PACKET_OUTGOING, the kernel's packet
 * type, which nothing inside a packet can change), so a frame a pod sends is never taken for an
 * answer whatever its addresses and ports say. The agent relies on this (frameTowardPod) for link
 * types that carry no packet type. A packet from a DNS port to a DNS port matches neither side.
 *
 * Queries are admitted in both directions on a pod's own interface: libpcap runs the filter of
 * the first frame(s) after it is set in user space, where the packet type cannot be read (the
 * frame is then rejected), and that first DNS frame is usually a new pod's first query. Queries
 * alone make no evidence, so their direction matters less. On the `any` device the cooked header
 * carries the packet type, readable in user space too, and queries must be `inbound` as well (the
 * node's forwarded copies of them are noise).
 */
export function dnsBpfFilter(ports: readonly number[], anyDevice = false): string {
  const src = ports.map((n) => `src port ${n}`).join(" or ");
  const dst = ports.map((n) => `dst port ${n}`).join(" or ");
  const queries = `(${dst}) and not (${src})`;
  return `(udp or tcp) and ((${anyDevice ? `inbound and ${queries}` : queries}) or (outbound and (${src}) and not (${dst})))`;
}

/**
 * Whether a frame captured under dnsBpfFilter travels toward a pod (an answer) rather than from it
 * (a query). A cooked link header (the `any` device) states the packet type: answers must be
 * outgoing, queries must not. On a pod's own interface the filter admitted answers only outbound,
 * so a frame from a DNS port is toward the pod. Returns null when a frame contradicts this (the
 * filter would not have admitted it): the caller drops it.
 */
export function frameTowardPod(pktType: number, srcPort: number, dstPort: number, ports: ReadonlySet<number>): boolean | null {
  const answer = ports.has(srcPort) && !ports.has(dstPort);
  const query = ports.has(dstPort) && !ports.has(srcPort);
  if (answer === query) return null;
  if (pktType < 0) return answer;
  return (pktType === PACKET_OUTGOING) === answer ? answer : null;
}

function globToRegExp(glob: string): RegExp {
  return new RegExp(`^${glob.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".")}$`);
}

/** Names of the node's network interfaces (including address-less veths). */
export function listInterfaces(): string[] {
  return readdirSync("/sys/class/net");
}

export function selectInterfaces(patterns: readonly string[], available = listInterfaces()): string[] {
  if (patterns.includes("any")) return ["any"];
  const res = patterns.map(globToRegExp);
  return available.filter((name) => res.some((re) => re.test(name))).sort();
}

export class LiveCapture {
  private readonly rings = new Map<string, PacketRing>();
  private timer: NodeJS.Timeout | undefined;
  /** Counters of sockets already closed (their interface vanished). */
  private readonly closedStats: RingStats = { packets: 0, drops: 0, freezes: 0, queueDrops: 0 };
  private readonly filter: Buffer;
  /** Interfaces that failed to open, with the error (reported by /healthz). */
  readonly failures = new Map<string, string>();
  frames = 0;
  truncatedFrames = 0;

  constructor(private readonly opts: CaptureOptions) {
    this.filter = opts.socketFilter ?? assemble(dnsSocketFilter(opts.dnsPorts, opts.snapLength ?? DEFAULT_SNAP_LENGTH));
  }

  /**
   * Opens every selected interface. Throws when interfaces matched but none could be opened (no
   * CAP_NET_RAW, addon missing). Patterns matching nothing yet are fine: a node may have no pods.
   */
  start(): void {
    loadPacketRing();
    if (this.opts.queueBytes !== undefined) setCaptureQueueLimit(this.opts.queueBytes);
    this.rescan();
    if (this.rings.size === 0 && this.failures.size > 0) {
      const why = [...this.failures].map(([i, e]) => `${i}: ${e}`).join("; ");
      throw new Error(`cannot capture on ${this.opts.interfaces.join(", ")}: ${why}`);
    }
    if (!this.opts.interfaces.includes("any")) {
      this.timer = setInterval(() => this.rescan(), this.opts.rescanMs);
      this.timer.unref();
    }
  }

  get interfaces(): string[] {
    return [...this.rings.keys()];
  }

  /** Kernel counters summed over every socket this capture opened. */
  kernelStats(): RingStats {
    const sum = { ...this.closedStats };
    for (const ring of this.rings.values()) {
      const s = ring.stats();
      sum.packets += s.packets;
      sum.drops += s.drops;
      sum.freezes += s.freezes;
      sum.queueDrops += s.queueDrops;
    }
    return sum;
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    for (const name of [...this.rings.keys()]) this.closeRing(name);
  }

  /** Attaches to new matching interfaces and detaches from vanished ones. */
  rescan(): void {
    const wanted = new Set(selectInterfaces(this.opts.interfaces));
    for (const name of [...this.rings.keys()]) if (!wanted.has(name)) this.closeRing(name);
    for (const name of [...this.failures.keys()]) if (!wanted.has(name)) this.failures.delete(name);
    for (const name of wanted) if (!this.rings.has(name)) this.openRing(name);
  }

  private openRing(name: string): void {
    const any = name === "any";
    let ring: PacketRing;
    try {
      ring = new PacketRing({ ifname: any ? "" : name, filter: this.filter, bufferBytes: this.opts.bufferBytes }, (f) => {
        this.frames++;
        const truncated = f.data.length < f.origLen;
        if (truncated) this.truncatedFrames++;
        // `data` is a view of a reused buffer: consumers must not keep it past this call.
        this.opts.onFrame({ linkType: LinkType.RAW, data: f.data, iface: any ? interfaceName(f.ifindex) : name, time: f.time, truncated, pktType: f.pktType });
      });
    } catch (err) {
      this.failures.set(name, (err as Error).message);
      this.opts.log.warn({ iface: name, err: (err as Error).message }, "cannot capture on interface");
      return;
    }
    this.failures.delete(name);
    this.rings.set(name, ring);
    this.opts.log.info({ iface: name, ringBytes: this.opts.bufferBytes }, "capturing");
  }

  private closeRing(name: string): void {
    const ring = this.rings.get(name);
    if (!ring) return;
    this.rings.delete(name);
    ring.close();
    const s = ring.stats();
    this.closedStats.packets += s.packets;
    this.closedStats.drops += s.drops;
    this.closedStats.freezes += s.freezes;
    this.closedStats.queueDrops += s.queueDrops;
    this.opts.log.info({ iface: name }, "stopped capturing");
  }
}
