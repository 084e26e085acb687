// `egret sidecar`: local enforcement with the real filter (see control/src/sidecar/README.md).
import type { CliCommand } from "../command.js";
import { createLogger } from "../../common/log.js";
import { parseSidecarArgs, startSidecar, SIDECAR_USAGE, loadOriginalDst } from "../../sidecar/index.js";

export const command: CliCommand = {
  name: "sidecar",
  summary: "run the proxy-wasm filter in a local TCP proxy (iptables REDIRECT, fixed target or PROXY protocol)",
  async run(argv) {
    const config = parseSidecarArgs(argv);
    if (config === "help") { process.stdout.write(SIDECAR_USAGE); return 0; }
    if (config.mode.kind === "original-dst") loadOriginalDst(); // fail now, with the fix, not per connection
    const logger = createLogger("sidecar", config.logLevel);
    const sidecar = await startSidecar(config, logger);
    logger.info({ listen: sidecar.listen, admin: sidecar.admin, mode: config.mode.kind, wasm: config.wasm, concurrency: config.concurrency }, "egret sidecar listening");
    await new Promise<void>((resolve) => {
      const stop = (signal: string): void => {
        logger.info({ signal }, "shutting down");
        sidecar.stop().then(resolve, (e) => { logger.error({ err: e }, "shutdown failed"); resolve(); });
      };
      process.once("SIGTERM", () => stop("SIGTERM"));
      process.once("SIGINT", () => stop("SIGINT"));
    });
    return 0;
  },
};
