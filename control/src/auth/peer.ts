// The address a gRPC call comes from, as the canonical IP text the pod registry uses.
import { isIP } from "node:net";
import { canonicalIp } from "../control/pods.js";

/**
 * grpc-js `call.getPeer()` → canonical IP ("198.18.1.10", "2001:db8::1"); undefined when it is not
 * an IP peer (a Unix socket, "unknown"). grpc-js writes `${socket.remoteAddress}:${remotePort}`
 * unbracketed ("198.18.1.10:41234", "::ffff:198.18.1.10:41234", "2001:db8::1:41234"), so the
 * last `:PORT` is always the port when it leaves an IP; "[2001:db8::1]:41234" is accepted too.
 * IPv4-mapped IPv6 peers (dual-stack listeners) become IPv4.
 */
export function peerIp(peer: string): string | undefined {
  let host = peer;
  const bracket = /^\[([^\]]+)\](?::\d+)?$/.exec(peer);
  const port = /^(.*):\d+$/.exec(peer);
  if (bracket) host = bracket[1]!;
  else if (port && isIP(stripMapped(port[1]!.replace(/^ipv[46]:/, ""))) !== 0) host = port[1]!;
  host = stripMapped(host.replace(/^ipv[46]:/, ""));
  return isIP(host) === 0 ? undefined : canonicalIp(host);
}

function stripMapped(host: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(host);
  return mapped ? mapped[1]! : host;
}

/** True when every address a listen spec binds is loopback ("127.0.0.1:9090", "[::1]:9090", "localhost:9090"). */
export function isLoopbackListen(host: string): boolean {
  if (host === "localhost") return true;
  const ip = canonicalIp(host);
  if (ip === undefined) return false;
  return ip.startsWith("127.") || ip === "::1";
}
