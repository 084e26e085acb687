// Ground truth for the shared corpus (../shared/corpus/{ndpi,extra_l4}/index.json), computed per
// corpus/README.md: nDPI names map to Egret labels; the pcap's intended_protocol_hint wins where
// present; only content-based ("DPI…") nDPI verdicts count as truth for nDPI labels.
import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

export const CORPUS = fileURLToPath(new URL("../../../../../../shared/corpus/", import.meta.url));
export const corpusAvailable = existsSync(CORPUS + "ndpi/index.json");

export const IN_SCOPE = new Set([
  "tls", "http", "http2", "postgresql", "mysql", "redis", "mongodb", "ssh", "kafka", "amqp", "mqtt", "memcached",
  "ldap", "dns", "cassandra", "smtp", "imap", "pop3", "ftp",
]);

const NDPI_TO_LABEL: Record<string, string> = {
  TLS: "tls", SMTPS: "tls", IMAPS: "tls", POPS: "tls", DoH_DoT: "tls", HTTP: "http", HTTP_Connect: "http",
  HTTP_Proxy: "http", HTTP2: "http2", PostgreSQL: "postgresql", MySQL: "mysql", RESP: "redis", Redis: "redis",
  MongoDB: "mongodb", SSH: "ssh", SMTP: "smtp", IMAP: "imap", POP3: "pop3", AMQP: "amqp", MQTT: "mqtt",
  Kafka: "kafka", LDAP: "ldap", Memcached: "memcached", Cassandra: "cassandra", DNS: "dns", FTP_CONTROL: "ftp",
};

/** nDPI "Master.App" → label, or "other" for a protocol outside the set. */
export function labelOfNdpi(name: string): string {
  const [master, app] = name.split(".");
  return NDPI_TO_LABEL[master!] ?? (app ? NDPI_TO_LABEL[app] : undefined) ?? (name === "Unknown" ? "unknown" : "other");
}

/**
 * The protocol a pcap's hint says its traffic is: the first protocol word of the hint decides,
 * except where the hint says the first bytes are another protocol (tunnels, upgrades, STARTTLS
 * keeps the outer label). "other" for protocols outside the set.
 */
export function labelOfHint(hint: string): string {
  const h = hint.toLowerCase();
  if (/^ssh tunnelled over websocket/.test(h) || /^websocket/.test(h)) return "http";
  if (/^(socks|rdp|smb)/.test(h)) return "other";
  if (/^text that is almost resp/.test(h)) return "other";
  const words: [RegExp, string][] = [
    [/^http\b/, "http"], [/^imap\b/, "imap"], [/^pop3\b/, "pop3"], [/^smtp\b/, "smtp"], [/^ldap\b/, "ldap"],
    [/^mysql\b/, "mysql"], [/^postgresql\b/, "postgresql"], [/^redis\b/, "redis"], [/^ssh\b/, "ssh"],
    [/^(tls|sslv2)\b/, "tls"], [/^mqtt\b/, "mqtt"], [/^amqp\b/, "amqp"], [/^kafka\b/, "kafka"],
    [/^mongodb\b/, "mongodb"], [/^memcached\b/, "memcached"], [/^dns\b/, "dns"], [/^ftp\b/, "ftp"],
    [/^cassandra\b/, "cassandra"],
  ];
  for (const [re, label] of words) if (re.test(h)) return label;
  return "other";
}

export interface CorpusFlow {
  pcap: string;
  dir: string;
  client: string;
  server: string;
  ndpi: string;
  confidence: string;
  hint: string | undefined;
  /**
   * The label the detector must give when it gives one ("unknown"/"other": no in-scope label is
   * right); undefined when nothing trustworthy is known.
   */
  truth: string | undefined;
  /** Whether `truth` is content-based (DPI or the hint): then `unknown` counts as a miss. */
  required: boolean;
  hasPayload: boolean;
  /** nDPI's TLS SNI and ALPN offer (from the ClientHello), when it saw them. */
  sni: string | null;
  alpns: string[] | null;
}

interface IndexFlow {
  proto: string; client: string; server: string; ndpi: string; confidence: string; sni?: string | null; alpns?: string | null;
  c2s_bytes: number; s2c_bytes: number; first_c2s_payload_hex: string | null; first_s2c_payload_hex: string | null;
}
interface IndexEntry { pcap: string; flows: IndexFlow[]; intended_protocol_hint?: string }

export function loadCorpusFlows(): CorpusFlow[] {
  const out: CorpusFlow[] = [];
  for (const dir of ["ndpi", "extra_l4"]) {
    const index = JSON.parse(readFileSync(`${CORPUS}${dir}/index.json`, "utf8")) as IndexEntry[];
    for (const e of index) {
      for (const f of e.flows) {
        if (f.proto !== "TCP") continue;
        const hasPayload = f.first_c2s_payload_hex !== null || f.first_s2c_payload_hex !== null;
        const dpi = f.confidence.startsWith("DPI");
        let ndpiLabel = labelOfNdpi(f.ndpi);
        // STARTTLS keeps the outer label: nDPI's SMTPS/IMAPS/POPS for a plain-text greeting.
        const firstServer = f.first_s2c_payload_hex ?? "";
        const plainGreeting = firstServer !== "" && !firstServer.startsWith("16");
        if (plainGreeting && /^(SMTPS|IMAPS|POPS)/.test(f.ndpi)) ndpiLabel = f.ndpi.startsWith("SMTPS") ? "smtp" : f.ndpi.startsWith("IMAPS") ? "imap" : "pop3";
        // Protocols nDPI names that are carried in HTTP requests (the bytes are HTTP).
        if (/^(HTTP\.)?(SOAP)$/.test(f.ndpi)) ndpiLabel = "http-carried";
        let truth: string | undefined;
        let required = false;
        const hintLabel = e.intended_protocol_hint ? labelOfHint(e.intended_protocol_hint) : undefined;
        if (!hasPayload) truth = "unknown";
        else if (hintLabel !== undefined && (dpi || ndpiLabel === hintLabel)) {
          // The hint describes the pcap's subject: trust it for the flows nDPI analysed by content
          // or agrees with; side flows of another protocol keep their own truth.
          truth = hintLabel;
          required = dpi && hintLabel !== "other";
          // An in-scope hint that nDPI contradicts (by content) without the hint saying why: trust nDPI.
          if (dpi && hintLabel !== "other" && ndpiLabel !== hintLabel && IN_SCOPE.has(ndpiLabel) && !hintOverrides(e.intended_protocol_hint!)) truth = ndpiLabel;
        } else if (dpi) {
          truth = ndpiLabel === "http-carried" ? undefined : ndpiLabel;
          required = truth !== undefined && IN_SCOPE.has(truth);
        }
        out.push({ pcap: e.pcap, dir, client: f.client, server: f.server, ndpi: f.ndpi, confidence: f.confidence, hint: e.intended_protocol_hint, truth, required, hasPayload,
          sni: f.sni ? f.sni : null, alpns: f.alpns ? f.alpns.split(/[;,]/) : null });
      }
    }
  }
  return out;
}

/** Hints that knowingly correct nDPI (README caveats: STARTTLS, Redis seen as NATS/Memcached). */
function hintOverrides(hint: string): boolean {
  return /starttls|stls|redis|websocket|upgrade|connect/i.test(hint);
}
