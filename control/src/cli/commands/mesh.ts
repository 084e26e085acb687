// `egret mesh validate|run`: scenario files and the mesh-in-a-box (control/src/mesh/cli.ts).
import type { CliCommand } from "../command.js";
import { meshCommand } from "../../mesh/cli.js";

export const command: CliCommand = {
  name: "mesh",
  summary: "validate scenario files, or run them in a mesh in a box (network namespaces, real servers)",
  run: (argv) => meshCommand(argv, (s) => process.stdout.write(`${s}\n`)),
};
