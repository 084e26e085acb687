// `egret demo` (npm start): until the full mesh demo (control/src/demo/) is wired here, shows the
// filter working on this machine without root: real loopback connections through egret
// sidecar's proxy and the Node proxy-wasm host running egret.wasm.
import type { CliCommand } from "../command.js";
import { UsageError } from "../command.js";
import { runLocalDemo } from "../../sidecar/demo.js";

export const command: CliCommand = {
  name: "demo",
  summary: "show the filter at work: real local connections through egret sidecar (no root needed)",
  async run(argv) {
    if (argv.includes("--help") || argv.includes("-h")) {
      process.stdout.write("usage: egret demo [--wasm PATH]\n");
      return 0;
    }
    const i = argv.indexOf("--wasm");
    if (argv.some((a, k) => a.startsWith("-") && a !== "--wasm" && k !== i + 1)) throw new UsageError(`unknown option in: ${argv.join(" ")} (usage: egret demo [--wasm PATH])`);
    return runLocalDemo(process.stdout, i >= 0 ? argv[i + 1] : undefined);
  },
};
