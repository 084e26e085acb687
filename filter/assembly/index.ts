// Entry of egret.wasm: the proxy-wasm exports, the pure tool exports, and the filter registration.
export * from "./abi/exports";
import { registerRootContextFactory } from "./abi/registry";
import { createEgressRoot } from "./egress/root";

// Tool exports (pure logic the CLI runs from this same module) — one line per module:
export * from "./tools/detect";
export * from "./tools/engine";

registerRootContextFactory(createEgressRoot);
