// `egret explain`: shows, for one pod and one connection, every rule the engine considered in
// order and the one that decided — computed by the same compiled engine as the filter.
import { readFlags } from "../../common/flags.js";
import { UsageError, type CliCommand } from "../command.js";
import {
  alwaysInternalEntry, compilePodSnapshot, formatAddress, formatDiagnostic, loadPolicyFiles, parseAddress, PolicyEngine, PROTOCOL_LABELS,
  type EvalResponse, type PodIdentity, type Policy,
} from "../../policy/index.js";

const USAGE = `usage: egret explain --policy FILE|FOLDER… --pod NS/NAME[:k=v,k=v] --to NAME|IP[:PORT]
                     [--name N]… [--protocol P] [--sni N | --host N] [--namespace-labels k=v,…]
                     [--cluster-cidr CIDR]… [--replace-default-cluster-cidrs] [--json]

--to NAME   evaluates as if the pod had resolved NAME (plus any --name) to a placeholder IP
            (${"192.0.2.1"}, outside the cluster); --to IP uses the names given with --name.
--protocol  the detected protocol (${PROTOCOL_LABELS.join(", ")}); omitted: not detected yet.
Port defaults to 443.
--cluster-cidr  in-cluster ranges, added to the default private ranges (as egret control does);
            with --replace-default-cluster-cidrs they replace them. "external: true" never
            matches loopback, link-local or cloud metadata addresses, whatever these say.`;

const PLACEHOLDER_IP = "192.0.2.1";

function parseLabels(text: string, what: string): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const part of text.split(",").filter(Boolean)) {
    const eq = part.indexOf("=");
    if (eq <= 0) throw new UsageError(`${what}: "${part}" is not key=value`);
    labels[part.slice(0, eq)] = part.slice(eq + 1);
  }
  return labels;
}

export function parsePod(text: string): PodIdentity {
  const m = /^([a-z0-9-]+)\/([^:]+)(?::(.*))?$/.exec(text);
  if (!m) throw new UsageError(`--pod "${text}": expected NAMESPACE/NAME[:key=value,…]`);
  return { namespace: m[1]!, name: m[2]!, labels: m[3] ? parseLabels(m[3], "--pod labels") : {} };
}

export function parseDestination(text: string): { ip?: string; name?: string; port: number } {
  let host = text, port = 443;
  const bracket = /^\[([^\]]+)\](?::(\d+))?$/.exec(text);
  if (bracket) { host = bracket[1]!; if (bracket[2]) port = Number(bracket[2]); }
  else if ((text.match(/:/g) ?? []).length === 1) { const i = text.indexOf(":"); host = text.slice(0, i); port = Number(text.slice(i + 1)); }
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new UsageError(`--to "${text}": port must be 1…65535`);
  // The address in its normal form (::ffff:a.b.c.d is the IPv4 address), as the filter reads it.
  const address = parseAddress(host);
  if (address) return { ip: formatAddress(address.address, address.family), port };
  if (!/^[A-Za-z0-9_.-]+\.?$/.test(host)) throw new UsageError(`--to "${text}": not a DNS name or IP address`);
  return { name: host.toLowerCase().replace(/\.$/, ""), port };
}

function describeRule(policy: Policy | undefined, ruleIndex: number): string {
  const rule = policy?.rules[ruleIndex];
  if (!policy || !rule) return "";
  const where = policy.source.file ? ` (${policy.source.file}${rule.line ? `:${rule.line}` : ""})` : "";
  const parts: string[] = [];
  if (rule.domains) parts.push(`domains ${rule.domains.map((d) => d.text).join(",")}`);
  if (rule.cidrs) parts.push(`cidrs ${rule.cidrs.map((c) => c.network.text + (c.except.length ? ` except ${c.except.map((e) => e.text).join(",")}` : "")).join(",")}`);
  if (rule.external) parts.push("external");
  if (rule.ports) parts.push(`ports ${rule.ports.map((p) => (p.first === p.last ? `${p.first}` : `${p.first}-${p.last}`)).join(",")}`);
  if (rule.protocols) parts.push(`protocols ${rule.protocols.join(",")}`);
  return `${rule.action} ${parts.join("; ")}${where}`;
}

