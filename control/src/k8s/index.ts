// Kubernetes mode for egret control (see README.md).
export { KubeSource, kubeClients, POLICY_GROUP, POLICY_VERSION, type KubeSourceOptions } from "./source.js";
export { SupervisedInformer, DEFAULT_BACKOFF, type BackoffOptions } from "./supervise.js";
export { PolicyStatusWriter, type PolicyStatus, type StatusClient } from "./status.js";
export { DenyEventRecorder, DEFAULT_EVENT_LIMITS, type EventClient, type EventLimits, type KubeEvent } from "./events.js";
export { podRecordOf, namespaceLabelsOf } from "./convert.js";
export { LeaderElector, kubeLeaseClient, DEFAULT_LEADER_TIMING, type LeaseClient, type LeaderTiming } from "./leader.js";
export { kubeTokenReviewer, kubeBoundPodReader } from "./token-review.js";
