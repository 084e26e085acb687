// The minimal filter (filter/assembly/minimal/) as its own module, so its tests stay valid after
// egret.wasm switches to the enforcement filter.
export * from "../assembly/abi/exports";
import { registerRootContextFactory } from "../assembly/abi/registry";
import { createMinimalRoot } from "../assembly/minimal/filter";

registerRootContextFactory(createMinimalRoot);
