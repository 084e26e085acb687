// Probe module for the host tests: defines a metric from top-level code, which runs in `_start`,
// where Envoy forbids every hostcall but logging (reference/proxy-wasm.md §1.5). Loading it must
// fail with restricted_callback.
export * from "../assembly/abi/exports";
import { counter } from "../assembly/abi/metrics";
import { log } from "../assembly/abi/hostcalls";
import { LogLevel } from "../assembly/abi/enums";

log(LogLevel.Info, "top-level log is allowed");
counter("defined_too_early");
