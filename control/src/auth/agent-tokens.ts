// File-mode agent credentials (`egret control --agent-token-file FILE`): one agent per line,
// `TOKEN NODE-NAME`, blank lines and `#` comments allowed. A token maps to exactly one node; the
// file is re-read when it changes (checked on each authentication, which happens once per
// stream), and a broken edit keeps the previous tokens in force.
import { readFileSync } from "node:fs";
import type { Logger } from "../common/log.js";
import { bearerToken, type AgentAuthenticator, type AgentIdentity, AuthFailure } from "./agent-auth.js";
import { ReloadingFile, tokenDigest as digestOf } from "./reloading-file.js";

/** Kubernetes node names: DNS subdomains. */
const NODE_NAME = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;

export class TokenFileError extends Error {}

/** Parses the token file text; throws TokenFileError naming file:line and what to do. */
export function parseAgentTokens(text: string, file: string): Map<string, string> {
  const byDigest = new Map<string, string>();
  const lineOfDigest = new Map<string, number>();
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) return;
    const fields = line.split(/\s+/);
    const at = `${file}:${i + 1}`;
    if (fields.length !== 2) {
      throw new TokenFileError(`${at}: expected "TOKEN NODE-NAME" (two fields separated by spaces), got ${fields.length} field(s)`);
    }
    const [token, node] = fields as [string, string];
    if (!NODE_NAME.test(node)) throw new TokenFileError(`${at}: "${node}" is not a node name (lowercase DNS subdomain, as spec.nodeName)`);
    const digest = digestOf(token);
    const earlier = lineOfDigest.get(digest);
    if (earlier !== undefined) {
      throw new TokenFileError(`${at}: this token is also on line ${earlier}; give every agent its own token (one token names one node)`);
    }
    lineOfDigest.set(digest, i + 1);
    byDigest.set(digest, node);
  });
  return byDigest;
}

export class FileAgentAuthenticator implements AgentAuthenticator {
  private readonly tokens: ReloadingFile<Map<string, string>>;

  /** Reads the file now; throws TokenFileError when it cannot be used. */
  constructor(file: string, log: Logger) {
    this.tokens = new ReloadingFile(file, readAgentTokens, (outcome) => {
      if ("value" in outcome) log.info({ file, agents: outcome.value.size }, "agent token file reloaded");
      else log.error({ err: outcome.error.message }, "agent token file not reloaded; the previous tokens stay in force");
    });
    if (this.tokens.value.size === 0) log.warn({ file }, "the agent token file lists no agent: every Observe will be refused");
  }

  get agentCount(): number {
    return this.tokens.value.size;
  }

  async authenticate(authorization: string | undefined): Promise<AgentIdentity> {
    const node = this.tokens.value.get(digestOf(bearerToken(authorization)));
    if (node === undefined) throw new AuthFailure("invalid", "the bearer token is not in the agent token file");
    return { node, subject: `token-file:${node}` };
  }
}

function readAgentTokens(file: string): Map<string, string> {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new TokenFileError(`${file}: cannot read the agent token file (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  return parseAgentTokens(text, file);
}

/** Tokens given in code (benchmarks, embedded services): token → node. */
export class StaticAgentTokens implements AgentAuthenticator {
  private readonly tokens = new Map<string, string>();

  constructor(tokens: Record<string, string>) {
    for (const [token, node] of Object.entries(tokens)) this.tokens.set(digestOf(token), node);
  }

  async authenticate(authorization: string | undefined): Promise<AgentIdentity> {
    const node = this.tokens.get(digestOf(bearerToken(authorization)));
    if (node === undefined) throw new AuthFailure("invalid", "unknown bearer token");
    return { node, subject: `static:${node}` };
  }
}
