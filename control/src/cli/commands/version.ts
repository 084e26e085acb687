import { readFileSync } from "node:fs";
import type { CliCommand } from "../command.js";

export const command: CliCommand = {
  name: "version",
  summary: "print the egret version",
  async run() {
    const pkg = JSON.parse(readFileSync(new URL("../../../../../package.json", import.meta.url), "utf8")) as { version: string };
    process.stdout.write(`egret ${pkg.version}\n`);
    return 0;
  },
};
