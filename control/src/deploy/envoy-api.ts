// The slice of Envoy's v3 API that Egret's EnvoyFilter writes, as field tables, so the offline
// checks can reject a misspelled or misplaced field before istiod does (istiod converts the
// patch value with protojson: an unknown field makes it reject the whole EnvoyFilter, which
// then silently leaves every sidecar without the filter). Field names, oneofs, enums and
// required fields are those of envoy/api v3 (extensions/filters/network/wasm/v3/wasm.proto,
// extensions/wasm/v3/wasm.proto, config/core/v3/{base,http_uri,config_source,extension,
// grpc_service}.proto, config/listener/v3/listener_components.proto) and
// google/protobuf/wrappers.proto.

type FieldType =
  | { t: "string"; pattern?: RegExp }
  | { t: "bool" } | { t: "uint32" } | { t: "duration" } | { t: "bytes" }
  | { t: "enum"; values: string[] }
  | { t: "message"; type: string }
  | { t: "any" }                       // google.protobuf.Any: {"@type": url, ...fields of that type}
  | { t: "repeated"; of: FieldType }
  | { t: "map"; of: FieldType }
  | { t: "opaque" };                   // a message we accept without looking inside

interface MessageSpec {
  fields: Record<string, FieldType>;
  required?: string[];
  /** Groups of fields of which at most one may be set (protobuf oneof); `exactlyOne` when required. */
  oneofs?: { fields: string[]; required?: boolean }[];
}

const str: FieldType = { t: "string" };
const msg = (type: string): FieldType => ({ t: "message", type });

export const TYPE_URL_PREFIX = "type.googleapis.com/";
export const WASM_NETWORK_TYPE = "envoy.extensions.filters.network.wasm.v3.Wasm";
export const RBAC_NETWORK_TYPE = "envoy.extensions.filters.network.rbac.v3.RBAC";

export const MESSAGES: Record<string, MessageSpec> = {
  [WASM_NETWORK_TYPE]: { fields: { config: msg("envoy.extensions.wasm.v3.PluginConfig") } },
  "envoy.extensions.wasm.v3.PluginConfig": {
    fields: {
      name: str, root_id: str, vm_config: msg("envoy.extensions.wasm.v3.VmConfig"), configuration: { t: "any" },
      fail_open: { t: "bool" }, capability_restriction_config: { t: "opaque" },
      failure_policy: { t: "enum", values: ["UNSPECIFIED", "FAIL_RELOAD", "FAIL_CLOSED", "FAIL_OPEN"] },
      reload_config: { t: "opaque" },
    },
    oneofs: [{ fields: ["vm_config"] }],
  },
  "envoy.extensions.wasm.v3.VmConfig": {
    fields: {
      vm_id: str, runtime: { t: "string", pattern: /^envoy\.wasm\.runtime\.(v8|null|wamr|wasmtime)$/ },
      code: msg("envoy.config.core.v3.AsyncDataSource"), configuration: { t: "any" }, allow_precompiled: { t: "bool" },
      nack_on_code_cache_miss: { t: "bool" }, environment_variables: msg("envoy.extensions.wasm.v3.EnvironmentVariables"),
    },
    required: ["runtime"],
  },
  "envoy.extensions.wasm.v3.EnvironmentVariables": {
    fields: { host_env_keys: { t: "repeated", of: str }, key_values: { t: "map", of: str } },
  },
  "envoy.config.core.v3.AsyncDataSource": {
    fields: { local: msg("envoy.config.core.v3.DataSource"), remote: msg("envoy.config.core.v3.RemoteDataSource") },
    oneofs: [{ fields: ["local", "remote"], required: true }],
  },
  "envoy.config.core.v3.DataSource": {
    fields: { filename: str, inline_bytes: { t: "bytes" }, inline_string: str, environment_variable: str, watched_directory: { t: "opaque" } },
    oneofs: [{ fields: ["filename", "inline_bytes", "inline_string", "environment_variable"], required: true }],
  },
  "envoy.config.core.v3.RemoteDataSource": {
    fields: { http_uri: msg("envoy.config.core.v3.HttpUri"), sha256: { t: "string", pattern: /^.+$/ }, retry_policy: msg("envoy.config.core.v3.RetryPolicy") },
    required: ["http_uri", "sha256"],
  },
  "envoy.config.core.v3.RetryPolicy": {
    fields: { retry_back_off: { t: "opaque" }, num_retries: { t: "uint32" }, retry_on: str, retry_priority: { t: "opaque" }, retry_host_predicate: { t: "opaque" }, host_selection_retry_max_attempts: { t: "uint32" } },
  },
  "envoy.config.core.v3.HttpUri": {
    fields: { uri: { t: "string", pattern: /^.+$/ }, cluster: { t: "string", pattern: /^.+$/ }, timeout: { t: "duration" } },
    required: ["uri", "cluster", "timeout"],
  },
  "envoy.config.core.v3.TypedExtensionConfig": {
    fields: { name: { t: "string", pattern: /^.+$/ }, typed_config: { t: "any" } },
    required: ["name", "typed_config"],
  },
  "envoy.config.listener.v3.Filter": {
    fields: { name: { t: "string", pattern: /^.+$/ }, typed_config: { t: "any" }, config_discovery: msg("envoy.config.core.v3.ExtensionConfigSource") },
    required: ["name"],
    oneofs: [{ fields: ["typed_config", "config_discovery"] }],
  },
  "envoy.config.core.v3.ExtensionConfigSource": {
    fields: {
      config_source: msg("envoy.config.core.v3.ConfigSource"), default_config: { t: "any" },
      apply_default_config_without_warming: { t: "bool" }, type_urls: { t: "repeated", of: { t: "string", pattern: /^type\.googleapis\.com\/[A-Za-z0-9_.]+$/ } },
    },
    required: ["config_source", "type_urls"],
  },
  "envoy.config.core.v3.ConfigSource": {
    fields: {
      authorities: { t: "opaque" }, path: str, path_config_source: { t: "opaque" }, api_config_source: { t: "opaque" },
      ads: msg("envoy.config.core.v3.AggregatedConfigSource"), self: { t: "opaque" },
      initial_fetch_timeout: { t: "duration" }, resource_api_version: { t: "enum", values: ["AUTO", "V2", "V3"] },
    },
    oneofs: [{ fields: ["path", "path_config_source", "api_config_source", "ads", "self"], required: true }],
  },
  "envoy.config.core.v3.AggregatedConfigSource": { fields: {} },
  "google.protobuf.StringValue": { fields: { value: str } },
  [RBAC_NETWORK_TYPE]: { fields: { rules: { t: "opaque" }, shadow_rules: { t: "opaque" }, stat_prefix: str, enforcement_type: { t: "opaque" } } },
};

