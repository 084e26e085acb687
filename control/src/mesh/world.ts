// The outside world of a mesh: cluster DNS, external services and the DNS records that name them
// (istio-tests/scenarios/world.yaml). Loaded and validated once; services and scenarios read it.
import { readFileSync } from "node:fs";
import { isIPv4, isIPv6 } from "node:net";
import { parseDocument } from "yaml";

export type ServiceKind = "postgresql" | "mariadb" | "redis" | "web" | "forward-proxy" | "ssh" | "smtp" | "ldap" | "mqtt" | "amqp" | "memcached";
export const SERVICE_KINDS: readonly ServiceKind[] = ["postgresql", "mariadb", "redis", "web", "forward-proxy", "ssh", "smtp", "ldap", "mqtt", "amqp", "memcached"];

export interface WorldService {
  name: string;
  kind: ServiceKind;
  addresses: string[];
  /** Main port; web serves 80 (HTTP) and 443 (HTTPS). */
  port: number;
}

export interface DnsRecord {
  name: string;
  ttl: number;
  type: "A" | "AAAA" | "CNAME";
  value: string;
}

export interface World {
  resolver: string;
  clusterCidrs: string[];
  services: WorldService[];
  records: DnsRecord[];
}

const DEFAULT_PORTS: Record<ServiceKind, number> = {
  postgresql: 5432, mariadb: 3306, redis: 6379, web: 443, "forward-proxy": 3128,
  ssh: 22, smtp: 25, ldap: 389, mqtt: 1883, amqp: 5672, memcached: 11211,
};

/** A mistake in world.yaml or a scenario file: names the file and the field, says what to do. */
export class MeshConfigError extends Error {
  constructor(readonly file: string, readonly path: string, message: string) {
    super(`${file}: ${path}: ${message}`);
  }
}

const NAME_RE = /^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

export function isDnsName(s: string, allowWildcard = false): boolean {
  if (s.length > 253 || !NAME_RE.test(s)) return false;
  return allowWildcard || !s.startsWith("*.");
}

export function loadWorld(file: string): World {
  const doc = parseDocument(readFileSync(file, "utf8"));
  if (doc.errors.length > 0) throw new MeshConfigError(file, "(yaml)", doc.errors[0]!.message);
  return parseWorld(doc.toJS() as unknown, file);
}

export function parseWorld(raw: unknown, file: string): World {
  const fail = (path: string, msg: string): never => { throw new MeshConfigError(file, path, msg); };
  if (!raw || typeof raw !== "object") fail("(top)", "expected a mapping with resolver, services and records");
  const o = raw as Record<string, unknown>;
  const resolver = o.resolver;
  if (typeof resolver !== "string" || !isIPv4(resolver)) fail("resolver", "must be the IPv4 address of the cluster DNS server, e.g. 198.19.0.53");
  const clusterCidrs = (o.clusterCidrs ?? ["198.18.0.0/16"]) as unknown;
  if (!Array.isArray(clusterCidrs) || !clusterCidrs.every((c) => typeof c === "string" && /^\d+\.\d+\.\d+\.\d+\/\d+$/.test(c))) {
    fail("clusterCidrs", "must be a list of IPv4 CIDRs such as 198.18.0.0/16");
  }
  if (!Array.isArray(o.services)) fail("services", "must be a list of {name, kind, addresses, port}");
  const services: WorldService[] = (o.services as unknown[]).map((s, i) => {
    const p = `services[${i}]`;
    if (!s || typeof s !== "object") fail(p, "must be a mapping");
    const so = s as Record<string, unknown>;
    if (typeof so.name !== "string" || !/^[a-z][a-z0-9-]*$/.test(so.name)) fail(`${p}.name`, "must be a lowercase identifier");
    if (!SERVICE_KINDS.includes(so.kind as ServiceKind)) fail(`${p}.kind`, `must be one of ${SERVICE_KINDS.join(", ")}`);
    const kind = so.kind as ServiceKind;
    if (!Array.isArray(so.addresses) || so.addresses.length === 0 || !so.addresses.every((a) => typeof a === "string" && isIPv4(a))) {
      fail(`${p}.addresses`, "must be a non-empty list of IPv4 addresses (inside 198.19.0.0/16)");
    }
    const port = so.port ?? DEFAULT_PORTS[kind];
    if (typeof port !== "number" || !Number.isInteger(port) || port < 1 || port > 65535) fail(`${p}.port`, "must be a TCP port (1-65535)");
    return { name: so.name as string, kind, addresses: so.addresses as string[], port: port as number };
  });
  if (!Array.isArray(o.records)) fail("records", 'must be a list of "<name> <ttl> <type> <value>" strings');
  const records: DnsRecord[] = (o.records as unknown[]).map((r, i) => {
    const p = `records[${i}]`;
    if (typeof r !== "string") return fail(p, 'must be a string "<name> <ttl> <type> <value>"');
    const parts = r.trim().split(/\s+/);
    if (parts.length !== 4) fail(p, `"${r}" must have four fields: <name> <ttl> <type> <value>`);
    const [name, ttlText, type, value] = parts as [string, string, string, string];
    const lname = name.toLowerCase().replace(/\.$/, "");
    if (!isDnsName(lname, true)) fail(p, `"${name}" is not a DNS name`);
    const ttl = Number(ttlText);
    if (!Number.isInteger(ttl) || ttl < 0 || ttl > 86400) fail(p, `TTL "${ttlText}" must be an integer number of seconds (0-86400)`);
    if (type !== "A" && type !== "AAAA" && type !== "CNAME") fail(p, `type "${type}" must be A, AAAA or CNAME`);
    if (type === "A" && !isIPv4(value)) fail(p, `"${value}" is not an IPv4 address`);
    if (type === "AAAA" && !isIPv6(value)) fail(p, `"${value}" is not an IPv6 address`);
    if (type === "CNAME" && !isDnsName(value.toLowerCase().replace(/\.$/, ""))) fail(p, `CNAME target "${value}" is not a DNS name`);
    return { name: lname, ttl, type: type as "A" | "AAAA" | "CNAME", value: type === "CNAME" ? value.toLowerCase().replace(/\.$/, "") : value };
  });
  return { resolver: resolver as string, clusterCidrs: clusterCidrs as string[], services, records };
}

/** Every address the outside namespace must answer on. */
export function outsideAddresses(world: World): string[] {
  return [...new Set([world.resolver, ...world.services.flatMap((s) => s.addresses)])];
}

/** The names (records, wildcards included) whose A record points at one of `addresses`. */
export function namesServedBy(world: World, addresses: readonly string[]): string[] {
  const direct = new Set(world.records.filter((r) => r.type === "A" && addresses.includes(r.value)).map((r) => r.name));
  for (const r of world.records) if (r.type === "CNAME" && direct.has(r.value)) direct.add(r.name);
  return [...direct].sort();
}

/** The zone file text for the DNS server: one root zone holding every record. */
export function zoneFile(world: World): string {
  const lines = [
    "$ORIGIN .",
    "@ 3600 IN SOA ns.test. hostmaster.test. 1 3600 600 86400 5",
    "@ 3600 IN NS ns.test.",
    `ns.test. 3600 IN A ${world.resolver}`,
    ...world.records.map((r) => `${r.name}. ${r.ttl} IN ${r.type} ${r.type === "CNAME" ? `${r.value}.` : r.value}`),
  ];
  return lines.join("\n") + "\n";
}
