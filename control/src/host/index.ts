// Public API of the Node proxy-wasm host (see README.md).
export { EnvoyHost, type EnvoyHostOptions, type VmStatus } from "./envoy-host.js";
export { Connection, type ConnectionOptions, type CloseInfo, type ClosedBy, type ConnectionState, type FailurePolicy } from "./connection.js";
export { ManualClock, RealClock, type Clock } from "./clock.js";
export { LinkError, linkCheck } from "./link.js";
export { encodePairs, decodePairs } from "./pairs.js";
export { parseGrpcService } from "./grpc-callouts.js";
export { promName } from "./metrics.js";
export type { NodeIdentity } from "./properties.js";
export type { LogEntry } from "./services.js";
export { LogLevel, Status } from "./abi.js";