/** A problem found at a dotted path inside the checked value. */
export interface ApiProblem { path: string; message: string }

const DURATION = /^-?[0-9]+(\.[0-9]{1,9})?s$/;

function checkField(path: string, type: FieldType, value: unknown, out: ApiProblem[]): void {
  switch (type.t) {
    case "string":
      if (typeof value !== "string") out.push({ path, message: "must be a string" });
      else if (type.pattern && !type.pattern.test(value)) out.push({ path, message: `"${value}" does not match ${type.pattern}` });
      return;
    case "bytes": if (typeof value !== "string") out.push({ path, message: "must be base64 text" }); return;
    case "bool": if (typeof value !== "boolean") out.push({ path, message: "must be true or false" }); return;
    case "uint32": if (!Number.isInteger(value) || (value as number) < 0) out.push({ path, message: "must be a non-negative integer" }); return;
    case "duration": if (typeof value !== "string" || !DURATION.test(value)) out.push({ path, message: `must be a duration like "10s" (got ${JSON.stringify(value)})` }); return;
    case "enum": if (typeof value !== "string" || !type.values.includes(value)) out.push({ path, message: `must be one of ${type.values.join(", ")} (got ${JSON.stringify(value)})` }); return;
    case "message": checkMessage(path, type.type, value, out); return;
    case "any": checkAny(path, value, out); return;
    case "repeated":
      if (!Array.isArray(value)) { out.push({ path, message: "must be a list" }); return; }
      value.forEach((v, i) => checkField(`${path}[${i}]`, type.of, v, out));
      return;
    case "map":
      if (typeof value !== "object" || value === null || Array.isArray(value)) { out.push({ path, message: "must be a mapping" }); return; }
      for (const [k, v] of Object.entries(value)) checkField(`${path}.${k}`, type.of, v, out);
      return;
    case "opaque":
      if (typeof value !== "object" || value === null) out.push({ path, message: "must be a mapping" });
      return;
  }
}

/** Checks a JSON value against one message type of the table. */
export function checkMessage(path: string, typeName: string, value: unknown, out: ApiProblem[] = []): ApiProblem[] {
  const spec = MESSAGES[typeName];
  if (!spec) { out.push({ path, message: `type ${typeName} is not one Egret's manifests should use` }); return out; }
  if (typeof value !== "object" || value === null || Array.isArray(value)) { out.push({ path, message: `must be a ${typeName} mapping` }); return out; }
  const rec = value as Record<string, unknown>;
  for (const [k, v] of Object.entries(rec)) {
    if (k === "@type") continue;
    const f = spec.fields[k];
    const here = path ? `${path}.${k}` : k;
    if (!f) { out.push({ path: here, message: `unknown field of ${typeName} (known: ${Object.keys(spec.fields).join(", ")})` }); continue; }
    checkField(here, f, v, out);
  }
  for (const r of spec.required ?? []) if (rec[r] === undefined) out.push({ path: path ? `${path}.${r}` : r, message: `required by ${typeName}` });
  for (const o of spec.oneofs ?? []) {
    const set = o.fields.filter((f) => rec[f] !== undefined);
    if (set.length > 1) out.push({ path, message: `only one of ${o.fields.join(", ")} may be set (oneof); found ${set.join(", ")}` });
    if (o.required && set.length === 0) out.push({ path, message: `one of ${o.fields.join(", ")} is required` });
  }
  return out;
}

/** Checks a google.protobuf.Any in its JSON form: a known "@type" plus that type's fields. */
export function checkAny(path: string, value: unknown, out: ApiProblem[] = []): ApiProblem[] {
  if (typeof value !== "object" || value === null) { out.push({ path, message: "must be an Any mapping with \"@type\"" }); return out; }
  const url = (value as Record<string, unknown>)["@type"];
  if (typeof url !== "string" || !url.startsWith(TYPE_URL_PREFIX)) {
    out.push({ path: `${path}.@type`, message: `must be "${TYPE_URL_PREFIX}<message>" (got ${JSON.stringify(url)})` });
    return out;
  }
  return checkMessage(path, url.slice(TYPE_URL_PREFIX.length), value, out);
}
