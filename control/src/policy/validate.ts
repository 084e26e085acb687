// The one validator: identity checks, the CRD schema (schema.ts), then semantic checks that a
// schema cannot express; builds the normalized Policy. Used for files (load.ts) and for objects
// from the Kubernetes API alike.
import { diag, didYouMean, formatPath } from "./diagnostics.js";
import { parseDomainPattern, patternCovers } from "./domain.js";
import { isProblem, metadataAddressIn, networkContains, networksOverlap, parseCidr } from "./network.js";
import { PROTOCOL_ALIASES, PROTOCOL_LABELS } from "./protocols.js";
import { schemaDiagnostics } from "./schema.js";
import {
  API_GROUP, API_VERSION, DEFAULT_GRACE_SECONDS, DEFAULT_PRIORITY,
  type Action, type CidrEntry, type Diagnostic, type DomainPattern, type LabelSelector, type Policy,
  type PolicyKind, type PortRange, type Rule, type UnattributedAction,
} from "./types.js";

/** Maps a field path to a source position (files); absent for API objects. */
export type Locator = (path: (string | number)[]) => { line: number; column: number } | undefined;

export interface ValidationContext {
  file?: string;
  document?: number;
  locate?: Locator;
}

const KINDS: PolicyKind[] = ["ClusterEgressPolicy", "EgressPolicy"];
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const LABEL_NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => !!v && typeof v === "object" && !Array.isArray(v);

/** Whether a document is meant to be an Egret policy (its apiVersion is in the egret.dev group). */
export function isEgretDocument(obj: unknown): boolean {
  return isObj(obj) && typeof obj.apiVersion === "string" && obj.apiVersion.split("/")[0] === API_GROUP;
}

function labelKeyProblem(key: string): string | undefined {
  const slash = key.lastIndexOf("/");
  const prefix = slash >= 0 ? key.slice(0, slash) : undefined;
  const name = slash >= 0 ? key.slice(slash + 1) : key;
  if (prefix !== undefined && (prefix.length > 253 || !DNS1123_SUBDOMAIN.test(prefix))) return `label key prefix "${prefix}" is not a DNS subdomain`;
  if (name.length === 0 || name.length > 63 || !LABEL_NAME.test(name)) return `"${key}" is not a valid label key`;
  return undefined;
}

function labelValueProblem(value: string): string | undefined {
  return value.length > 63 || !LABEL_VALUE.test(value) ? `"${value}" is not a valid label value` : undefined;
}

