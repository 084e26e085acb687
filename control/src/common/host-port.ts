// The one way Egret reads and writes an endpoint: "host:port", with an IPv6 host in brackets
// ("[fd00::1]:9090"). Every flag, file field and address in the code base goes through here, so
// they all accept and reject the same texts. No Egret dependencies (host/ uses it too).

export interface HostPort { host: string; port: number }

export interface HostPortRules {
  /** ":9090" means every address; the host is then `emptyHost` (default "0.0.0.0"). */
  allowEmptyHost?: boolean;
  emptyHost?: string;
  /** Port 0 = any free port (listen addresses only). */
  allowPortZero?: boolean;
}

/** A text that is not host:port; the message names what was being read and gives an example. */
export class HostPortError extends Error {}

const BRACKETED = /^\[([^\]\s/]*)\]:(\d{1,5})$/;
const PLAIN = /^([^:[\]\s/]*):(\d{1,5})$/;

/** The endpoint, or undefined when `text` is not host:port under `rules`. */
export function tryParseHostPort(text: string, rules: HostPortRules = {}): HostPort | undefined {
  const bracketed = BRACKETED.exec(text);
  const m = bracketed ?? PLAIN.exec(text);
  if (!m) return undefined;
  const host = m[1]!;
  const port = Number(m[2]);
  if (bracketed && !host.includes(":")) return undefined; // brackets are for IPv6 only
  if (port > 65535 || (port === 0 && !rules.allowPortZero)) return undefined;
  if (host === "") return rules.allowEmptyHost ? { host: rules.emptyHost ?? "0.0.0.0", port } : undefined;
  return { host, port };
}

/** The endpoint; throws HostPortError naming `what` (e.g. "--grpc-listen") when it is not one. */
export function parseHostPort(text: string, what: string, rules: HostPortRules = {}): HostPort {
  const r = tryParseHostPort(text, rules);
  if (r) return r;
  const range = rules.allowPortZero ? "0–65535, 0 = any free port" : "1–65535";
  const empty = rules.allowEmptyHost ? "; :PORT = every address" : "";
  throw new HostPortError(`${what}: ${JSON.stringify(text)} is not host:port (e.g. egret-control:9090 or [fd00::1]:9090; port ${range}${empty})`);
}

/** "host:port", bracketing an IPv6 host. */
export function formatHostPort(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}
