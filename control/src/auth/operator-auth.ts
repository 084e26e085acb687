// Who may read per-pod evidence on control's HTTP port (/debug/names): the pods' DNS history is
// more sensitive than /metrics, and every pod can reach that port (istio-agent downloads the
// module there). Two ways in, both scoped:
// - a loopback peer: only a process inside control's own pod, i.e. `kubectl port-forward` or
//   `kubectl exec`, which Kubernetes RBAC already limits (pods/portforward, pods/exec on
//   egret-system) — every namespace;
// - `Authorization: Bearer TOKEN` with a token from `--operator-token-file` (lines
//   `TOKEN NAMESPACES [WHO]`, NAMESPACES = `*` or a comma list; `#` comments; re-read when the
//   file changes, a broken edit keeps the previous tokens) — only those namespaces.
// Anything else is refused: EGRET_OPERATOR_UNAUTHENTICATED (401) or EGRET_OPERATOR_FORBIDDEN (403).
import { readFileSync } from "node:fs";
import type { IncomingMessage } from "node:http";
import { canonicalIp } from "../control/pods.js";
import { ControlError } from "../control/errors.js";
import { ReloadingFile, tokenDigest as digestOf } from "./reloading-file.js";

export interface OperatorIdentity {
  who: string;
  /** "*" = every namespace. */
  namespaces: "*" | ReadonlySet<string>;
}

export interface OperatorAuth {
  /** The caller's identity when it may read `namespace`; throws ControlError otherwise. */
  authorize(req: IncomingMessage, namespace: string): OperatorIdentity;
}

const NAMESPACE = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

export class OperatorTokenFileError extends Error {}

/** Parses the operator token file; throws naming file:line and what to write. */
export function parseOperatorTokens(text: string, file: string): Map<string, OperatorIdentity> {
  const out = new Map<string, OperatorIdentity>();
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) return;
    const at = `${file}:${i + 1}`;
    const fields = line.split(/\s+/);
    if (fields.length < 2 || fields.length > 3) throw new OperatorTokenFileError(`${at}: expected "TOKEN NAMESPACES [WHO]" (NAMESPACES: * or ns1,ns2), got ${fields.length} field(s)`);
    const [token, scope, who] = fields as [string, string, string | undefined];
    if (token.length < 16) throw new OperatorTokenFileError(`${at}: the token is shorter than 16 characters; use a random one (e.g. openssl rand -base64 24)`);
    let namespaces: OperatorIdentity["namespaces"];
    if (scope === "*") namespaces = "*";
    else {
      const list = scope.split(",");
      const bad = list.find((n) => !NAMESPACE.test(n));
      if (bad !== undefined) throw new OperatorTokenFileError(`${at}: "${bad}" is not a namespace name; NAMESPACES is * or a comma list such as shop,payments`);
      namespaces = new Set(list);
    }
    const digest = digestOf(token);
    if (out.has(digest)) throw new OperatorTokenFileError(`${at}: this token appears twice; give each operator their own`);
    out.set(digest, { who: who ?? `token on ${at}`, namespaces });
  });
  return out;
}

function isLoopbackPeer(address: string | undefined): boolean {
  if (!address) return false;
  const ip = canonicalIp(address.replace(/^::ffff:/i, ""));
  return ip !== undefined && (ip.startsWith("127.") || ip === "::1");
}

export class LoopbackOrTokenAuth implements OperatorAuth {
  private readonly tokens?: ReloadingFile<Map<string, OperatorIdentity>>;

  /** `file` undefined: only loopback callers. Reads the file now; throws OperatorTokenFileError. */
  constructor(file?: string) {
    if (file) this.tokens = new ReloadingFile(file, readTokenFile);
  }

  authorize(req: IncomingMessage, namespace: string): OperatorIdentity {
    let id: OperatorIdentity | undefined;
    const header = req.headers.authorization;
    if (header !== undefined) {
      const m = /^Bearer\s+(\S+)$/i.exec(header);
      id = m ? this.tokens?.value.get(digestOf(m[1]!)) : undefined;
      if (!id) throw new ControlError("EGRET_OPERATOR_UNAUTHENTICATED", m ? "the bearer token is not in --operator-token-file" : "the Authorization header is not `Bearer TOKEN`");
    } else if (isLoopbackPeer(req.socket.remoteAddress)) {
      id = { who: "loopback (kubectl port-forward / exec)", namespaces: "*" };
    } else {
      throw new ControlError("EGRET_OPERATOR_UNAUTHENTICATED", "no credential: use kubectl port-forward to control (loopback), or a bearer token from --operator-token-file");
    }
    if (id.namespaces !== "*" && !id.namespaces.has(namespace)) {
      throw new ControlError("EGRET_OPERATOR_FORBIDDEN", `${id.who} may read ${[...id.namespaces].join(", ")}, not ${namespace}`);
    }
    return id;
  }
}

function readTokenFile(file: string): Map<string, OperatorIdentity> {
  try {
    return parseOperatorTokens(readFileSync(file, "utf8"), file);
  } catch (err) {
    throw err instanceof OperatorTokenFileError ? err : new OperatorTokenFileError(`--operator-token-file ${file}: ${(err as Error).message}`);
  }
}
