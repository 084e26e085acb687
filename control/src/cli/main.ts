// The `egret` command: a thin dispatcher. Each subcommand is a module ./commands/<name>.js that
// exports `command: CliCommand`; they are discovered at run time, so adding a command never
// touches this file. Only the requested command's module is loaded, so one command's
// dependencies (or a broken module) never affect another; `egret --help` loads them all and
// lists the ones that fail to load.
import { readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import type { CliCommand } from "./command.js";

const commandsDir = join(dirname(fileURLToPath(import.meta.url)), "commands");

async function loadCommand(file: string): Promise<CliCommand | undefined> {
  const mod = (await import(pathToFileURL(join(commandsDir, file)).href)) as { command?: CliCommand };
  return mod.command;
}

async function loadCommands(): Promise<Map<string, CliCommand>> {
  const found = new Map<string, CliCommand>();
  for (const file of readdirSync(commandsDir).filter((f) => f.endsWith(".js")).sort()) {
    try {
      const cmd = await loadCommand(file);
      if (cmd) found.set(cmd.name, cmd);
    } catch (err) {
      const name = file.replace(/\.js$/, "");
      found.set(name, { name, summary: `(unavailable: ${(err as Error).message.split("\n")[0]})`, run: async () => { throw err; } });
    }
  }
  return found;
}

function usage(commands: Map<string, CliCommand>): string {
  const width = Math.max(...[...commands.keys()].map((n) => n.length), 4);
  const lines = [...commands.values()].map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`);
  return `usage: egret <command> [options]\n\ncommands:\n${lines.join("\n")}\n\nRun \`egret <command> --help\` for a command's options.\n`;
}

export async function run(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === "--help" || name === "-h" || name === "help") {
    process.stdout.write(usage(await loadCommands()));
    return name ? 0 : 2;
  }
  // Command modules are named after their command; a name outside [a-z-] is never a file path.
  const file = /^[a-z][a-z0-9-]*$/.test(name) ? `${name}.js` : "";
  const cmd = file && readdirSync(commandsDir).includes(file) ? await loadCommand(file) : undefined;
  if (!cmd || cmd.name !== name) {
    process.stderr.write(`egret: unknown command "${name}".\n\n${usage(await loadCommands())}`);
    return 2;
  }
  try {
    return await cmd.run(rest);
  } catch (err) {
    const e = err as Error & { exitCode?: number };
    process.stderr.write(`egret ${name}: ${e.message}\n`);
    return e.exitCode ?? 1;
  }
}
