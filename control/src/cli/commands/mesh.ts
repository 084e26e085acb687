// `egret mesh validate|run`: scenario files and the mesh-in-a-box (control/src/mesh/cli.ts).
// Loaded lazily: every `egret` invocation imports all command modules.
import type { CliCommand } from "../command.js";

export const command: CliCommand = {
  name: "mesh",
  summary: "validate scenario files, or run them in a mesh in a box (network namespaces, real servers)",
  async run(argv) {
    const { meshCommand } = await import("../../mesh/cli.js");
    return meshCommand(argv, (s) => process.stdout.write(`${s}\n`));
  },
};
