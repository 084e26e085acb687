// Who an Observe stream speaks for. An AgentAuthenticator turns the stream's `authorization`
// metadata into the node the agent runs on (file mode: the token file; Kubernetes: TokenReview
// of a projected ServiceAccount token → bound pod → spec.nodeName). The gRPC edge maps failures to
// UNAUTHENTICATED; everything after authentication is bound to the returned node.

export interface AgentIdentity {
  /** The node whose pods this agent may report DNS evidence for. */
  node: string;
  /** Who authenticated (for logs): "token-file:NODE", "system:serviceaccount:NS:NAME", … */
  subject: string;
  /** When the credential expires (ms): the stream ends then, and the agent reconnects with its rotated token. */
  expiresAtMs?: number;
}

export interface AgentAuthenticator {
  /** `authorization` is the metadata value ("Bearer TOKEN"), undefined when absent. */
  authenticate(authorization: string | undefined): Promise<AgentIdentity>;
}

export type AuthFailureCause = "missing" | "malformed" | "invalid" | "expired" | "wrong_audience" | "forbidden" | "unavailable" | "not_configured";

/** Why a credential was refused; `reason` labels the metric, the message goes to the log. */
export class AuthFailure extends Error {
  constructor(readonly reason: AuthFailureCause, message: string) {
    super(message);
    this.name = "AuthFailure";
  }
}

/** "Bearer TOKEN" → TOKEN; throws AuthFailure (missing / malformed). */
export function bearerToken(authorization: string | undefined): string {
  if (authorization === undefined || authorization === "") throw new AuthFailure("missing", "no `authorization: Bearer TOKEN` metadata");
  const m = /^Bearer[ ]+(\S+)\s*$/i.exec(authorization);
  if (!m) throw new AuthFailure("malformed", "the authorization metadata is not `Bearer TOKEN`");
  return m[1]!;
}

/** File mode without --agent-token-file: every Observe is refused. */
export class NoAgentCredentials implements AgentAuthenticator {
  async authenticate(): Promise<AgentIdentity> {
    throw new AuthFailure("not_configured", "this control has no agent credentials (--agent-token-file FILE, or --kubernetes); start it with one, or with --insecure-agents for a lab");
  }
}

/**
 * `--insecure-agents`: any caller may deliver evidence for any pod. Only for labs: it re-opens the
 * hole issue #13 describes (a pod can forge its own DNS evidence).
 */
export class InsecureAgents implements AgentAuthenticator {
  async authenticate(): Promise<AgentIdentity> {
    return { node: INSECURE_ANY_NODE, subject: "insecure-agents" };
  }
}

/** The node of an unauthenticated agent under --insecure-agents: it speaks for every pod. */
export const INSECURE_ANY_NODE = "*";
