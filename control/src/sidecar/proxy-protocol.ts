// PROXY protocol v1 header ("PROXY TCP4 src dst sport dport\r\n", at most 107 bytes): lets a test
// or a load balancer tell the sidecar the original destination without iptables.

export const PROXY_V1_MAX = 107;

export type ProxyHeader = { source: string; destination: string; rest: Buffer } | { error: string } | undefined;

/** undefined = need more bytes; { error } = not a valid v1 header (close the connection). */
export function parseProxyV1(buf: Buffer): ProxyHeader {
  const end = buf.indexOf("\r\n");
  if (end < 0) return buf.length >= PROXY_V1_MAX ? { error: "PROXY header longer than 107 bytes" } : undefined;
  if (end + 2 > PROXY_V1_MAX) return { error: "PROXY header longer than 107 bytes" };
  const line = buf.subarray(0, end).toString("latin1");
  const m = /^PROXY (TCP4|TCP6) (\S+) (\S+) (\d{1,5}) (\d{1,5})$/.exec(line);
  if (!m) return { error: `not a PROXY v1 header: ${JSON.stringify(line.slice(0, 60))}` };
  const [, proto, src, dst, sport, dport] = m;
  if (Number(sport) > 65535 || Number(dport) > 65535) return { error: "PROXY header port out of range" };
  const fmt = (ip: string, port: string): string => (proto === "TCP6" ? `[${ip}]:${port}` : `${ip}:${port}`);
  return { source: fmt(src, sport), destination: fmt(dst, dport), rest: buf.subarray(end + 2) };
}
