// Kubernetes Events for bypass reports (control/src/k8s/bypass-events.ts): one EgressBypass Warning
// per (pod, cause, protocol, destination) per interval, later ones counted into the next; a global
// token bucket, so a pod spraying UDP at many destinations cannot flood the API server.
import { test } from "node:test";
import assert from "node:assert/strict";
import { silentLogger } from "../../src/common/log.js";
import { createControlMetrics } from "../../src/control/metrics.js";
import type { BypassRecord } from "../../src/control/bypass.js";
import { BypassEventRecorder } from "../../src/k8s/bypass-events.js";
import type { KubeEvent } from "../../src/k8s/events.js";

function record(dst: string, extra: Partial<BypassRecord> = {}): BypassRecord {
  return {
    kind: "egret.bypass", time: "", pod: "shop/checkout", src: "198.18.1.10:40000", dst, protocol: "quic", cause: "udp-not-captured", detail: "quic/1", packets: 1,
    names: ["api.example.com"], verdict: "allow", reason: "allowed", policy: "shop/checkout-egress", rule: "partner-api", agent_node: "node-1", ...extra,
  };
}

test("bypass Events: one per pod/cause/protocol/destination per interval (later ones counted), a global bucket against floods", async () => {
  let now = 1_000_000;
  const posted: KubeEvent[] = [];
  const metrics = createControlMetrics();
  const rec = new BypassEventRecorder({ createEvent: async (e) => void posted.push(e) }, silentLogger(), metrics, { now: () => now, limits: { perKeyIntervalMs: 60_000, ratePerSecond: 5, burst: 20 } });
  for (let i = 0; i < 5; i++) rec.bypass(record("198.51.100.7:443"));
  await Promise.resolve();
  assert.equal(posted.length, 1);
  assert.deepEqual([posted[0]!.reason, posted[0]!.type, posted[0]!.namespace, posted[0]!.podName], ["EgressBypass", "Warning", "shop", "checkout"]);
  assert.match(posted[0]!.message, /QUIC \(quic\/1\) to 198\.51\.100\.7:443 \(udp-not-captured: Istio's sidecar does not capture UDP\); the policy would have decided allow \(allowed by shop\/checkout-egress rule partner-api\)/);
  now += 60_001;
  rec.bypass(record("198.51.100.7:443"));
  await Promise.resolve();
  assert.equal(posted.length, 2);
  assert.match(posted[1]!.message, /\(5 times since /, "the 4 suppressed ones are counted into the next Event");
  // Attack: 1,000 destinations at once: the bucket (burst 20) bounds what reaches the API server.
  for (let i = 0; i < 1000; i++) rec.bypass(record(`203.0.${i >> 8}.${i & 255}:443`));
  await Promise.resolve();
  assert.ok(posted.length <= 2 + 20, `posted ${posted.length}`);
  assert.match(await metrics.registry.metrics(), /egret_control_kubernetes_events_total\{outcome="rate_limited"\} (\d+)/);
});
