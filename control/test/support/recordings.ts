// The project's own recorded captures (corpus/): every folder holding a capture.pcap, with the pods
// file that says which addresses are pods. A recording of several pods (the demo, the mesh
// scenarios) has its pods.yaml; a one-pod recording (corpus/protocols) names its pod's address as
// truth.json's podIp, and gets a pods file of one pod here. Tests iterate over all of them, so a new
// recording is covered without touching the tests.
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { decodeFrame, readAllPackets, type CapturedPacket } from "../../src/pcap/index.js";
import { pcapFile } from "../unit/pcap/builders.js";

export const CORPUS = fileURLToPath(new URL("../../../../corpus/", import.meta.url));

export interface Recording {
  /** Folder relative to corpus/, e.g. "demo" or "scenarios/hard-coded-ip". */
  name: string;
  capture: Uint8Array;
  /** The recording's pods.yaml, or undefined when podsYaml() builds one from truth.json. */
  podsFile: string | undefined;
  /** truth.json's podIp (one-pod recordings). */
  podIp: string | undefined;
}

/** Every recording under corpus/, sorted by folder. */
export function recordings(root = CORPUS): Recording[] {
  const out: Recording[] = [];
  const walk = (dir: string) => {
    const entries = readdirSync(dir).sort();
    if (entries.includes("capture.pcap")) {
      const truth = join(dir, "truth.json");
      const podIp = existsSync(truth) ? (JSON.parse(readFileSync(truth, "utf8")) as { podIp?: unknown }).podIp : undefined;
      out.push({
        name: relative(root, dir),
        capture: readFileSync(join(dir, "capture.pcap")),
        podsFile: existsSync(join(dir, "pods.yaml")) ? join(dir, "pods.yaml") : undefined,
        podIp: typeof podIp === "string" ? podIp : undefined,
      });
    }
    for (const e of entries) if (statSync(join(dir, e)).isDirectory()) walk(join(dir, e));
  };
  walk(root);
  return out;
}

/** The recording's pods file, written into `dir` when it has none of its own; throws when neither exists. */
export function podsFileFor(r: Recording, dir: string): string {
  if (r.podsFile) return r.podsFile;
  if (!r.podIp) throw new Error(`corpus/${r.name}: no pods.yaml and no podIp in truth.json — the recorder must say which addresses are pods`);
  const file = join(dir, "pods.yaml");
  writeFileSync(file, `pods:\n  - {name: client, namespace: corpus, ip: ${r.podIp}, labels: {app: corpus-client}}\n`);
  return file;
}

/** The TCP connections of a capture by first packet ("client>server", client = the SYN's sender). */
export function tcpConnections(capture: Uint8Array): { key: string; client: string; server: string; time: number }[] {
  const seen = new Map<string, { key: string; client: string; server: string; time: number }>();
  for (const p of readAllPackets(capture).packets) {
    const d = decodeFrame(p.linkType, p.data);
    if (!d || d.proto !== "tcp" || !d.tcp) continue;
    const a = endpoint(d.src, d.srcPort), b = endpoint(d.dst, d.dstPort);
    if (seen.has(`${a}>${b}`) || seen.has(`${b}>${a}`)) continue;
    // The first packet seen of a connection is its SYN (or, cut, whatever came first: then the sender).
    const syn = (d.tcp.flags & 0x12) === 0x02;
    const fromServer = (d.tcp.flags & 0x12) === 0x12;
    const [client, server] = syn || !fromServer ? [a, b] : [b, a];
    seen.set(`${client}>${server}`, { key: `${client}>${server}`, client, server, time: p.time });
  }
  return [...seen.values()];
}

/** The capture without the packets of the TCP connections whose key `drop` returns true for. */
export function withoutConnections(capture: Uint8Array, drop: (key: string) => boolean): Uint8Array {
  const packets = readAllPackets(capture).packets;
  const linkTypes = new Set(packets.map((p) => p.linkType));
  if (linkTypes.size > 1) throw new Error(`a capture of several link types (${[...linkTypes].join(", ")}) cannot be split into one pcap`);
  const kept = packets.filter((p: CapturedPacket) => {
    const d = decodeFrame(p.linkType, p.data);
    if (!d || d.proto !== "tcp") return true;
    const a = endpoint(d.src, d.srcPort), b = endpoint(d.dst, d.dstPort);
    return !drop(`${a}>${b}`) && !drop(`${b}>${a}`);
  });
  return pcapFile(packets[0]?.linkType ?? 1, kept.map((p) => ({ time: p.time, data: p.data, origLen: p.origLen })));
}

function endpoint(ip: string, port: number): string {
  return ip.includes(":") ? `[${ip}]:${port}` : `${ip}:${port}`;
}