export function validateWithContext(obj: unknown, ctx: ValidationContext = {}): { policy?: Policy; diagnostics: Diagnostic[] } {
  const out: Diagnostic[] = [];
  const add = (d: Diagnostic): void => {
    const segs = parsePathSafe(d.path);
    const pos = ctx.locate?.(segs);
    out.push({ ...d, ...(ctx.file ? { file: ctx.file } : {}), ...(pos ? { line: pos.line, column: pos.column } : {}) });
  };
  const err = (code: string, path: (string | number)[], message: string, hint: string): void => add(diag("error", code, formatPath(path), message, hint));
  const warn = (code: string, path: (string | number)[], message: string, hint: string): void => add(diag("warning", code, formatPath(path), message, hint));

  if (!isObj(obj)) {
    err("not-a-mapping", [], "the document is not a mapping", "a policy starts with apiVersion: egret.dev/v1alpha1, kind, metadata and spec");
    return { diagnostics: out };
  }
  // Identity: apiVersion, kind, metadata.
  if (obj.apiVersion !== API_VERSION) {
    if (typeof obj.apiVersion !== "string") err("bad-api-version", ["apiVersion"], "apiVersion is missing", `add apiVersion: ${API_VERSION}`);
    else err("bad-api-version", ["apiVersion"], `unsupported apiVersion "${obj.apiVersion}"`, `use apiVersion: ${API_VERSION}`);
  }
  const kindText = typeof obj.kind === "string" ? obj.kind : "";
  const kind = KINDS.find((k) => k === kindText);
  if (!kind) {
    const guess = kindText ? didYouMean(kindText, KINDS) : undefined;
    err("bad-kind", ["kind"], kindText ? `unknown kind "${kindText}"` : "kind is missing",
      guess ? `did you mean ${guess}?` : "use kind: EgressPolicy (namespaced) or ClusterEgressPolicy (cluster-wide)");
    return { diagnostics: out };
  }
  const meta = isObj(obj.metadata) ? obj.metadata : undefined;
  const name = typeof meta?.name === "string" ? meta.name : "";
  if (!meta) err("missing-field", ["metadata"], "metadata is missing", "add metadata: {name: <policy name>}");
  else if (!name) err("missing-field", ["metadata", "name"], "metadata.name is missing", "add metadata.name (lowercase letters, digits, '-' and '.')");
  else if (name.length > 253 || !DNS1123_SUBDOMAIN.test(name)) {
    err("bad-name", ["metadata", "name"], `"${name}" is not a valid Kubernetes object name`, `use lowercase letters, digits, '-' and '.', e.g. ${name.toLowerCase().replace(/[^a-z0-9.-]+/g, "-").replace(/^[-.]+|[-.]+$/g, "") || "allow-egress"}`);
  }
  let namespace: string | undefined;
  if (kind === "EgressPolicy") {
    namespace = typeof meta?.namespace === "string" ? meta.namespace : undefined;
    if (namespace !== undefined && !DNS1123_LABEL.test(namespace)) err("bad-name", ["metadata", "namespace"], `"${namespace}" is not a valid namespace name`, "use lowercase letters, digits and '-'");
    if (namespace === undefined && meta) {
      warn("namespace-defaulted", ["metadata"], "EgressPolicy has no metadata.namespace; assuming \"default\"", "set metadata.namespace to the namespace whose pods it selects");
      namespace = "default";
    }
  } else if (meta && meta.namespace !== undefined) {
    warn("namespace-ignored", ["metadata", "namespace"], "ClusterEgressPolicy is cluster-scoped; metadata.namespace is ignored", "remove metadata.namespace; use spec.namespaceSelector to choose namespaces");
  }

  // Structure (the CRD's schema). `status` is written by control, not by the user: not checked.
  const { status: _status, ...userPart } = obj;
  for (const d of schemaDiagnostics(kind, userPart)) add(d);
  const schemaPaths = new Set(out.filter((d) => d.severity === "error").map((d) => d.path));
  const spec = isObj(obj.spec) ? obj.spec : undefined;
  if (!spec) return { diagnostics: out };

  // Semantics the schema cannot express (skipping fields the schema already rejected).
  const errAt = (code: string, path: (string | number)[], message: string, hint: string): void => {
    if (!schemaPaths.has(formatPath(path))) err(code, path, message, hint);
  };
  if (kind === "ClusterEgressPolicy" && spec.namespaceSelector === undefined && spec.podSelector === undefined) {
    errAt("missing-selector", ["spec"], "ClusterEgressPolicy selects no pods: neither namespaceSelector nor podSelector is set",
      "add namespaceSelector: {} to select every namespace (and podSelector to narrow it), or matchLabels to pick some");
  }
  const selectors: { key: "namespaceSelector" | "podSelector"; value?: LabelSelector }[] = [];
  for (const key of ["namespaceSelector", "podSelector"] as const) {
    const sel = spec[key];
    if (!isObj(sel)) continue;
    selectors.push({ key, value: sel as LabelSelector });
    if (isObj(sel.matchLabels)) {
      for (const [k, v] of Object.entries(sel.matchLabels)) {
        const p = labelKeyProblem(k);
        if (p) errAt("bad-label", ["spec", key, "matchLabels", k], p, "label keys are [prefix/]name: name ≤ 63 chars of letters, digits, '-', '_', '.'");
        if (typeof v === "string") {
          const q = labelValueProblem(v);
          if (q) errAt("bad-label", ["spec", key, "matchLabels", k], q, "label values are ≤ 63 chars of letters, digits, '-', '_', '.', starting and ending alphanumeric");
        }
      }
    }
    if (Array.isArray(sel.matchExpressions)) {
      sel.matchExpressions.forEach((ex: unknown, i: number) => {
        if (!isObj(ex)) return;
        const path = ["spec", key, "matchExpressions", i];
        const values = Array.isArray(ex.values) ? ex.values : undefined;
        if (typeof ex.key === "string") {
          const p = labelKeyProblem(ex.key);
          if (p) errAt("bad-label", [...path, "key"], p, "label keys are [prefix/]name");
        }
        if ((ex.operator === "In" || ex.operator === "NotIn") && (!values || values.length === 0)) {
          errAt("selector-values", path, `operator ${ex.operator} needs a non-empty values list`, `add values: [...] — or use Exists to match any value`);
        }
        if ((ex.operator === "Exists" || ex.operator === "DoesNotExist") && values && values.length > 0) {
          errAt("selector-values", [...path, "values"], `operator ${ex.operator} takes no values`, "remove values, or use In / NotIn");
        }
      });
    }
  }

  const rules: Rule[] = [];
  const rawRules = Array.isArray(spec.rules) ? spec.rules : [];
  const ruleNames = new Map<string, number>();
  rawRules.forEach((raw: unknown, i: number) => {
    const path: (string | number)[] = ["spec", "rules", i];
    if (!isObj(raw)) return;
    const rule: Rule = { index: i, action: (raw.action as Action) ?? "Deny", path: formatPath(path) };
    const pos = ctx.locate?.(path);
    if (pos) rule.line = pos.line;
    if (typeof raw.name === "string") {
      rule.name = raw.name;
      const prev = ruleNames.get(raw.name);
      if (prev !== undefined) errAt("duplicate-rule-name", [...path, "name"], `rule name "${raw.name}" is already used by spec.rules[${prev}]`, "give each rule a unique name (verdicts report it)");
      else ruleNames.set(raw.name, i);
    }
    if (raw.to === undefined && raw.ports === undefined && raw.protocols === undefined) {
      errAt("empty-rule", path, "the rule sets none of to, ports, protocols, so it would match every connection",
        "say what it matches (to.domains / to.cidrs / to.external, ports, protocols); to match everything on purpose use to: {cidrs: [{cidr: 0.0.0.0/0}, {cidr: \"::/0\"}]}");
    }
    const to = isObj(raw.to) ? raw.to : undefined;
    if (to) {
      if (to.domains === undefined && to.cidrs === undefined && to.external === undefined) {
        errAt("empty-to", [...path, "to"], "to is empty", "set domains, cidrs or external — or remove to to match any destination");
      }
      if (to.external === false) errAt("external-false", [...path, "to", "external"], "external: false has no meaning", "remove it (to match in-cluster destinations, list their cidrs)");
      else if (to.external === true) rule.external = true;
      if (Array.isArray(to.domains)) {
        const domains: DomainPattern[] = [];
        to.domains.forEach((d: unknown, j: number) => {
          if (typeof d !== "string") return;
          const dp: (string | number)[] = [...path, "to", "domains", j];
          const parsed = parseDomainPattern(d);
          if (isProblem(parsed)) {
            errAt(/U-label/.test(parsed.message) ? "domain-idn" : "domain-pattern", dp, parsed.message, parsed.hint);
            return;
          }
          const dup = domains.find((p) => p.text === parsed.text);
          if (dup) warn("duplicate-domain", dp, `"${d}" is listed twice in this rule`, "remove the duplicate");
          else {
            const cover = domains.find((p) => patternCovers(p, parsed));
            if (cover) warn("redundant-domain", dp, `"${d}" is already matched by "${cover.text}" in this rule`, "remove it, or narrow the wider pattern");
          }
          if (parsed.kind !== "exact" && !parsed.suffix.includes(".")) {
            warn("broad-wildcard", dp, `"${d}" matches names under a whole top-level domain`, "narrow it to the organisation's domain, e.g. *.example.com");
          }
          domains.push(parsed);
        });
        if (domains.length) rule.domains = domains;
      }
      if (Array.isArray(to.cidrs)) {
        const cidrs: CidrEntry[] = [];
        to.cidrs.forEach((c: unknown, j: number) => {
          if (!isObj(c) || typeof c.cidr !== "string") return;
          const cp: (string | number)[] = [...path, "to", "cidrs", j];
          const net = parseCidr(c.cidr);
          if (isProblem(net)) { errAt("bad-cidr", [...cp, "cidr"], net.message, net.hint); return; }
          const except = [];
          for (const [k, e] of (Array.isArray(c.except) ? c.except : []).entries()) {
            if (typeof e !== "string") continue;
            const ex = parseCidr(e);
            if (isProblem(ex)) { errAt("bad-cidr", [...cp, "except", k], ex.message, ex.hint); continue; }
            if (!networkContains(net, ex) || ex.prefix === net.prefix) {
              errAt("except-outside", [...cp, "except", k], `except ${e} is not strictly inside ${c.cidr}`, `except entries must be smaller networks inside cidr ${c.cidr}; remove it or fix the cidr`);
              continue;
            }
            except.push(ex);
          }
          const metadata = rule.action === "Deny" ? undefined : metadataAddressIn(net, except);
          if (metadata) {
            warn("cidr-allows-metadata", [...cp, "cidr"], `${c.cidr} includes ${metadata}, a cloud metadata service (node credentials)`,
              "add except: [169.254.0.0/16] (and 100.100.100.200/32, fd00:ec2::254/128 as needed), or match the internet with external: true, which never matches loopback, link-local or metadata addresses");
          }
          cidrs.push({ network: net, except });
        });
        if (cidrs.length) rule.cidrs = cidrs;
      }
      if (Array.isArray(to.domains) && Array.isArray(to.cidrs)) {
        warn("domains-and-cidrs", [...path, "to"], "to sets both domains and cidrs: the rule matches only these names when they resolved inside these CIDRs",
          "if you meant either one, write two rules");
      }
    }
    if (Array.isArray(raw.ports)) {
      const ports: PortRange[] = [];
      raw.ports.forEach((p: unknown, j: number) => {
        if (!isObj(p) || typeof p.port !== "number") return;
        const pp: (string | number)[] = [...path, "ports", j];
        const last = typeof p.endPort === "number" ? p.endPort : p.port;
        if (last < p.port) { errAt("port-range", [...pp, "endPort"], `endPort ${last} is below port ${p.port}`, `write the range low to high: port: ${last}, endPort: ${p.port}`); return; }
        ports.push({ first: p.port, last });
      });
      if (ports.length) rule.ports = ports;
    }
    if (Array.isArray(raw.protocols)) {
      const protos: string[] = [];
      raw.protocols.forEach((p: unknown, j: number) => {
        if (typeof p !== "string") return;
        const label = p.toLowerCase();
        if (!PROTOCOL_LABELS.includes(label)) {
          const alias = PROTOCOL_ALIASES[label];
          errAt("unknown-protocol", [...path, "protocols", j], `unknown protocol "${p}"`,
            `${alias ? `did you mean "${alias}"? ` : ""}known protocols: ${PROTOCOL_LABELS.join(", ")}`);
          return;
        }
        if (!protos.includes(label)) protos.push(label);
      });
      if (protos.length) rule.protocols = protos;
    }
    if (raw.encryptedClientHello === "Allow") {
      const ep: (string | number)[] = [...path, "encryptedClientHello"];
      if (!rule.domains) {
        errAt("ech-without-domains", ep, "encryptedClientHello: Allow accepts ECH connections to this rule's names, and the rule lists no to.domains",
          "add the names whose ECH connections this rule accepts (to.domains), or remove encryptedClientHello");
      } else if (rule.action === "Deny" || rule.action === "Pass") {
        errAt("ech-on-deny", ep, `encryptedClientHello: Allow has no effect on a ${rule.action} rule (ECH connections are only ever allowed by Allow/Alert rules)`,
          "remove encryptedClientHello, or put it on the Allow rule for these names");
      } else {
        rule.encryptedClientHello = "Allow";
      }
    }
    rules.push(rule);
  });

  // Shadowing: a rule that an earlier rule of the same policy always matches first.
  for (let j = 0; j < rules.length; j++) {
    for (let i = 0; i < j; i++) {
      if (ruleCovers(rules[i]!, rules[j]!)) {
        warn("shadowed-rule", ["spec", "rules", j], `this rule can never match: spec.rules[${i}] (${rules[i]!.action}) matches every connection it matches, and the first match wins`,
          `move it above spec.rules[${i}], narrow spec.rules[${i}], or remove it`);
        break;
      }
    }
  }

  if (out.some((d) => d.severity === "error")) return { diagnostics: out };
  const policy: Policy = {
    kind,
    name,
    ...(namespace !== undefined ? { namespace } : {}),
    ref: kind === "EgressPolicy" ? `${namespace}/${name}` : name,
    tier: kind === "EgressPolicy" ? "Namespace" : spec.tier === "Baseline" ? "Baseline" : "Admin",
    priority: typeof spec.priority === "number" ? spec.priority : DEFAULT_PRIORITY,
    mode: spec.mode === "Monitor" ? "Monitor" : "Enforce",
    resolutionGraceSeconds: typeof spec.resolutionGraceSeconds === "number" ? spec.resolutionGraceSeconds : DEFAULT_GRACE_SECONDS,
    ...(typeof spec.unattributed === "string" ? { unattributed: spec.unattributed as UnattributedAction } : {}),
    meshConfigEvidence: spec.meshConfigEvidence === "Ignore" ? "Ignore" : "Use",
    ...Object.fromEntries(selectors.map((s) => [s.key, s.value])),
    rules,
    source: { ...(ctx.file ? { file: ctx.file } : {}), ...(ctx.document !== undefined ? { document: ctx.document } : {}), ...(ctx.locate?.(["metadata", "name"]) ?? {}) },
    raw: obj,
  };
  return { policy, diagnostics: out };
}

