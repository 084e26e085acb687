// Probe module for the host tests: imports proxy_get_configuration, which Envoy registers only
// for ABI 0.1.0 modules (reference/proxy-wasm.md §1.1), so linking must fail.
export * from "../assembly/abi/exports";

// @ts-ignore: decorator
@external("env", "proxy_get_configuration") declare function proxy_get_configuration(ptrPtr: usize, lenPtr: usize): u32;

export function probe_use_configuration(): u32 { return proxy_get_configuration(0, 0); }
