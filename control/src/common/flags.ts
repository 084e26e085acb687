// The one command-line flag parser: every `egret` command, the sidecar and the mesh's helper
// programs declare their flags as a table and read them through commander here, so they all
// accept the same syntax (`--flag value`, `--flag=value`, repeated flags, `-h`) and report the
// same errors. The table has node:util parseArgs' shape, and so does the result, so a command's
// code reads `values["grpc-listen"]` the same way whatever parses it.
import type { ParseArgsConfig } from "node:util";
import type { parseArgs } from "node:util";
import { Command, CommanderError, Option } from "commander";

/** A flag mistake (unknown flag, missing value, stray argument); the message says which. */
export class FlagError extends Error {}

type Parsed<T extends ParseArgsConfig> = ReturnType<typeof parseArgs<T>>;
/**
 * A flag: parseArgs' fields, plus `variadic` (with `multiple`): one flag takes every value up to
 * the next flag (`--policy a.yaml b.yaml`), as well as repeated flags.
 */
type Spec = NonNullable<ParseArgsConfig["options"]>[string] & { variadic?: boolean };

/** Parses `config.args` against the table `config.options` with commander. */
export function readFlags<T extends ParseArgsConfig>(config: T): Parsed<T> {
  const program = new Command()
    .exitOverride()
    .helpOption(false)
    .allowExcessArguments(config.allowPositionals === true)
    .configureOutput({ writeOut: () => undefined, writeErr: () => undefined, outputError: () => undefined });
  const attributes = new Map<string, { spec: Spec; attribute: string; negated: boolean }>();
  for (const [name, spec] of Object.entries(config.options ?? {}) as [string, Spec][]) {
    const variadic = spec.type === "string" && spec.multiple && (spec as Spec).variadic === true;
    const flags = `${spec.short ? `-${spec.short}, ` : ""}--${name}${spec.type === "string" ? (variadic ? " <value...>" : " <value>") : ""}`;
    const option = new Option(flags);
    // A repeated flag collects its values (parseArgs' `multiple`); only a `variadic` one also
    // takes the arguments that follow it.
    if (spec.type === "string" && spec.multiple && !variadic) option.argParser((v: string, previous: string[] | undefined) => [...(previous ?? []), v]);
    program.addOption(option);
    attributes.set(name, { spec, attribute: option.attributeName(), negated: option.negate });
  }
  try {
    program.parse(config.args ?? process.argv.slice(2), { from: "user" });
  } catch (e) {
    if (e instanceof CommanderError) throw new FlagError(e.message.replace(/^error: /, ""));
    throw e;
  }
  const opts = program.opts();
  const values: Record<string, unknown> = {};
  for (const [name, { spec, attribute, negated }] of attributes) {
    // A flag named "no-x" is an ordinary boolean here, not commander's negation of "x".
    const given = negated ? (opts[attribute] === false ? true : undefined) : opts[attribute];
    const value = given ?? spec.default;
    if (value !== undefined) values[name] = value;
  }
  return { values, positionals: program.args, tokens: undefined } as unknown as Parsed<T>;
}
