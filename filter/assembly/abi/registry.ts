// The dispatcher's state: the registered root factory and the live contexts of this VM.
// Context ids are per VM (reference/proxy-wasm.md §6.2); a VM is single-threaded.
import { RootContext, StreamContext, RootContextFactory } from "./context";

let factory: RootContextFactory | null = null;
export const roots = new Map<u32, RootContext>();
export const streams = new Map<u32, StreamContext>();

/** Registers the filter. Call from top-level code (runs in `_start`, which may not call the host). */
export function registerRootContextFactory(f: RootContextFactory): void {
  factory = f;
}

export function rootFactory(): RootContextFactory | null { return factory; }

/** Number of live stream contexts (for leak checks and gauges). */
export function liveStreamContexts(): i32 { return streams.size; }
