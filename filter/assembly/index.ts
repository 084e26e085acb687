// Entry of egret.wasm (skeleton; the ABI layer and filter land in issue 2).
import "./abi/abort";
export function proxy_abi_version_0_2_1(): void {}
export function malloc(size: usize): usize { return heap.alloc(size); }
export function proxy_on_context_create(id: u32, parent: u32): void {}
export function proxy_on_new_connection(id: u32): u32 { return 0; }
export function proxy_on_downstream_data(id: u32, n: u32, eos: u32): u32 { return 0; }
export function proxy_on_done(id: u32): u32 { return 1; }
export function proxy_on_delete(id: u32): void {}
