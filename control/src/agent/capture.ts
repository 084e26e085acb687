// Live capture with libpcap through the `cap` npm package: one handle per selected interface (or the
// `any` device), each with a kernel BPF filter for DNS over UDP and TCP, so only DNS ever crosses
// into user space. Interfaces matching the patterns are re-scanned periodically: pods come and go.
//
// `cap` exposes neither packet timestamps nor pcap_stats: the receive time (Date.now) stamps a
// frame, and kernel drops are read from the packet sockets' sk_drops via `ss` (see readSocketDrops),
// which does not include ring overflows (tp_drops). `cap` also fixes the snap length at 65535 and
// sets immediate mode, so libpcap uses a TPACKET_V2 ring of 64 KiB slots: a buffer of N MiB holds
// only 16*N packets, and bursts longer than that while the event loop is busy are lost.
import { execFile } from "node:child_process";
import { readdirSync } from "node:fs";
import { createRequire } from "node:module";
import { LinkType, PACKET_OUTGOING } from "../pcap/index.js";
import type { Logger } from "../common/log.js";

export interface Frame {
  linkType: number;
  data: Uint8Array;
  iface: string;
  /** Receive time, ms since the epoch. */
  time: number;
  /** The frame was longer than the capture buffer (it is cut). */
  truncated: boolean;
}

export interface CaptureOptions {
  /** Interface names or glob patterns ("veth*", "cali*"), or ["any"]. */
  interfaces: readonly string[];
  /** BPF filter (pcap-filter(7)). */
  filter: string;
  /** Kernel capture buffer per handle, bytes. */
  bufferBytes: number;
  rescanMs: number;
  log: Logger;
  onFrame(frame: Frame): void;
}

interface CapHandle {
  open(device: string, filter: string, bufSize: number, buffer: Buffer): string;
  close(): void;
  on(event: "packet", cb: (nbytes: number, truncated: boolean) => void): void;
  removeAllListeners(): void;
}

interface CapModule {
  Cap: { new (): CapHandle; deviceList(): { name: string }[] };
}

let capModule: CapModule | undefined;

/** Loads `cap` (an optional native dependency), failing with what to do. */
export function loadCap(): CapModule {
  if (capModule) return capModule;
  try {
    capModule = createRequire(import.meta.url)("cap") as CapModule;
  } catch (err) {
    throw new Error(`libpcap capture needs the npm package "cap" built against libpcap-dev (apt-get install libpcap-dev; npm ci): ${(err as Error).message}`);
  }
  return capModule;
}

const LINK_TYPES: Record<string, number> = {
  ETHERNET: LinkType.ETHERNET,
  LINKTYPE_LINUX_SLL: LinkType.LINUX_SLL,
  RAW: LinkType.RAW,
  NULL: LinkType.NULL,
};

/**
 * The kernel BPF filter for DNS over UDP and TCP on the given server ports. Answers (from a DNS
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
  try {
    return readdirSync("/sys/class/net");
  } catch {
    return loadCap().Cap.deviceList().map((d) => d.name);
  }
}

export function selectInterfaces(patterns: readonly string[], available = listInterfaces()): string[] {
  if (patterns.includes("any")) return ["any"];
  const res = patterns.map(globToRegExp);
  return available.filter((name) => res.some((re) => re.test(name))).sort();
}

interface Open {
  cap: CapHandle;
  buffer: Buffer;
  linkType: number;
}

export class LiveCapture {
  private readonly handles = new Map<string, Open>();
  private timer: NodeJS.Timeout | undefined;
  /** Interfaces that failed to open, with the error (reported by /healthz). */
  readonly failures = new Map<string, string>();
  frames = 0;
  truncatedFrames = 0;

  constructor(private readonly opts: CaptureOptions) {}

  /**
   * Opens every selected interface. Throws when interfaces matched but none could be opened (no
   * CAP_NET_RAW, bad filter). Patterns matching nothing yet are fine: a node may have no pods.
   */
  start(): void {
    loadCap();
    this.rescan();
    if (this.handles.size === 0 && this.failures.size > 0) {
      const why = [...this.failures].map(([i, e]) => `${i}: ${e}`).join("; ");
      throw new Error(`cannot capture on ${this.opts.interfaces.join(", ")}: ${why}`);
    }
    if (!this.opts.interfaces.includes("any")) {
      this.timer = setInterval(() => this.rescan(), this.opts.rescanMs);
      this.timer.unref();
    }
  }

  get interfaces(): string[] {
    return [...this.handles.keys()];
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    for (const name of [...this.handles.keys()]) this.closeHandle(name);
  }

  /** Attaches to new matching interfaces and detaches from vanished ones. */
  rescan(): void {
    const wanted = new Set(selectInterfaces(this.opts.interfaces));
    for (const name of [...this.handles.keys()]) if (!wanted.has(name)) this.closeHandle(name);
    for (const name of [...this.failures.keys()]) if (!wanted.has(name)) this.failures.delete(name);
    for (const name of wanted) if (!this.handles.has(name)) this.openHandle(name);
  }

  private openHandle(name: string): void {
    const { Cap } = loadCap();
    const cap = new Cap();
    const buffer = Buffer.alloc(65_536);
    let linkName: string;
    try {
      linkName = cap.open(name, this.opts.filter, this.opts.bufferBytes, buffer);
    } catch (err) {
      this.failures.set(name, (err as Error).message);
      this.opts.log.warn({ iface: name, err: (err as Error).message }, "cannot capture on interface");
      return;
    }
    const linkType = LINK_TYPES[linkName];
    if (linkType === undefined) {
      cap.close();
      this.failures.set(name, `unsupported link type ${linkName}`);
      return;
    }
    this.failures.delete(name);
    const open: Open = { cap, buffer, linkType };
    cap.on("packet", (nbytes, truncated) => {
      this.frames++;
      if (truncated) this.truncatedFrames++;
      // `buffer` is reused for the next packet: consumers must not keep views of it.
      this.opts.onFrame({ linkType, data: buffer.subarray(0, nbytes), iface: name, time: Date.now(), truncated });
    });
    this.handles.set(name, open);
    this.opts.log.info({ iface: name, linkType: linkName }, "capturing");
  }

  private closeHandle(name: string): void {
    const h = this.handles.get(name);
    if (!h) return;
    this.handles.delete(name);
    h.cap.removeAllListeners();
    try {
      h.cap.close();
    } catch {
      // already gone with its interface
    }
    this.opts.log.info({ iface: name }, "stopped capturing");
  }
}

/**
 * Kernel drops of this process's packet sockets (sum of sk_drops), from `ss -0 -e -m -p`; undefined
 * when `ss` is unavailable. libpcap's own counters are not exposed by `cap`.
 */
export function readSocketDrops(pid = process.pid): Promise<number | undefined> {
  return new Promise((resolve) => {
    execFile("ss", ["-0", "-a", "-e", "-m", "-p", "-n"], { timeout: 5000 }, (err, stdout) => {
      if (err) return resolve(undefined);
      let drops = 0;
      let mine = false;
      for (const line of stdout.split("\n")) {
        if (/^\S/.test(line)) mine = line.includes(`pid=${pid},`);
        const m = /skmem:\([^)]*\bd(\d+)\)/.exec(line);
        if (mine && m) drops += Number(m[1]);
      }
      resolve(drops);
    });
  });
}
