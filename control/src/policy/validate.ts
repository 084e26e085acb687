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
  type Network, type PolicyKind, type PortRange, type Rule, type UnattributedAction,
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

type Path = (string | number)[];

/** Collects diagnostics with file positions; `errAt` skips fields the schema already rejected. */
class Reporter {
  readonly out: Diagnostic[] = [];
  private schemaErrorPaths = new Set<string>();
  constructor(private readonly ctx: ValidationContext) {}

  add(d: Diagnostic): void {
    const pos = this.ctx.locate?.(parsePathSafe(d.path));
    this.out.push({ ...d, ...(this.ctx.file ? { file: this.ctx.file } : {}), ...(pos ? { line: pos.line, column: pos.column } : {}) });
  }
  err(code: string, path: Path, message: string, hint: string): void { this.add(diag("error", code, formatPath(path), message, hint)); }
  warn(code: string, path: Path, message: string, hint: string): void { this.add(diag("warning", code, formatPath(path), message, hint)); }
  /** Semantic errors the schema cannot express, only where the schema found nothing. */
  errAt(code: string, path: Path, message: string, hint: string): void {
    if (!this.schemaErrorPaths.has(formatPath(path))) this.err(code, path, message, hint);
  }
  markSchemaErrors(): void { this.schemaErrorPaths = new Set(this.out.filter((d) => d.severity === "error").map((d) => d.path)); }
  hasErrors(): boolean { return this.out.some((d) => d.severity === "error"); }
}

interface Identity { kind: PolicyKind; name: string; namespace?: string }

export function validateWithContext(obj: unknown, ctx: ValidationContext = {}): { policy?: Policy; diagnostics: Diagnostic[] } {
  const r = new Reporter(ctx);
  if (!isObj(obj)) {
    r.err("not-a-mapping", [], "the document is not a mapping", "a policy starts with apiVersion: egret.dev/v1alpha1, kind, metadata and spec");
    return { diagnostics: r.out };
  }
  const identity = checkIdentity(obj, r);
  if (!identity) return { diagnostics: r.out };

  // Structure (the CRD's schema). `status` is written by control, not by the user: not checked.
  const { status: _status, ...userPart } = obj;
  for (const d of schemaDiagnostics(identity.kind, userPart)) r.add(d);
  r.markSchemaErrors();
  const spec = isObj(obj.spec) ? obj.spec : undefined;
  if (!spec) return { diagnostics: r.out };

  if (identity.kind === "ClusterEgressPolicy" && spec.namespaceSelector === undefined && spec.podSelector === undefined) {
    r.errAt("missing-selector", ["spec"], "ClusterEgressPolicy selects no pods: neither namespaceSelector nor podSelector is set",
      "add namespaceSelector: {} to select every namespace (and podSelector to narrow it), or matchLabels to pick some");
  }
  const selectors = checkSelectors(spec, r);
  const rules = parseRules(spec, r, ctx);
  warnShadowedRules(rules, r);
  if (r.hasErrors()) return { diagnostics: r.out };
  return { policy: buildPolicy(obj, spec, identity, selectors, rules, ctx), diagnostics: r.out };
}

/** apiVersion, kind and metadata; undefined when the kind is unknown (nothing else can be checked). */
function checkIdentity(obj: Obj, r: Reporter): Identity | undefined {
  if (obj.apiVersion !== API_VERSION) {
    if (typeof obj.apiVersion !== "string") r.err("bad-api-version", ["apiVersion"], "apiVersion is missing", `add apiVersion: ${API_VERSION}`);
    else r.err("bad-api-version", ["apiVersion"], `unsupported apiVersion "${obj.apiVersion}"`, `use apiVersion: ${API_VERSION}`);
  }
  const kindText = typeof obj.kind === "string" ? obj.kind : "";
  const kind = KINDS.find((k) => k === kindText);
  if (!kind) {
    const guess = kindText ? didYouMean(kindText, KINDS) : undefined;
    r.err("bad-kind", ["kind"], kindText ? `unknown kind "${kindText}"` : "kind is missing",
      guess ? `did you mean ${guess}?` : "use kind: EgressPolicy (namespaced) or ClusterEgressPolicy (cluster-wide)");
    return undefined;
  }
  const meta = isObj(obj.metadata) ? obj.metadata : undefined;
  const name = typeof meta?.name === "string" ? meta.name : "";
  if (!meta) r.err("missing-field", ["metadata"], "metadata is missing", "add metadata: {name: <policy name>}");
  else if (!name) r.err("missing-field", ["metadata", "name"], "metadata.name is missing", "add metadata.name (lowercase letters, digits, '-' and '.')");
  else if (name.length > 253 || !DNS1123_SUBDOMAIN.test(name)) {
    r.err("bad-name", ["metadata", "name"], `"${name}" is not a valid Kubernetes object name`, `use lowercase letters, digits, '-' and '.', e.g. ${name.toLowerCase().replace(/[^a-z0-9.-]+/g, "-").replace(/^[-.]+|[-.]+$/g, "") || "allow-egress"}`);
  }
  return { kind, name, ...checkNamespace(kind, meta, r) };
}

