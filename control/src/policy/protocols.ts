// Protocol labels a rule may name. Must equal the engine's list (filter/assembly/policy/protocols.ts)
// and the CRD's enum; a unit test checks all three agree.
export const PROTOCOL_LABELS: readonly string[] = [
  "unknown", "tls", "http", "http2", "postgresql", "mysql", "redis", "mongodb", "ssh", "kafka",
  "amqp", "mqtt", "memcached", "ldap", "dns", "cassandra", "smtp", "imap", "pop3", "ftp",
];

/** Common aliases people write, mapped to the label they mean (for "did you mean"). */
export const PROTOCOL_ALIASES: Readonly<Record<string, string>> = {
  postgres: "postgresql", pg: "postgresql", psql: "postgresql", mariadb: "mysql", https: "tls",
  ssl: "tls", h2: "http2", grpc: "http2", "http/1.1": "http", "http/2": "http2", mongo: "mongodb",
  rabbitmq: "amqp", ldaps: "tls", smtps: "tls", memcache: "memcached", cql: "cassandra",
};
