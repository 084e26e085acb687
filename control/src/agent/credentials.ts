// What the agent presents to control: a bearer token (`--token-file`: file mode's token, or the
// projected ServiceAccount token in Kubernetes) sent as gRPC metadata `authorization: Bearer
// TOKEN`, re-read on every (re)connect so a token the kubelet rotated is picked up; and, with
// `--ca-file`, TLS that verifies control's certificate.
import { readFileSync } from "node:fs";
import * as grpc from "@grpc/grpc-js";

export interface AgentCredentials {
  /** Metadata for one Observe stream (read fresh each time). */
  callMetadata(): grpc.Metadata;
  channel: grpc.ChannelCredentials;
  /**
   * With `serverName` (`--tls-server-name`): the name control's certificate must carry. Agents
   * dial each replica's IP (the headless Service), which no certificate names; every replica
   * serves one certificate for the control Service's name.
   */
  options: grpc.ClientOptions;
}

/** Reads the token file; throws naming the file when it is unreadable or empty. */
export function readToken(file: string): string {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new Error(`--token-file ${file}: cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  const token = text.trim();
  if (token === "" || /\s/.test(token)) throw new Error(`--token-file ${file}: expected one token (no spaces), found ${token === "" ? "nothing" : "several words"}`);
  return token;
}

export function agentCredentials(o: { tokenFile?: string; caFile?: string; serverName?: string }): AgentCredentials {
  if (o.serverName !== undefined && !o.caFile) throw new Error("--tls-server-name needs --ca-file (it names the certificate TLS verifies)");
  const channel = o.caFile ? grpc.credentials.createSsl(readCa(o.caFile)) : grpc.credentials.createInsecure();
  return {
    channel,
    options: o.serverName ? { "grpc.ssl_target_name_override": o.serverName, "grpc.default_authority": o.serverName } : {},
    callMetadata() {
      const md = new grpc.Metadata();
      if (o.tokenFile) md.set("authorization", `Bearer ${readToken(o.tokenFile)}`);
      return md;
    },
  };
}

function readCa(file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new Error(`--ca-file ${file}: cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
}