function checkNamespace(kind: PolicyKind, meta: Obj | undefined, r: Reporter): { namespace?: string } {
  if (kind !== "EgressPolicy") {
    if (meta && meta.namespace !== undefined) {
      r.warn("namespace-ignored", ["metadata", "namespace"], "ClusterEgressPolicy is cluster-scoped; metadata.namespace is ignored", "remove metadata.namespace; use spec.namespaceSelector to choose namespaces");
    }
    return {};
  }
  const namespace = typeof meta?.namespace === "string" ? meta.namespace : undefined;
  if (namespace !== undefined && !DNS1123_LABEL.test(namespace)) r.err("bad-name", ["metadata", "namespace"], `"${namespace}" is not a valid namespace name`, "use lowercase letters, digits and '-'");
  if (namespace === undefined && meta) {
    r.warn("namespace-defaulted", ["metadata"], "EgressPolicy has no metadata.namespace; assuming \"default\"", "set metadata.namespace to the namespace whose pods it selects");
    return { namespace: "default" };
  }
  return namespace !== undefined ? { namespace } : {};
}

type SelectorKey = "namespaceSelector" | "podSelector";

function checkSelectors(spec: Obj, r: Reporter): { key: SelectorKey; value?: LabelSelector }[] {
  const selectors: { key: SelectorKey; value?: LabelSelector }[] = [];
  for (const key of ["namespaceSelector", "podSelector"] as const) {
    const sel = spec[key];
    if (!isObj(sel)) continue;
    selectors.push({ key, value: sel as LabelSelector });
    if (isObj(sel.matchLabels)) checkMatchLabels(key, sel.matchLabels, r);
    if (Array.isArray(sel.matchExpressions)) sel.matchExpressions.forEach((ex: unknown, i: number) => checkMatchExpression(key, ex, i, r));
  }
  return selectors;
}

function checkMatchLabels(key: SelectorKey, matchLabels: Obj, r: Reporter): void {
  for (const [k, v] of Object.entries(matchLabels)) {
    const p = labelKeyProblem(k);
    if (p) r.errAt("bad-label", ["spec", key, "matchLabels", k], p, "label keys are [prefix/]name: name ≤ 63 chars of letters, digits, '-', '_', '.'");
    if (typeof v === "string") {
      const q = labelValueProblem(v);
      if (q) r.errAt("bad-label", ["spec", key, "matchLabels", k], q, "label values are ≤ 63 chars of letters, digits, '-', '_', '.', starting and ending alphanumeric");
    }
  }
}

function checkMatchExpression(key: SelectorKey, ex: unknown, i: number, r: Reporter): void {
  if (!isObj(ex)) return;
  const path = ["spec", key, "matchExpressions", i];
  const values = Array.isArray(ex.values) ? ex.values : undefined;
  if (typeof ex.key === "string") {
    const p = labelKeyProblem(ex.key);
    if (p) r.errAt("bad-label", [...path, "key"], p, "label keys are [prefix/]name");
  }
  if ((ex.operator === "In" || ex.operator === "NotIn") && (!values || values.length === 0)) {
    r.errAt("selector-values", path, `operator ${ex.operator} needs a non-empty values list`, `add values: [...] — or use Exists to match any value`);
  }
  if ((ex.operator === "Exists" || ex.operator === "DoesNotExist") && values && values.length > 0) {
    r.errAt("selector-values", [...path, "values"], `operator ${ex.operator} takes no values`, "remove values, or use In / NotIn");
  }
}

function parseRules(spec: Obj, r: Reporter, ctx: ValidationContext): Rule[] {
  const rules: Rule[] = [];
  const rawRules = Array.isArray(spec.rules) ? spec.rules : [];
  const ruleNames = new Map<string, number>();
  rawRules.forEach((raw: unknown, i: number) => {
    if (!isObj(raw)) return;
    rules.push(parseRule(raw, i, ruleNames, r, ctx));
  });
  return rules;
}

