// Lease leader election (issue #13): replicas of egret control elect one leader on a
// coordination.k8s.io/v1 Lease in the in-test API server (create, PUT with resourceVersion → 409
// Conflict, as the real server). Clocks are passed in, so failover is driven round by round.
import { test } from "node:test";
import assert from "node:assert/strict";
import { silentLogger } from "../../src/common/log.js";
import { LeaderElector, kubeLeaseClient } from "../../src/k8s/leader.js";

import { FakeKube } from "../support/fake-kube.js";

async function cluster(t: import("node:test").TestContext) {
  const api = await new FakeKube().start();
  t.after(() => api.stop());
  let now = 1_700_000_000_000;
  const clock = { now: () => now, advance: (ms: number) => (now += ms) };
  const replica = (identity: string, clockOf: () => number = clock.now) => {
    const changes: boolean[] = [];
    const e = new LeaderElector({
      client: kubeLeaseClient(api.kubeConfig(), "egret-system", "egret-control"),
      identity,
      name: "egret-control",
      namespace: "egret-system",
      timing: { leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000 },
      now: clockOf,
      log: silentLogger(),
      onChange: (l) => changes.push(l),
    });
    return Object.assign(e, { changes });
  };
  const lease = () => api.get("leases", "egret-system", "egret-control") as { spec: { holderIdentity?: string; leaseTransitions?: number } } | undefined;
  return { api, clock, replica, lease };
}

test("leader election: exactly one of two replicas leads; the other stays a follower while the leader renews", async (t) => {
  const c = await cluster(t);
  const a = c.replica("control-a");
  const b = c.replica("control-b");
  assert.equal(await a.step(), true);
  assert.equal(await b.step(), false);
  for (let i = 0; i < 10; i++) {
    c.clock.advance(2_000);
    assert.equal(await a.step(), true);
    assert.equal(await b.step(), false);
  }
  assert.equal(c.lease()?.spec.holderIdentity, "control-a");
  assert.equal(c.lease()?.spec.leaseTransitions, 0);
  assert.deepEqual(b.changes, []);
});

test("leader election: when the leader stops renewing, another replica takes over after leaseDuration, and the old leader steps down", async (t) => {
  const c = await cluster(t);
  const a = c.replica("control-a");
  const b = c.replica("control-b");
  await a.step();
  await b.step();
  // control-a hangs (no rounds). Before leaseDuration has passed on b's clock, b waits.
  c.clock.advance(14_000);
  assert.equal(await b.step(), false);
  c.clock.advance(2_000);
  assert.equal(await b.step(), true, "b takes the Lease once a's renewal is older than leaseDuration");
  assert.equal(c.lease()?.spec.holderIdentity, "control-b");
  assert.equal(c.lease()?.spec.leaseTransitions, 1);
  // a wakes up: it sees b's fresh renewal and stops leading (never two writers).
  assert.equal(await a.step(), false);
  assert.deepEqual(a.changes, [true, false]);
  assert.deepEqual(b.changes, [true]);
});

test("leader election: a leader that cannot reach the API steps down after renewDeadline", async (t) => {
  const c = await cluster(t);
  const a = c.replica("control-a");
  await a.step();
  await c.api.stop();
  c.clock.advance(5_000);
  assert.equal(await a.step(), true, "still within renewDeadline");
  c.clock.advance(6_000);
  assert.equal(await a.step(), false, "renewDeadline passed without a renewal");
});

test("leader election: skewed clocks do not matter (expiry is judged on the observer's own clock); a stopped leader releases at once", async (t) => {
  const c = await cluster(t);
  const a = c.replica("control-a");
  // b's clock is an hour ahead: the Lease's renewTime looks ancient to it, yet b must not take over.
  const b = c.replica("control-b", () => c.clock.now() + 3_600_000);
  await a.step();
  assert.equal(await b.step(), false);
  c.clock.advance(2_000);
  await a.step();
  assert.equal(await b.step(), false);
  await a.stop();
  assert.equal(c.lease()?.spec.holderIdentity, "");
  assert.equal(await b.step(), true, "a released Lease is taken at once");
});

test("leader election: two candidates racing for a free Lease — the Lease's resourceVersion lets only one win", async (t) => {
  const c = await cluster(t);
  const a = c.replica("control-a");
  const b = c.replica("control-b");
  await a.step();
  await a.stop();
  const [ra, rb] = await Promise.all([c.replica("control-c").step(), b.step()]);
  assert.equal(Number(ra) + Number(rb), 1, "exactly one leader");
});
