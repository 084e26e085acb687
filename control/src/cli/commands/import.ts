// `egret import FILES… [--report json]`: Egret policies (YAML) on standard output, the report on
// standard error — for every source rule: exact, stricter in Egret (and why), or not expressible
// (why, and what to do instead). See docs/import.md.
import { UsageError, parseFlags, type CliCommand } from "../command.js";
import { checkOutput, importDocuments, ImportError, readSourceDocs, renderPolicies, renderReport } from "../../import/index.js";

const USAGE = `usage: egret import FILE… [--report json]

Reads Kubernetes NetworkPolicy, ClusterNetworkPolicy (v1alpha2) / AdminNetworkPolicy /
BaselineAdminNetworkPolicy, OpenShift EgressNetworkPolicy / EgressFirewall, Istio ServiceEntry,
Sidecar, EgressRule and mesh config (istio ConfigMap or IstioOperator), CiliumNetworkPolicy and
CiliumClusterwideNetworkPolicy (multi-document YAML or JSON, List objects included).
Prints Egret policies to standard output and a report to standard error.
Exit status: 0 imported, 1 unreadable input or an internal error, 2 bad usage.`;

export const command: CliCommand = {
  name: "import",
  summary: "translate NetworkPolicy, network-policy-api, OpenShift, Istio and Cilium egress policies into Egret policies, with a report",
  async run(argv) {
    const parsed = parseFlags({ args: argv, allowPositionals: true, options: { report: { type: "string" }, help: { type: "boolean", short: "h" } } }, USAGE);
    if (parsed.values.help) { process.stdout.write(`${USAGE}\n`); return 0; }
    const format = parsed.values.report ?? "text";
    if (format !== "text" && format !== "json") throw new UsageError(`--report "${format}": use --report json (or leave it out for text)\n\n${USAGE}`);
    if (parsed.positionals.length === 0) throw new UsageError(`no files given\n\n${USAGE}`);
    let result;
    try {
      result = importDocuments(readSourceDocs(parsed.positionals));
    } catch (e) {
      if (e instanceof ImportError) { process.stderr.write(`egret import: ${e.message}\n`); return 1; }
      throw e;
    }
    const problems = checkOutput(result.policies);
    if (problems.length) {
      process.stderr.write(`egret import: internal error, the translation is not a valid Egret policy (please report):\n${problems.join("\n")}\n`);
      return 1;
    }
    process.stdout.write(renderPolicies(result.policies, parsed.positionals));
    if (format === "json") process.stderr.write(`${JSON.stringify({ policies: result.policies.length, report: result.report })}\n`);
    else process.stderr.write(renderReport(result.report));
    return 0;
  },
};