function parseRule(raw: Obj, i: number, ruleNames: Map<string, number>, r: Reporter, ctx: ValidationContext): Rule {
  const path: Path = ["spec", "rules", i];
  const rule: Rule = { index: i, action: (raw.action as Action) ?? "Deny", path: formatPath(path) };
  const pos = ctx.locate?.(path);
  if (pos) rule.line = pos.line;
  if (typeof raw.name === "string") {
    rule.name = raw.name;
    const prev = ruleNames.get(raw.name);
    if (prev !== undefined) r.errAt("duplicate-rule-name", [...path, "name"], `rule name "${raw.name}" is already used by spec.rules[${prev}]`, "give each rule a unique name (verdicts report it)");
    else ruleNames.set(raw.name, i);
  }
  if (raw.to === undefined && raw.ports === undefined && raw.protocols === undefined) {
    r.errAt("empty-rule", path, "the rule sets none of to, ports, protocols, so it would match every connection",
      "say what it matches (to.domains / to.cidrs / to.external, ports, protocols); to match everything on purpose use to: {cidrs: [{cidr: 0.0.0.0/0}, {cidr: \"::/0\"}]}");
  }
  if (isObj(raw.to)) parseTo(raw.to, path, rule, r);
  if (Array.isArray(raw.ports)) {
    const ports = parsePorts(raw.ports, path, r);
    if (ports.length) rule.ports = ports;
  }
  if (Array.isArray(raw.protocols)) {
    const protos = parseProtocols(raw.protocols, path, r);
    if (protos.length) rule.protocols = protos;
  }
  if (raw.encryptedClientHello === "Allow") checkEncryptedClientHello(path, rule, r);
  return rule;
}

function parseTo(to: Obj, path: Path, rule: Rule, r: Reporter): void {
  if (to.domains === undefined && to.cidrs === undefined && to.external === undefined) {
    r.errAt("empty-to", [...path, "to"], "to is empty", "set domains, cidrs or external — or remove to to match any destination");
  }
  if (to.external === false) r.errAt("external-false", [...path, "to", "external"], "external: false has no meaning", "remove it (to match in-cluster destinations, list their cidrs)");
  else if (to.external === true) rule.external = true;
  if (Array.isArray(to.domains)) {
    const domains = parseDomains(to.domains, path, r);
    if (domains.length) rule.domains = domains;
  }
  if (Array.isArray(to.cidrs)) {
    const cidrs = parseCidrs(to.cidrs, path, rule.action, r);
    if (cidrs.length) rule.cidrs = cidrs;
  }
  if (Array.isArray(to.domains) && Array.isArray(to.cidrs)) {
    r.warn("domains-and-cidrs", [...path, "to"], "to sets both domains and cidrs: the rule matches only these names when they resolved inside these CIDRs",
      "if you meant either one, write two rules");
  }
}

function parseDomains(list: unknown[], path: Path, r: Reporter): DomainPattern[] {
  const domains: DomainPattern[] = [];
  list.forEach((d: unknown, j: number) => {
    if (typeof d !== "string") return;
    const dp: Path = [...path, "to", "domains", j];
    const parsed = parseDomainPattern(d);
    if (isProblem(parsed)) {
      r.errAt(/U-label/.test(parsed.message) ? "domain-idn" : "domain-pattern", dp, parsed.message, parsed.hint);
      return;
    }
    const dup = domains.find((p) => p.text === parsed.text);
    if (dup) r.warn("duplicate-domain", dp, `"${d}" is listed twice in this rule`, "remove the duplicate");
    else {
      const cover = domains.find((p) => patternCovers(p, parsed));
      if (cover) r.warn("redundant-domain", dp, `"${d}" is already matched by "${cover.text}" in this rule`, "remove it, or narrow the wider pattern");
    }
    if (parsed.kind !== "exact" && !parsed.suffix.includes(".")) {
      r.warn("broad-wildcard", dp, `"${d}" matches names under a whole top-level domain`, "narrow it to the organisation's domain, e.g. *.example.com");
    }
    domains.push(parsed);
  });
  return domains;
}