function parsePathSafe(path: string): (string | number)[] {
  const out: (string | number)[] = [];
  for (const m of path.matchAll(/([^.[\]]+)|\[(\d+)\]/g)) out.push(m[2] !== undefined ? Number(m[2]) : m[1]!);
  return out;
}

function portsCover(outer?: PortRange[], inner?: PortRange[]): boolean {
  if (!outer) return true;
  if (!inner) return false;
  return inner.every((r) => outer.some((o) => o.first <= r.first && r.last <= o.last));
}

function cidrsCover(outer?: CidrEntry[], inner?: CidrEntry[]): boolean {
  if (!outer) return true;
  if (!inner) return false;
  return inner.every((r) => outer.some((o) => networkContains(o.network, r.network) && !o.except.some((e) => networksOverlap(e, r.network))));
}

/** Whether every connection `inner` matches is also matched by `outer` (conservative). */
export function ruleCovers(outer: Rule, inner: Rule): boolean {
  if (outer.external && !inner.external) return false;
  if (!portsCover(outer.ports, inner.ports) || !cidrsCover(outer.cidrs, inner.cidrs)) return false;
  if (outer.protocols && (!inner.protocols || !inner.protocols.every((p) => outer.protocols!.includes(p)))) return false;
  if (outer.domains && (!inner.domains || !inner.domains.every((d) => outer.domains!.some((o) => patternCovers(o, d))))) return false;
  return true;
}
