// `egret status`: one screen of Egret's health from control (OperatorService.GetStatus): replicas
// and the leader, agents and their capture drops, connected filters per namespace, policies and
// their readiness, recent denies by reason. See docs/operations.md.
import * as grpc from "@grpc/grpc-js";
import { parseFlags, UsageError, type CliCommand } from "../command.js";
import { closeAll, connect, describeCallError, type OperatorConnection } from "../../operate/connect.js";
import { mergeStatus, statusText, styleFor } from "../../operate/format.js";
import type { GetStatusResponse } from "../../proto/index.js";

const HELP = `usage: egret status [--control HOST:PORT]... [--token-file FILE] [--ca-file FILE] [--json]

One screen of Egret's health, as control sees it: control replicas and which one leads, agents
per node and their capture drops, connected filters per namespace, policies and their readiness,
recent denies by reason. Rows of namespaces you may not read are left out (Kubernetes: list
egresspolicies.egret.dev there); cluster-wide rows need list clusteregresspolicies.egret.dev.

  --control HOST:PORT      a control replica (repeatable: ask every replica, their answers are
                           merged; default 127.0.0.1:9090)
  --token-file FILE        your bearer token (see egret observe --help)
  --ca-file FILE           verify control's TLS certificate (TLS port 9443)
  --tls-server-name NAME   the name in control's certificate, when --control is a port-forward
  --timeout SECONDS        per replica (default 10)
  --json                   the same as one JSON object

Exit status: 0 when every replica answered and is ready, 1 otherwise.
`;

export const command: CliCommand = {
  name: "status",
  summary: "one-screen health view from control: replicas, agents, filters, policies, recent denies",
  async run(argv) {
    const { values } = parseFlags({
      args: argv,
      options: {
        control: { type: "string", multiple: true },
        "token-file": { type: "string" },
        "ca-file": { type: "string" },
        "tls-server-name": { type: "string" },
        timeout: { type: "string", default: "10" },
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
    const timeoutS = Number(values.timeout);
    if (!(timeoutS > 0 && timeoutS <= 600)) throw new UsageError(`--timeout ${values.timeout}: give seconds, 1 to 600`);
    let connections: OperatorConnection[];
    try {
      connections = connect({ controls: values.control ?? ["127.0.0.1:9090"], tokenFile: values["token-file"], caFile: values["ca-file"], tlsServerName: values["tls-server-name"] });
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
    try {
      const settled = await Promise.all(connections.map((c) => ask(c, timeoutS * 1000)));
      const answers = settled.filter((s): s is GetStatusResponse => !("error" in s));
      const unreachable = settled.filter((s): s is { address: string; error: string } => "error" in s);
      const view = mergeStatus(answers, unreachable);
      if (values.json) process.stdout.write(JSON.stringify(view, null, 2) + "\n");
      else if (answers.length > 0) process.stdout.write(statusText(view, styleFor(process.stdout), Date.now()));
      for (const u of unreachable) process.stderr.write(`egret status: ${u.error}\n`);
      return unreachable.length === 0 && answers.every((a) => a.ready) ? 0 : 1;
    } finally {
      closeAll(connections);
    }
  },
};

function ask(c: OperatorConnection, timeoutMs: number): Promise<GetStatusResponse | { address: string; error: string }> {
  return new Promise((resolve) => {
    c.client.GetStatus({}, c.metadata(), { deadline: Date.now() + timeoutMs }, (err: grpc.ServiceError | null, r?: GetStatusResponse) => {
      if (err || !r) resolve({ address: c.address, error: err ? describeCallError(c.address, err) : `${c.address}: no answer` });
      else resolve(r);
    });
  });
}
