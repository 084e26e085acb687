// One Watch stream per sidecar (filter/assembly/egress/shared.ts): the built egret.wasm in the Node
// proxy-wasm host with Istio's default 2 workers (+ the main thread VM), against the scripted
// control of the host tests. Baseline, same run: the moment before the first tick, when every VM
// still runs its own stream, which is how every VM watched before the shared Watch.
import { egressWorld, eventually } from "../../control/test/host/egress-fixture.js";
import type { BenchCase } from "../harness.js";

const POLICY = `
apiVersion: egret.dev/v1alpha1
kind: EgressPolicy
metadata: {name: web-egress, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  rules:
    - {name: api, action: Allow, to: {domains: ["**.example.com"]}, ports: [{port: 443}]}
`;
const PREFIX = "egret.watch/shop/web-0/";

export const benchCase: BenchCase = {
  name: "one Watch stream per sidecar (Node host, egret.wasm, 2 workers + main)",
  async run(ctx) {
    const entries = Math.max(500, Math.round(5000 * ctx.scale));
    const resolutions: Array<[string, string, number]> = [];
    for (let i = 0; i < entries; i++) resolutions.push([`203.0.${i >> 8}.${i & 0xff}`, `svc${i}.example.com`, 3600]);
    const w = await egressWorld({ policy: POLICY, concurrency: 2, resolutions });
    try {
      const vms = [w.host.mainVm, ...w.host.workers];
      const vmBytes = () => vms.reduce((n, vm) => n + vm.u8().byteLength, 0);
      const sharedBytes = () => {
        let n = 0;
        for (const k of ["lease", "head", "base", ...Array.from({ length: 1024 }, (_, i) => `r${i}`)]) n += w.host.sharedData(PREFIX + k)?.value.length ?? 0;
        return n;
      };
      const streamsBefore = w.control.watchCount;
      const memBefore = vmBytes();
      await eventually(async () => { await w.tick(50); return w.control.watchCount === 1 && w.host.sharedData(PREFIX + "head") !== undefined; }, "one Watch stream for the sidecar", 30_000);
      // Let the followers load the published base (they sync on ticks and new connections).
      for (let i = 0; i < 5; i++) await w.tick(50);
      const streamsAfter = w.control.watchCount;
      const memAfter = vmBytes() + sharedBytes();
      ctx.log(`${entries} resolutions; wasm memory per VM ${vms.map((vm) => (vm.u8().byteLength / 2 ** 20).toFixed(1)).join(" / ")} MiB, shared data ${(sharedBytes() / 2 ** 20).toFixed(2)} MiB`);
      return [{
        name: "Watch streams per sidecar (main + 2 workers)", value: streamsAfter, unit: "streams",
        baseline: { name: "every VM its own stream (before the shared Watch)", value: streamsBefore, unit: "streams" },
        target: "1 per sidecar", meetsTarget: streamsAfter === 1,
      }, {
        name: `memory per sidecar: wasm memory of every VM + shared data, ${entries} resolutions`, value: memAfter / 2 ** 20, unit: "MiB",
        baseline: { name: "every VM its own stream", value: memBefore / 2 ** 20, unit: "MiB" },
        extra: { sharedDataMiB: sharedBytes() / 2 ** 20, controlStreamsSaved: streamsBefore - streamsAfter },
      }];
    } finally { await w.close(); }
  },
};
