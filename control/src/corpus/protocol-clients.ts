// The recorded corpus's clients for the protocols the scenario steps do not cover: the Debian
// client programs of SSH, SMTP (plain and STARTTLS), LDAP (plain and StartTLS), MQTT 3.1.1 and 5,
// AMQP 0-9-1 and memcached (text and binary), each run once inside the recording pod. Each one
// resolves its server's name itself, and succeeds only if the real server answered.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { run, type RunResult } from "../mesh/exec.js";
import { findProgram } from "../mesh/services/programs.js";
import { amqpUrl, LDAP_ROOT_DN, LDAP_ROOT_PASSWORD, serviceCertPath, sshClientKeyPath } from "../mesh/services/index.js";
import type { WorldService } from "../mesh/world.js";

const TIMEOUT_MS = 30_000;
const MARKER = "egret-mesh-ok";

/** One client run: the protocol its program speaks (the truth label), and how to run it. */
export interface ProtocolClient {
  /** Program name as recorded in truth.json. */
  client: string;
  /** The label the detector must give: what this program speaks on the wire first. */
  protocol: string;
  /** What makes it special among the connections to its protocol ("STARTTLS", "MQTT 5", …). */
  variant: string;
  /** The DNS name the client connects to (a record of the corpus world). */
  to: string;
  /** The world service that answers it. */
  service: string;
  run(env: ProtocolClientEnv, svc: WorldService): Promise<ProtocolClientResult>;
}

export interface ProtocolClientEnv {
  netns: string;
  /** The mesh's scratch directory (service keys and certificates). */
  workDir: string;
}

export interface ProtocolClientResult {
  ok: boolean;
  command: string;
  output: string;
}

function inPod(env: ProtocolClientEnv, cmd: string, args: string[], extra: { input?: string; env?: NodeJS.ProcessEnv } = {}): Promise<RunResult> {
  return run("ip", ["netns", "exec", env.netns, cmd, ...args], { timeoutMs: TIMEOUT_MS, input: extra.input ?? "", env: { ...process.env, ...extra.env } });
}

function result(r: RunResult, ok: (r: RunResult) => boolean): ProtocolClientResult {
  return { ok: ok(r), command: r.command, output: (r.stdout + r.stderr).trim().slice(-800) };
}

const exitedZero = (r: RunResult) => r.code === 0;

function ssh(to: string): ProtocolClient {
  return {
    client: "ssh", protocol: "ssh", variant: "public-key login, one command", to, service: "ssh",
    run: async (env, svc) => {
      const r = await inPod(env, findProgram("ssh", "openssh-client"), [
        "-F", "/dev/null", "-i", sshClientKeyPath(env, svc), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
        "-o", "UserKnownHostsFile=/dev/null", "-o", "ConnectTimeout=10", "-p", String(svc.port), `root@${to}`, "echo", MARKER,
      ]);
      return result(r, (x) => x.code === 0 && x.stdout.includes(MARKER));
    },
  };
}

function smtp(to: string, starttls: boolean): ProtocolClient {
  return {
    client: "curl", protocol: "smtp", variant: starttls ? "STARTTLS (--ssl-reqd)" : "plain", to, service: "mail",
    run: async (env, svc) => {
      const message = `From: app@example.test\r\nTo: ops@example.test\r\nSubject: ${MARKER}\r\n\r\n${MARKER}\r\n`;
      const args = ["-sS", "--max-time", "15", `smtp://${to}:${svc.port}`, "--mail-from", "app@example.test", "--mail-rcpt", "ops@example.test", "-T", "-"];
      if (starttls) args.push("--ssl-reqd", "--cacert", serviceCertPath(env, svc));
      return result(await inPod(env, findProgram("curl", "curl"), args, { input: message }), exitedZero);
    },
  };
}

