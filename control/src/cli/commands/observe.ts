// `egret observe`: verdicts live from control (OperatorService.ObserveVerdicts), filtered, as a
// table or JSON lines. See control/src/operate/README.md and docs/operations.md.
import type * as grpc from "@grpc/grpc-js";
import { parseFlags, UsageError, type CliCommand } from "../command.js";
import { closeAll, connect, describeCallError, type OperatorConnection } from "../../operate/connect.js";
import { FlagError, observeRequest, reasonLabels, verdictLabels } from "../../operate/flags.js";
import { observeHeader, observeJson, observeLine, styleFor } from "../../operate/format.js";
import type { ObserveVerdictsRequest, ObserveVerdictsResponse } from "../../proto/index.js";

const HELP = `usage: egret observe [--control HOST:PORT]... [--token-file FILE] [--ca-file FILE] [filters] [--follow] [--json]

Shows the verdicts Egret's filters reported to control, as control records them (not from logs):
the retained ones, then with --follow every new one, live. You see only namespaces you may read
(Kubernetes: list egresspolicies.egret.dev there; file mode: your --operator-token-file entry).

connection:
  --control HOST:PORT      a control replica's gRPC address (repeatable: each replica sees the
                           verdicts of the filters connected to it; default 127.0.0.1:9090)
  --token-file FILE        your bearer token (Kubernetes: e.g. kubectl create token NAME > FILE;
                           file mode: a token from control's --operator-token-file)
  --ca-file FILE           verify control's TLS certificate (control with --tls-cert serves
                           operator calls only on its TLS port, 9443)
  --tls-server-name NAME   the name in control's certificate, when --control is a port-forward

filters (repeatable, or comma-separated; several values = any of them):
  --namespace NS           the pod's namespace
  --pod NAME|NS/NAME       the pod
  --verdict V              ${verdictLabels().join(", ")}
  --reason R               ${reasonLabels().join(", ")}
  --policy REF             the deciding policy: NS/NAME (EgressPolicy) or NAME (ClusterEgressPolicy)
  --since DURATION|TIME    from this long ago (30s, 5m, 1h) or this time (RFC 3339); default:
                           everything control retained, or with --follow only new verdicts

output:
  --follow, -f             keep going: print new verdicts as they happen (Ctrl-C to stop)
  --json                   one JSON object per line (control's audit record) instead of a table
`;

export const command: CliCommand = {
  name: "observe",
  summary: "watch verdicts live from control (filters: namespace, pod, verdict, reason, policy, since)",
  async run(argv) {
    const { values } = parseFlags({
      args: argv,
      options: {
        control: { type: "string", multiple: true },
        "token-file": { type: "string" },
        "ca-file": { type: "string" },
        "tls-server-name": { type: "string" },
        namespace: { type: "string", multiple: true, short: "n" },
        pod: { type: "string", multiple: true },
        verdict: { type: "string", multiple: true },
        reason: { type: "string", multiple: true },
        policy: { type: "string", multiple: true },
        since: { type: "string" },
        follow: { type: "boolean", short: "f" },
        json: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
      allowPositionals: false,
    }, HELP);
    if (values.help) {
      process.stdout.write(HELP);
      return 0;
    }
    let request: ObserveVerdictsRequest;
    try {
      request = observeRequest(values, Date.now());
    } catch (err) {
      if (err instanceof FlagError) throw new UsageError(err.message);
      throw err;
    }
    let connections: OperatorConnection[];
    try {
      connections = connect({ controls: values.control ?? ["127.0.0.1:9090"], tokenFile: values["token-file"], caFile: values["ca-file"], tlsServerName: values["tls-server-name"] });
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
    const style = styleFor(process.stdout);
    const print = (line: string) => process.stdout.write(`${line}\n`);
    if (!values.json) print(observeHeader(style));
    try {
      const results = await Promise.all(connections.map((c) => stream(c, request, (r) => {
        for (const e of r.verdicts) print(values.json ? observeJson(e) : observeLine(e, style));
      })));
      return results.every((ok) => ok) ? 0 : 1;
    } finally {
      closeAll(connections);
    }
  },
};

/** One replica's stream until it ends (or Ctrl-C); false when it failed. */
function stream(c: OperatorConnection, request: ObserveVerdictsRequest, onResponse: (r: ObserveVerdictsResponse) => void): Promise<boolean> {
  return new Promise((resolve) => {
    const call = c.client.ObserveVerdicts(request, c.metadata());
    let dropped = 0;
    const stop = () => call.cancel();
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
    const done = (ok: boolean) => {
      process.off("SIGINT", stop);
      process.off("SIGTERM", stop);
      resolve(ok);
    };
    call.on("data", (r: ObserveVerdictsResponse) => {
      onResponse(r);
      if (r.dropped_verdicts > dropped) {
        process.stderr.write(`egret observe: ${c.address}: ${r.dropped_verdicts - dropped} verdicts not shown (this observer read too slowly; ${r.dropped_verdicts} in all)\n`);
        dropped = r.dropped_verdicts;
      }
    });
    call.on("error", (err: grpc.ServiceError) => {
      if (err.code === 1 /* CANCELLED: Ctrl-C */) return done(true);
      process.stderr.write(`egret observe: ${describeCallError(c.address, err)}\n`);
      done(false);
    });
    call.on("end", () => done(true));
  });
}
