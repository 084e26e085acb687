// What every VM of one EnvoyHost shares: the "process" (stats, shared data, queues, gRPC
// channels, clock, log sink) and the plugin's configuration (reference/proxy-wasm.md §6).
import type { Clock } from "./clock.js";
import type { StatStore } from "./metrics.js";
import type { SharedData, SharedQueues } from "./shared-state.js";
import type { GrpcChannels } from "./grpc-callouts.js";
import type { PropValue } from "./properties.js";
import type { WasmImport } from "./wasm-binary.js";
import type { AbiVersion } from "./signatures.js";
import type { WasmVm } from "./vm.js";

export interface LogEntry {
  vm: string;
  level: number;
  message: string;
  contextId?: number;
  /** True for lines the host itself wrote (VM failures, unsupported calls), not proxy_log. */
  host?: boolean;
}

export interface HostServices {
  readonly clock: Clock;
  readonly stats: StatStore;
  readonly sharedData: SharedData;
  readonly queues: SharedQueues;
  readonly grpc: GrpcChannels;
  readonly vmId: string;
  readonly vmConfig: Buffer;
  readonly pluginConfig: Buffer;
  readonly environment: Record<string, string>;
  /** Level reported by proxy_get_log_level; proxy_log below it is dropped. */
  readonly logLevel: number;
  /** Properties available in every context: plugin_*, xds.node, … (§4.3). */
  readonly rootProperties: Map<string, PropValue>;
  readonly link: { abi: AbiVersion; imports: WasmImport[] };
  log(entry: LogEntry): void;
  onVmFailed(vm: WasmVm): void;
}
