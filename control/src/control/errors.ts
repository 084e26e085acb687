// The one catalogue of control-service error codes. Domain code throws ControlError with a code
// from here; only the gRPC edge (grpc-server.ts) and the HTTP edge map a code's `kind` to a
// protocol status. Codes are stable (logs and alerts match on them); messages say what to do.

export type ErrorKind =
  | "invalid-argument"
  | "not-found"
  | "failed-precondition"
  | "resource-exhausted"
  | "unavailable"
  | "unauthenticated"
  | "permission-denied"
  | "internal";

export const ERROR_CATALOGUE = {
  // --- Watch -----------------------------------------------------------------------------
  EGRET_WATCH_SUBSCRIBE_FIRST: {
    kind: "failed-precondition",
    message: "the first WatchRequest on a stream must be WATCH_REQUEST_TYPE_SUBSCRIBE",
  },
  EGRET_WATCH_DUPLICATE_SUBSCRIBE: {
    kind: "failed-precondition",
    message: "a Watch stream subscribes once; open a new stream to watch another pod",
  },
  EGRET_WATCH_IDENTITY_MISSING: {
    kind: "invalid-argument",
    message: "SUBSCRIBE needs pod_name and pod_namespace (Istio node metadata NAME and NAMESPACE)",
  },
  EGRET_WATCH_BAD_REQUEST_TYPE: {
    kind: "invalid-argument",
    message: "WatchRequest.type must be SUBSCRIBE, ACK or NACK",
  },
  EGRET_WATCH_TOO_MANY_STREAMS: {
    kind: "resource-exhausted",
    message: "this replica serves its maximum number of Watch streams; retry on another replica",
  },
  // --- Lookup ----------------------------------------------------------------------------
  EGRET_LOOKUP_BAD_IP: {
    kind: "invalid-argument",
    message: "LookupRequest.source_ip and destination_ip must be 4 or 16 bytes",
  },
  EGRET_LOOKUP_TOO_MANY_PENDING: {
    kind: "resource-exhausted",
    message: "too many Lookups are waiting on this replica; the filter applies its failure mode",
  },
  // --- Observe ---------------------------------------------------------------------------
  EGRET_OBSERVE_AGENT_ID_MISSING: {
    kind: "invalid-argument",
    message: "ObserveRequest.agent_id must be set on every batch",
  },
  EGRET_OBSERVE_BATCH_TOO_LARGE: {
    kind: "resource-exhausted",
    message: "an ObserveRequest batch carries more observations than this replica accepts; send smaller batches",
  },
  // --- Report ----------------------------------------------------------------------------
  EGRET_REPORT_BATCH_TOO_LARGE: {
    kind: "resource-exhausted",
    message: "a ReportRequest batch carries more events than this replica accepts; send smaller batches",
  },
  // --- Authentication and binding (docs/security.md) ----------------------------------
  EGRET_AGENT_UNAUTHENTICATED: {
    kind: "unauthenticated",
    message: "Observe needs gRPC metadata `authorization: Bearer TOKEN` with a token this control accepts (the agent's --token-file)",
  },
  EGRET_AGENT_TOKEN_EXPIRED: {
    kind: "unauthenticated",
    message: "the agent's token expired during the stream; reconnect with the rotated token (the kubelet refreshes the projected token before it expires)",
  },
  EGRET_AGENT_AUTH_UNAVAILABLE: {
    kind: "unavailable",
    message: "the agent's credentials could not be checked right now (TokenReview unreachable); the agent retries",
  },
  EGRET_FILTER_PEER_NOT_A_POD: {
    kind: "permission-denied",
    message: "Watch, Lookup and Report are served only to a pod, from its own address; this connection's source address is no pod's",
  },
  EGRET_FILTER_POD_MISMATCH: {
    kind: "permission-denied",
    message: "the call names a pod other than the one that owns the connection's source address",
  },
  EGRET_FILTER_POD_GONE: {
    kind: "permission-denied",
    message: "the pod this stream is bound to no longer owns the connection's source address",
  },
  // --- Operator views (egret observe, egret status) ------------------------------------
  EGRET_OPERATOR_AUTH_UNAVAILABLE: {
    kind: "unavailable",
    message: "the caller's credentials could not be checked right now (TokenReview / SubjectAccessReview unreachable or busy); retry",
  },
  EGRET_OBSERVE_BAD_FILTER: {
    kind: "invalid-argument",
    message: "an ObserveVerdictsRequest filter is not valid",
  },
  EGRET_OBSERVE_TOO_MANY_STREAMS: {
    kind: "resource-exhausted",
    message: "this replica serves its maximum number of verdict streams; retry later",
  },
  EGRET_OPERATOR_UNAUTHENTICATED: {
    kind: "unauthenticated",
    message: "operator calls need a credential: HTTP /debug a loopback caller (kubectl port-forward) or `Authorization: Bearer TOKEN` from --operator-token-file; egret observe/status (gRPC) `authorization: Bearer TOKEN` — an --operator-token-file token, or in Kubernetes a token the API server authenticates (egret observe --token-file)",
  },
  EGRET_OPERATOR_FORBIDDEN: {
    kind: "permission-denied",
    message: "the caller may not read this namespace (its --operator-token-file namespaces; Kubernetes: `list egresspolicies.egret.dev` there, for egret observe/status)",
  },
  // --- Debug endpoints (HTTP) ------------------------------------------------------------
  EGRET_DEBUG_BAD_QUERY: {
    kind: "invalid-argument",
    message: "bad query parameter",
  },
  EGRET_DEBUG_POD_UNKNOWN: {
    kind: "not-found",
    message: "this replica knows no such pod",
  },
  // --- Per-peer limits (peer-limits.ts) -------------------------------------------------
  EGRET_PEER_TOO_MANY_STREAMS: {
    kind: "resource-exhausted",
    message: "this address holds its maximum number of open streams on this replica (a pod's sidecar needs a handful); close some",
  },
  EGRET_PEER_TOO_MANY_LOOKUPS: {
    kind: "resource-exhausted",
    message: "this address has its maximum number of Lookups waiting on this replica; the filter applies its failure mode",
  },
  EGRET_MESSAGE_TOO_LARGE: {
    kind: "resource-exhausted",
    message: "a request message is larger than this replica accepts; send smaller batches",
  },
  // --- Configuration and sources ---------------------------------------------------------
  EGRET_CONFIG_INVALID: {
    kind: "invalid-argument",
    message: "invalid egret control configuration",
  },
  EGRET_PODS_FILE_INVALID: {
    kind: "invalid-argument",
    message: "the pods file is not valid (see control/src/control/README.md for its format)",
  },
  EGRET_SERVICE_ENTRY_FILE_INVALID: {
    kind: "invalid-argument",
    message: "a ServiceEntry file is not valid (YAML/JSON documents of kind ServiceEntry, apiVersion networking.istio.io/*)",
  },
  EGRET_POLICY_INVALID: {
    kind: "invalid-argument",
    message: "the policy is invalid; the previous version stays in force",
  },
  EGRET_KUBERNETES_UNAVAILABLE: {
    kind: "unavailable",
    message: "the Kubernetes API is unreachable",
  },
  EGRET_NOT_READY: {
    kind: "unavailable",
    message: "egret control has not finished its initial sync",
  },
  EGRET_SHUTTING_DOWN: {
    kind: "unavailable",
    message: "this replica is shutting down; reconnect to another",
  },
  EGRET_INTERNAL: {
    kind: "internal",
    message: "internal error in egret control",
  },
} as const satisfies Record<string, { kind: ErrorKind; message: string }>;

export type ErrorCode = keyof typeof ERROR_CATALOGUE;

/** A typed control-service error: stable code, catalogue message plus specifics, optional cause. */
export class ControlError extends Error {
  readonly code: ErrorCode;
  readonly kind: ErrorKind;
  readonly details?: Record<string, unknown>;

  constructor(code: ErrorCode, detail?: string, options?: { cause?: unknown; details?: Record<string, unknown> }) {
    const entry = ERROR_CATALOGUE[code];
    super(detail ? `${entry.message}: ${detail}` : entry.message, options?.cause !== undefined ? { cause: options.cause } : undefined);
    this.name = "ControlError";
    this.code = code;
    this.kind = entry.kind;
    this.details = options?.details;
  }
}

/** Any thrown value as a ControlError (unknown errors become EGRET_INTERNAL with the cause kept). */
export function asControlError(err: unknown): ControlError {
  if (err instanceof ControlError) return err;
  return new ControlError("EGRET_INTERNAL", err instanceof Error ? err.message : String(err), { cause: err });
}