function ldap(to: string, starttls: boolean): ProtocolClient {
  return {
    client: starttls ? "ldapwhoami" : "ldapsearch", protocol: "ldap", variant: starttls ? "StartTLS (-ZZ), simple bind" : "anonymous search of the root DSE", to, service: "ldap",
    run: async (env, svc) => {
      const url = `ldap://${to}:${svc.port}`;
      if (!starttls) {
        const r = await inPod(env, findProgram("ldapsearch", "ldap-utils"), ["-x", "-H", url, "-o", "nettimeout=10", "-b", "", "-s", "base", "namingContexts"]);
        return result(r, (x) => x.code === 0 && /namingContexts: dc=example,dc=test/.test(x.stdout));
      }
      const r = await inPod(env, findProgram("ldapwhoami", "ldap-utils"), ["-x", "-ZZ", "-H", url, "-o", "nettimeout=10", "-D", LDAP_ROOT_DN, "-w", LDAP_ROOT_PASSWORD], {
        env: { LDAPTLS_CACERT: serviceCertPath(env, svc), LDAPTLS_REQCERT: "demand" },
      });
      return result(r, (x) => x.code === 0 && x.stdout.includes(`dn:${LDAP_ROOT_DN}`));
    },
  };
}

function mqtt(to: string, version: "mqttv311" | "mqttv5"): ProtocolClient {
  return {
    client: "mosquitto_pub", protocol: "mqtt", variant: version === "mqttv5" ? "MQTT 5" : "MQTT 3.1.1", to, service: "mqtt",
    run: async (env, svc) => {
      const r = await inPod(env, findProgram("mosquitto_pub", "mosquitto-clients"), ["-V", version, "-h", to, "-p", String(svc.port), "-t", "egret/mesh", "-m", MARKER, "-q", "1", "-d"]);
      return result(r, (x) => x.code === 0 && /received PUBACK/.test(x.stdout));
    },
  };
}

function amqp(to: string): ProtocolClient {
  return {
    client: "amqp-publish", protocol: "amqp", variant: "AMQP 0-9-1 publish", to, service: "amqp",
    // Published to the default exchange: one connection, and the broker confirms nothing is
    // wrong by closing the channel cleanly (amqp-publish exits non-zero otherwise).
    run: async (env, svc) => result(await inPod(env, findProgram("amqp-publish", "amqp-tools"), ["-u", amqpUrl(to, svc.port), "-r", "egret", "-b", MARKER]), exitedZero),
  };
}

function memcached(to: string, binary: boolean): ProtocolClient {
  return {
    client: binary ? "memccat" : "memccp", protocol: "memcached", variant: binary ? "binary protocol get" : "text protocol set", to, service: "memcached",
    run: async (env, svc) => {
      const servers = `--servers=${to}:${svc.port}`;
      if (!binary) {
        // memccp stores a file under its base name: the key is the file name.
        const file = join(env.workDir, "egret-corpus-key");
        writeFileSync(file, `${MARKER}\n`);
        return result(await inPod(env, findProgram("memccp", "libmemcached-tools"), [servers, file]), exitedZero);
      }
      const r = await inPod(env, findProgram("memccat", "libmemcached-tools"), [servers, "--binary", "egret-corpus-key"]);
      return result(r, (x) => x.code === 0 && x.stdout.includes(MARKER));
    },
  };
}

/**
 * In order: the memcached binary get reads the key the text set stored. Each variant of a
 * protocol goes to a name of its own, so every connection has its own server address.
 */
export function protocolClients(): ProtocolClient[] {
  return [
    ssh("ssh.example.test"),
    smtp("mail.example.test", false),
    smtp("submission.example.test", true),
    ldap("ldap.example.test", false),
    ldap("directory.example.test", true),
    mqtt("mqtt.example.test", "mqttv311"),
    mqtt("telemetry.example.test", "mqttv5"),
    amqp("amqp.example.test"),
    memcached("memcached.example.test", false),
    memcached("sessions.example.test", true),
  ];
}
