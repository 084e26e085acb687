// The `egret` command: a thin dispatcher. Each subcommand is a module in ./commands/ that
// exports `command: CliCommand`; they are discovered at run time, so adding a command never
// touches this file.
import { readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import type { CliCommand } from "./command.js";

async function loadCommands(): Promise<Map<string, CliCommand>> {
  const dir = join(dirname(fileURLToPath(import.meta.url)), "commands");
  const found = new Map<string, CliCommand>();
  for (const file of readdirSync(dir).filter((f) => f.endsWith(".js")).sort()) {
    const mod = (await import(pathToFileURL(join(dir, file)).href)) as { command?: CliCommand };
    if (mod.command) found.set(mod.command.name, mod.command);
  }
  return found;
}

function usage(commands: Map<string, CliCommand>): string {
  const width = Math.max(...[...commands.keys()].map((n) => n.length), 4);
  const lines = [...commands.values()].map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`);
  return `usage: egret <command> [options]\n\ncommands:\n${lines.join("\n")}\n\nRun \`egret <command> --help\` for a command's options.\n`;
}

export async function run(argv: string[]): Promise<number> {
  const commands = await loadCommands();
  const [name, ...rest] = argv;
  if (!name || name === "--help" || name === "-h" || name === "help") {
    process.stdout.write(usage(commands));
    return name ? 0 : 2;
  }
  const cmd = commands.get(name);
  if (!cmd) {
    process.stderr.write(`egret: unknown command "${name}".\n\n${usage(commands)}`);
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
