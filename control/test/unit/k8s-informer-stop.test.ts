// A supervised informer stopped while its watch is still connecting must not leave that watch
// open when the answer arrives: client-node's ListWatch.stop() aborts only the request it already
// holds, so the late watch stayed open and kept `egret control` alive after SIGTERM (found as a
// hung e2e run: control-cli's --kubernetes test waited for an exit that never came).
import { test } from "node:test";
import assert from "node:assert/strict";
import { CoreV1Api } from "@kubernetes/client-node";
import { FakeKube } from "../support/fake-kube.js";
import { SupervisedInformer } from "../../src/k8s/supervise.js";
import { silentLogger } from "../../src/common/log.js";
import { eventually } from "../support/control-harness.js";

test("an informer stopped while its watch is still connecting closes that watch when it connects", async (t) => {
  const api = await new FakeKube().start();
  t.after(() => api.stop());
  api.holdWatches("namespaces");
  const kc = api.kubeConfig();
  const core = kc.makeApiClient(CoreV1Api);
  const inf = new SupervisedInformer({
    name: "namespaces", kubeConfig: kc, path: "/api/v1/namespaces", list: () => core.listNamespace(),
    onUpsert: () => undefined, onDelete: () => undefined, log: silentLogger(),
  });
  await inf.start(); // the list answered; the watch request is on its way and held
  await eventually(() => api.requests.some((r) => r.collection === "namespaces" && r.watch), "the watch request");
  await inf.stop();
  // The answer arrives after stop(): the server opens the stream; the client must close it.
  api.releaseWatches("namespaces");
  assert.equal(api.openWatches("namespaces"), 1, "the server answered the held watch");
  await eventually(() => api.openWatches("namespaces") === 0, "the client to close the watch that connected after stop()");
  assert.equal(api.requests.filter((r) => r.collection === "namespaces" && r.watch).length, 1, "and no new one was started");
});

test("an informer stopped before its watch started never opens one", async (t) => {
  const api = await new FakeKube().start();
  t.after(() => api.stop());
  const kc = api.kubeConfig();
  const core = kc.makeApiClient(CoreV1Api);
  let stop: (() => Promise<void>) | undefined;
  const inf = new SupervisedInformer({
    name: "namespaces", kubeConfig: kc, path: "/api/v1/namespaces",
    // stop() lands while the list is running: the watch that would follow must not be opened.
    list: async () => { const l = await core.listNamespace(); await stop!(); return l; },
    onUpsert: () => undefined, onDelete: () => undefined, log: silentLogger(),
  });
  stop = () => inf.stop();
  await inf.start();
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(api.openWatches("namespaces"), 0);
  assert.equal(api.requests.filter((r) => r.collection === "namespaces" && r.watch).length, 0);
});