export const command: CliCommand = {
  name: "explain",
  summary: "show which rules a connection meets, in order, and which one decides (runs the real engine)",
  async run(argv) {
    let parsed;
    try {
      parsed = readFlags({ args: argv, allowPositionals: true, options: {
        policy: { type: "string", multiple: true }, pod: { type: "string" }, to: { type: "string" },
        name: { type: "string", multiple: true }, protocol: { type: "string" }, sni: { type: "string" },
        host: { type: "string" }, "namespace-labels": { type: "string" }, "cluster-cidr": { type: "string", multiple: true }, "replace-default-cluster-cidrs": { type: "boolean" },
        json: { type: "boolean" }, help: { type: "boolean", short: "h" },
      } });
    } catch (e) {
      throw new UsageError(`${(e as Error).message}\n${USAGE}`);
    }
    const v = parsed.values;
    if (v.help) { process.stdout.write(`${USAGE}\n`); return 0; }
    // `--policy a.yaml b.yaml` leaves b.yaml as a positional: treat positionals as more policy files.
    const files = [...(v.policy ?? []), ...parsed.positionals];
    if (files.length === 0 || !v.pod || !v.to) throw new UsageError(`--policy, --pod and --to are required\n${USAGE}`);
    if (v.sni && v.host) throw new UsageError("give --sni or --host, not both");
    if (v.protocol !== undefined && !PROTOCOL_LABELS.includes(v.protocol)) throw new UsageError(`--protocol "${v.protocol}" is not one of ${PROTOCOL_LABELS.join(", ")}`);
    const pod = parsePod(v.pod);
    const dest = parseDestination(v.to);
    const nsLabels = v["namespace-labels"] ? parseLabels(v["namespace-labels"], "--namespace-labels") : {};

    const { policies, diagnostics } = loadPolicyFiles(files);
    const errors = diagnostics.filter((d) => d.severity === "error");
    if (errors.length > 0) {
      for (const d of errors) process.stderr.write(`${formatDiagnostic(d)}\n`);
      process.stderr.write("egret explain: fix the policy errors above first (egret validate shows all of them)\n");
      return 1;
    }
    const snapshot = compilePodSnapshot(policies, pod, nsLabels, { clusterCidrs: v["cluster-cidr"], replaceDefaultClusterCidrs: v["replace-default-cluster-cidrs"] === true });
    const engine = new PolicyEngine();
    engine.load(snapshot.bytes);
    const names = [...(dest.name ? [dest.name] : []), ...(v.name ?? []).map((n) => n.toLowerCase().replace(/\.$/, ""))];
    const ip = dest.ip ?? PLACEHOLDER_IP;
    const claimName = v.sni ?? v.host;
    const internal = alwaysInternalEntry(ip);
    const result: EvalResponse = engine.evaluate({
      ip, port: dest.port, names, trace: true,
      ...(v.protocol !== undefined ? { protocol: v.protocol } : {}),
      ...(claimName ? { claim: { kind: v.sni ? "sni" as const : "host" as const, name: claimName } } : {}),
    });
    const policyAt = (i: number): Policy | undefined => snapshot.compiled[i];
    const ruleRef = (p: number, r: number): string => `${policyAt(p)?.kind ?? "?"} ${engine.policyRef(p)} rule ${engine.ruleLabel(r)}`;

    if (v.json) {
      process.stdout.write(`${JSON.stringify({
        pod: `${pod.namespace}/${pod.name}`, ip, port: dest.port, names, protocol: v.protocol ?? null, selected: snapshot.selected,
        policies: snapshot.policies, verdict: result.verdict, reason: result.reason,
        policy: result.policy >= 0 ? engine.policyRef(result.policy) : null, rule: result.rule >= 0 ? engine.ruleLabel(result.rule) : null,
        alwaysInternal: internal ? `${internal.cidr}: ${internal.what}` : null,
        matchedName: result.matchedName ?? null, dependsOn: { names: result.dependsOnNames, protocol: result.dependsOnProtocol, claim: result.dependsOnClaim },
        trace: result.trace.map((t) => ({ policy: engine.policyRef(t.policy), rule: engine.ruleLabel(t.rule), outcome: t.outcomeText })),
      })}\n`);
      return 0;
    }
    const out: string[] = [];
    out.push(`pod ${pod.namespace}/${pod.name} → ${ip}:${dest.port}${dest.name ? ` (placeholder IP for ${dest.name})` : ""}`);
    out.push(`  names the pod resolved to it: ${names.length ? names.join(", ") : "(none)"}`);
    if (internal) out.push(`  ${ip} is in ${internal.cidr}, ${internal.what}: never external, whatever --cluster-cidr says`);
    out.push(`  protocol: ${v.protocol ?? "(not detected yet)"}${claimName ? `; ${v.sni ? "SNI" : "Host"}: ${claimName}` : ""}`);
    if (!snapshot.selected) {
      out.push("no policy selects this pod: it is not enforced.");
    } else {
      out.push(`policies selecting the pod, in evaluation order: ${snapshot.compiled.map((p) => `${p.ref} (${p.tier === "Namespace" ? "namespaced" : p.tier}, priority ${p.priority}${p.mode === "Monitor" ? ", Monitor" : ""})`).join(" → ")}`);
      out.push("rules considered:");
      result.trace.forEach((t, i) => {
        const mark = t.outcome === 1 ? "✔" : t.outcome === 9 ? "…" : t.outcome === 11 ? "↷" : "✘";
        out.push(`  ${String(i + 1).padStart(2)}. ${mark} ${ruleRef(t.policy, t.rule)}: ${describeRule(policyAt(t.policy), engine.ruleIndexInPolicy(t.rule))}`);
        out.push(`        ${t.outcomeText}`);
      });
    }
    const decidedBy = result.rule >= 0 ? ` by ${ruleRef(result.policy, result.rule)}` : result.policy >= 0 ? ` by ${policyAt(result.policy)?.kind} ${engine.policyRef(result.policy)} (unattributed: ${policyAt(result.policy)?.unattributed})` : "";
    out.push(result.verdict === "pending"
      ? `verdict: pending — ${ruleRef(result.policy, result.rule)} needs the detected protocol; pass --protocol`
      : `verdict: ${result.verdict} (${result.reason})${decidedBy}${result.matchedName ? `, matched name ${result.matchedName}` : ""}`);
    const deps = [result.dependsOnNames && "names", result.dependsOnProtocol && "protocol", result.dependsOnClaim && "SNI/Host claim"].filter(Boolean);
    if (deps.length) out.push(`  the decision depends on: ${deps.join(", ")}`);
    process.stdout.write(`${out.join("\n")}\n`);
    return 0;
  },
};
