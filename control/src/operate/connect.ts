// How `egret observe` and `egret status` reach control: one OperatorService client per --control
// address, the caller's bearer token (--token-file; re-read per call) and, with --ca-file, TLS.
import * as grpc from "@grpc/grpc-js";
import { agentCredentials } from "../agent/credentials.js";
import { createOperatorClient, type OperatorServiceClient } from "../proto/index.js";

export interface ConnectOptions {
  /** "host:port" of each control replica to ask. */
  controls: string[];
  tokenFile?: string;
  caFile?: string;
  /** The name control's certificate carries, when it differs from the --control host (port-forward). */
  tlsServerName?: string;
}

export interface OperatorConnection {
  address: string;
  client: OperatorServiceClient;
  /** Fresh metadata per call (the token file is re-read). */
  metadata(): grpc.Metadata;
}

export function connect(o: ConnectOptions): OperatorConnection[] {
  const creds = agentCredentials({ tokenFile: o.tokenFile, caFile: o.caFile });
  const options: grpc.ClientOptions = o.tlsServerName ? { "grpc.ssl_target_name_override": o.tlsServerName, "grpc.default_authority": o.tlsServerName } : {};
  return o.controls.map((address) => ({ address, client: createOperatorClient(address, creds.channel, options), metadata: () => creds.callMetadata() }));
}

export function closeAll(connections: OperatorConnection[]): void {
  for (const c of connections) c.client.close();
}

/** A gRPC failure as one line for a person: the status name and control's message. */
export function describeCallError(address: string, err: grpc.ServiceError): string {
  const code = grpc.status[err.code] ?? String(err.code);
  const hint =
    err.code === grpc.status.UNAUTHENTICATED
      ? " (give --token-file FILE: an entry of control's --operator-token-file, or in Kubernetes a token of yours, e.g. from kubectl create token)"
      : err.code === grpc.status.UNAVAILABLE && /ECONNREFUSED|No connection established|connect/.test(err.details)
        ? " (is control listening there? With TLS, operator calls are served on its TLS port: give --ca-file)"
        : "";
  return `${address}: ${code}: ${err.details}${hint}`;
}
