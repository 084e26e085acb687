// `egret validate FILES…`: checks EgressPolicy / ClusterEgressPolicy files (or folders) with the
// same validator control uses; prints file:line:column diagnostics; exit 1 on errors.
import { readFlags } from "../../common/flags.js";
import { UsageError, type CliCommand } from "../command.js";
import { formatDiagnostic, loadPolicyFiles } from "../../policy/index.js";

const USAGE = `usage: egret validate [--json] [--no-warnings] FILE|FOLDER…

Validates Egret policies (multi-document YAML or JSON; folders are read recursively).
Exit status: 0 valid (warnings allowed), 1 errors found, 2 bad usage.`;

export const command: CliCommand = {
  name: "validate",
  summary: "check policy files: schema, patterns, CIDRs, ports, protocols, shadowed rules",
  async run(argv) {
    let parsed;
    try {
      parsed = readFlags({ args: argv, allowPositionals: true, options: {
        json: { type: "boolean" }, "no-warnings": { type: "boolean" }, help: { type: "boolean", short: "h" },
      } });
    } catch (e) {
      throw new UsageError(`${(e as Error).message}\n${USAGE}`);
    }
    if (parsed.values.help) { process.stdout.write(`${USAGE}\n`); return 0; }
    if (parsed.positionals.length === 0) throw new UsageError(`no files given\n${USAGE}`);
    const { policies, diagnostics } = loadPolicyFiles(parsed.positionals);
    const shown = parsed.values["no-warnings"] ? diagnostics.filter((d) => d.severity === "error") : diagnostics;
    const errors = diagnostics.filter((d) => d.severity === "error").length;
    const warnings = diagnostics.length - errors;
    if (parsed.values.json) {
      process.stdout.write(`${JSON.stringify({ policies: policies.map((p) => ({ kind: p.kind, ref: p.ref, file: p.source.file, line: p.source.line })), diagnostics: shown, errors, warnings })}\n`);
    } else {
      for (const d of shown) process.stdout.write(`${formatDiagnostic(d)}\n`);
      process.stdout.write(`${policies.length} valid ${policies.length === 1 ? "policy" : "policies"}, ${errors} error${errors === 1 ? "" : "s"}, ${warnings} warning${warnings === 1 ? "" : "s"}\n`);
    }
    return errors > 0 ? 1 : 0;
  },
};