function parseCidrs(list: unknown[], path: Path, action: Action, r: Reporter): CidrEntry[] {
  const cidrs: CidrEntry[] = [];
  list.forEach((c: unknown, j: number) => {
    if (!isObj(c) || typeof c.cidr !== "string") return;
    const cp: Path = [...path, "to", "cidrs", j];
    const net = parseCidr(c.cidr);
    if (isProblem(net)) { r.errAt("bad-cidr", [...cp, "cidr"], net.message, net.hint); return; }
    const except = parseExcept(c.cidr, net, Array.isArray(c.except) ? c.except : [], cp, r);
    const metadata = action === "Deny" ? undefined : metadataAddressIn(net, except);
    if (metadata) {
      r.warn("cidr-allows-metadata", [...cp, "cidr"], `${c.cidr} includes ${metadata}, a cloud metadata service (node credentials)`,
        "add except: [169.254.0.0/16] (and 100.100.100.200/32, fd00:ec2::254/128 as needed), or match the internet with external: true, which never matches loopback, link-local or metadata addresses");
    }
    cidrs.push({ network: net, except });
  });
  return cidrs;
}

function parseExcept(cidrText: string, net: Network, list: unknown[], cp: Path, r: Reporter): Network[] {
  const except: Network[] = [];
  for (const [k, e] of list.entries()) {
    if (typeof e !== "string") continue;
    const ex = parseCidr(e);
    if (isProblem(ex)) { r.errAt("bad-cidr", [...cp, "except", k], ex.message, ex.hint); continue; }
    if (!networkContains(net, ex) || ex.prefix === net.prefix) {
      r.errAt("except-outside", [...cp, "except", k], `except ${e} is not strictly inside ${cidrText}`, `except entries must be smaller networks inside cidr ${cidrText}; remove it or fix the cidr`);
      continue;
    }
    except.push(ex);
  }
  return except;
}

function parsePorts(list: unknown[], path: Path, r: Reporter): PortRange[] {
  const ports: PortRange[] = [];
  list.forEach((p: unknown, j: number) => {
    if (!isObj(p) || typeof p.port !== "number") return;
    const pp: Path = [...path, "ports", j];
    const last = typeof p.endPort === "number" ? p.endPort : p.port;
    if (last < p.port) { r.errAt("port-range", [...pp, "endPort"], `endPort ${last} is below port ${p.port}`, `write the range low to high: port: ${last}, endPort: ${p.port}`); return; }
    ports.push({ first: p.port, last });
  });
  return ports;
}

function parseProtocols(list: unknown[], path: Path, r: Reporter): string[] {
  const protos: string[] = [];
  list.forEach((p: unknown, j: number) => {
    if (typeof p !== "string") return;
    const label = p.toLowerCase();
    if (!PROTOCOL_LABELS.includes(label)) {
      const alias = PROTOCOL_ALIASES[label];
      r.errAt("unknown-protocol", [...path, "protocols", j], `unknown protocol "${p}"`,
        `${alias ? `did you mean "${alias}"? ` : ""}known protocols: ${PROTOCOL_LABELS.join(", ")}`);
      return;
    }
    if (!protos.includes(label)) protos.push(label);
  });
  return protos;
}

function checkEncryptedClientHello(path: Path, rule: Rule, r: Reporter): void {
  const ep: Path = [...path, "encryptedClientHello"];
  if (!rule.domains) {
    r.errAt("ech-without-domains", ep, "encryptedClientHello: Allow accepts ECH connections to this rule's names, and the rule lists no to.domains",
      "add the names whose ECH connections this rule accepts (to.domains), or remove encryptedClientHello");
  } else if (rule.action === "Deny" || rule.action === "Pass") {
    r.errAt("ech-on-deny", ep, `encryptedClientHello: Allow has no effect on a ${rule.action} rule (ECH connections are only ever allowed by Allow/Alert rules)`,
      "remove encryptedClientHello, or put it on the Allow rule for these names");
  } else {
    rule.encryptedClientHello = "Allow";
  }
}

/** Shadowing: a rule that an earlier rule of the same policy always matches first. */
function warnShadowedRules(rules: Rule[], r: Reporter): void {
  for (let j = 0; j < rules.length; j++) {
    for (let i = 0; i < j; i++) {
      if (ruleCovers(rules[i]!, rules[j]!)) {
        r.warn("shadowed-rule", ["spec", "rules", j], `this rule can never match: spec.rules[${i}] (${rules[i]!.action}) matches every connection it matches, and the first match wins`,
          `move it above spec.rules[${i}], narrow spec.rules[${i}], or remove it`);
        break;
      }
    }
  }
}

function buildPolicy(obj: Obj, spec: Obj, id: Identity, selectors: { key: SelectorKey; value?: LabelSelector }[], rules: Rule[], ctx: ValidationContext): Policy {
  const { kind, name, namespace } = id;
  return {
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
