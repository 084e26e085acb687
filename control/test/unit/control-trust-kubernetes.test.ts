// Kubernetes-mode agent authentication (issue #13, docs/security.md), attacked: the real control
// service (KubeSource informers, TokenReview through @kubernetes/client-node) against the in-test
// API server, which signs ServiceAccount tokens and answers TokenReview as the real one does
// (support/fake-kube-tokens.ts). Agents present projected tokens with the audience
// `egret-control`; control accepts only egret-system:egret-agent and binds each stream to the node
// of the token's pod (spec.nodeName from the API).
import { test } from "node:test";
import assert from "node:assert/strict";
import { generateKeyPairSync, createSign } from "node:crypto";
import * as grpc from "@grpc/grpc-js";
import { silentLogger } from "../../src/common/log.js";
import { defaultPolicyApi } from "../../src/control/policy-api.js";
import { ControlService } from "../../src/control/service.js";
import { KubeSource, kubeBoundPodReader, kubeTokenReviewer } from "../../src/k8s/index.js";
import { TokenReviewAuthenticator } from "../../src/auth/token-review.js";
import { createAgentClient } from "../../src/proto/index.js";
import { FakeKube, kube } from "../support/fake-kube.js";
import { API_AUDIENCE, FakeServiceAccountTokens, decodeJwt, encodeJwt } from "../support/fake-kube-tokens.js";
import { bearer, observation, observe } from "../support/control-harness.js";

const AUDIENCE = "egret-control";
const NODE_A = "node-a";
const NODE_B = "node-b";

function agentPod(name: string, node: string, ip: string) {
  return kube.pod("egret-system", name, ip, { app: "egret-agent" }, { hostNetwork: true, nodeName: node });
}

async function setup(t: import("node:test").TestContext, cache = {}) {
  const api = await new FakeKube().start();
  const tokens = new FakeServiceAccountTokens(api);
  api.upsert("namespaces", kube.namespace("egret-system"));
  api.upsert("namespaces", kube.namespace("shop"));
  tokens.serviceAccount("egret-system", "egret-agent");
  tokens.serviceAccount("shop", "default");
  api.upsert("pods", agentPod("egret-agent-a", NODE_A, "198.18.0.1"));
  api.upsert("pods", agentPod("egret-agent-b", NODE_B, "198.18.0.2"));
  api.upsert("pods", kube.pod("shop", "web-1", "198.18.1.10", { app: "web" }, { nodeName: NODE_A }));
  api.upsert("pods", kube.pod("shop", "remote-1", "198.18.2.10", { app: "web" }, { nodeName: NODE_B }));
  api.upsert("pods", kube.pod("shop", "attacker", "198.18.1.66", { app: "attacker" }, { nodeName: NODE_A }));
  const kc = api.kubeConfig();
  let outcomes: string[] = [];
  const auth = new TokenReviewAuthenticator({
    reviewer: kubeTokenReviewer(kc),
    pods: kubeBoundPodReader(kc),
    audience: AUDIENCE,
    serviceAccounts: ["egret-system:egret-agent"],
    cache,
    onReview: (o) => outcomes.push(o),
  });
  const source = new KubeSource({ kubeConfig: kc, policyApi: defaultPolicyApi, log: silentLogger(), backoff: { initialMs: 20, maxMs: 200 }, statusDebounceMs: 10 });
  const service = new ControlService({
    policyApi: defaultPolicyApi,
    source,
    log: silentLogger(),
    grpcListen: "127.0.0.1:0",
    audit: { write: () => undefined },
    agentAuth: auth,
  });
  t.after(async () => {
    await service.stop();
    await api.stop();
  });
  const { grpcPort } = await service.start();
  const agentToken = (pod: string, o: { audiences?: string[]; expirationSeconds?: number; issuedAtMs?: number } = {}) =>
    tokens.issue({ namespace: "egret-system", serviceAccount: "egret-agent", pod, audiences: o.audiences ?? [AUDIENCE], ...o });
  return {
    api,
    tokens,
    auth,
    service,
    address: `127.0.0.1:${grpcPort}`,
    agentToken,
    outcomes: () => {
      const o = outcomes;
      outcomes = [];
      return o;
    },
  };
}

function rejectsWith(code: grpc.status, egret?: string) {
  return (err: grpc.ServiceError) => {
    assert.equal(err.code, code, `status ${err.code} (${err.details})`);
    if (egret) assert.deepEqual(err.metadata.get("egret-error-code"), [egret]);
    return true;
  };
}

const FORGED = [observation("198.18.1.10", "api.partner.test", ["6.6.6.6"])];

async function authCount(service: ControlService, outcome: string): Promise<number> {
  const m = await service.metrics.agentAuth.get();
  return m.values.find((v) => v.labels.outcome === outcome)?.value ?? 0;
}

test("kubernetes: the node's agent token is accepted for its own node's pods; a second stream costs no TokenReview", async (t) => {
  const k = await setup(t);
  const token = k.agentToken("egret-agent-a");
  const ack = await observe(k.address, [observation("198.18.1.10", "api.partner.test", ["203.0.113.7"])], 1, false, token);
  assert.equal(ack.accepted_observations, 1);
  assert.equal(ack.rejected_observations, 0);
  assert.equal(k.service.store.entriesOf("198.18.1.10").length, 1);
  assert.equal(k.tokens.reviews, 1);
  await observe(k.address, [observation("198.18.1.10", "api.partner.test", ["203.0.113.8"])], 2, false, token);
  assert.equal(k.tokens.reviews, 1, "the second stream was served from the cache");
  assert.deepEqual(k.outcomes(), ["reviewed", "cache_hit"]);
});

test("kubernetes attack: a token of the agent on another node cannot deliver evidence for this node's pods (rejected_observations)", async (t) => {
  const k = await setup(t);
  const tokenB = k.agentToken("egret-agent-b");
  const ack = await observe(k.address, [...FORGED, observation("198.18.2.10", "api.partner.test", ["203.0.113.9"])], 1, false, tokenB);
  assert.equal(ack.rejected_observations, 1, "web-1 runs on node-a: node-b's agent may not speak for it");
  assert.equal(ack.accepted_observations, 1, "remote-1 is node-b's own pod");
  assert.equal(k.service.store.entriesOf("198.18.1.10").length, 0);
  const foreign = await k.service.metrics.foreignNodeObservations.get();
  assert.equal(foreign.values.find((v) => v.labels.agent_node === NODE_B)?.value, 1);
});

test("kubernetes attack: a token with the wrong audience (the API server's own) ends UNAUTHENTICATED", async (t) => {
  const k = await setup(t);
  const apiToken = k.agentToken("egret-agent-a", { audiences: [API_AUDIENCE] });
  await assert.rejects(observe(k.address, FORGED, 1, false, apiToken), rejectsWith(grpc.status.UNAUTHENTICATED, "EGRET_AGENT_UNAUTHENTICATED"));
  assert.equal(k.service.store.entriesOf("198.18.1.10").length, 0);
  assert.equal(await authCount(k.service, "invalid"), 1);
});

test("kubernetes attack: another ServiceAccount's token (a pod's own projected token, right audience) ends UNAUTHENTICATED", async (t) => {
  const k = await setup(t);
  const podToken = k.tokens.issue({ namespace: "shop", serviceAccount: "default", pod: "attacker", audiences: [AUDIENCE] });
  await assert.rejects(observe(k.address, FORGED, 1, false, podToken), rejectsWith(grpc.status.UNAUTHENTICATED, "EGRET_AGENT_UNAUTHENTICATED"));
  assert.equal(k.service.store.entriesOf("198.18.1.10").length, 0);
  assert.equal(await authCount(k.service, "forbidden"), 1);
});

test("kubernetes attack: an expired token is refused without a TokenReview; a stream ends when its token expires and the rotated token is accepted", async (t) => {
  const k = await setup(t);
  const expired = k.agentToken("egret-agent-a", { issuedAtMs: Date.now() - 2 * 3600_000, expirationSeconds: 3600 });
  await assert.rejects(observe(k.address, FORGED, 1, false, expired), rejectsWith(grpc.status.UNAUTHENTICATED, "EGRET_AGENT_UNAUTHENTICATED"));
  assert.equal(k.tokens.reviews, 0);
  assert.equal(await authCount(k.service, "expired"), 1);

  // A token that expires while its stream is open: the stream ends then, with its own code.
  const short = k.agentToken("egret-agent-a", { expirationSeconds: 3 });
  const client = createAgentClient(k.address);
  t.after(() => client.close());
  const call = client.Observe(bearer(short));
  const ended = new Promise<grpc.ServiceError>((resolve) => call.on("error", resolve));
  const acked = new Promise((resolve) => call.once("data", resolve));
  call.write({ agent_id: "agent-a", sequence: 1, observations: [observation("198.18.1.10", "api.partner.test", ["203.0.113.7"])], replay: false });
  await acked;
  const err = await ended;
  assert.equal(err.code, grpc.status.UNAUTHENTICATED);
  assert.deepEqual(err.metadata.get("egret-error-code"), ["EGRET_AGENT_TOKEN_EXPIRED"]);
  assert.equal(k.service.store.entriesOf("198.18.1.10").length, 1, "what the stream delivered before expiry stays");
  // The kubelet rotated the projected token: the reconnect presents the new one.
  const rotated = k.agentToken("egret-agent-a");
  assert.equal((await observe(k.address, [observation("198.18.1.10", "b.partner.test", ["203.0.113.8"])], 1, false, rotated)).accepted_observations, 1);
});

test("kubernetes attack: forged pod claims (edited payload, alg none, another key) end UNAUTHENTICATED", async (t) => {
  const k = await setup(t);
  const real = decodeJwt(k.agentToken("egret-agent-b"));
  const podA = k.api.get("pods", "egret-system", "egret-agent-a")!;
  const claims = real.payload["kubernetes.io"] as Record<string, unknown>;
  // node-b's token, re-pointed at node-a's agent pod, keeping node-b's signature.
  const edited = encodeJwt({ ...real, payload: { ...real.payload, "kubernetes.io": { ...claims, pod: { name: "egret-agent-a", uid: podA.metadata.uid }, node: { name: NODE_A, uid: "x" } } } });
  const none = encodeJwt({ header: { alg: "none" }, payload: { ...real.payload, "kubernetes.io": { ...claims, pod: { name: "egret-agent-a", uid: podA.metadata.uid } } }, signature: "" });
  const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const input = `${Buffer.from(JSON.stringify(real.header)).toString("base64url")}.${Buffer.from(JSON.stringify({ ...real.payload, "kubernetes.io": { ...claims, pod: { name: "egret-agent-a", uid: podA.metadata.uid } } })).toString("base64url")}`;
  const otherKey = `${input}.${createSign("RSA-SHA256").update(input).sign(privateKey).toString("base64url")}`;
  for (const token of [edited, none, otherKey]) {
    await assert.rejects(observe(k.address, FORGED, 1, false, token), rejectsWith(grpc.status.UNAUTHENTICATED, "EGRET_AGENT_UNAUTHENTICATED"));
  }
  assert.equal(k.service.store.entriesOf("198.18.1.10").length, 0);
  assert.equal(await authCount(k.service, "invalid"), 3);
});

test("kubernetes attack: a validly signed agent token bound to no pod, or to a pod since deleted, is refused", async (t) => {
  const k = await setup(t);
  const unbound = k.tokens.issue({ namespace: "egret-system", serviceAccount: "egret-agent", audiences: [AUDIENCE] });
  await assert.rejects(observe(k.address, FORGED, 1, false, unbound), rejectsWith(grpc.status.UNAUTHENTICATED));
  assert.equal(await authCount(k.service, "forbidden"), 1);
  const stale = k.agentToken("egret-agent-a");
  k.api.delete("pods", "egret-system", "egret-agent-a");
  await assert.rejects(observe(k.address, FORGED, 1, false, stale), rejectsWith(grpc.status.UNAUTHENTICATED));
  // A new pod of the same name (a new UID) does not revive the old pod's token.
  k.api.upsert("pods", agentPod("egret-agent-a", NODE_A, "198.18.0.1"));
  await assert.rejects(observe(k.address, FORGED, 1, false, stale), rejectsWith(grpc.status.UNAUTHENTICATED));
  assert.equal(k.service.store.entriesOf("198.18.1.10").length, 0);
});

test("kubernetes: TokenReview unreachable ends the stream UNAVAILABLE (the agent retries) and is not cached", async (t) => {
  const k = await setup(t);
  const token = k.agentToken("egret-agent-a");
  k.tokens.failReviews = 1;
  await assert.rejects(observe(k.address, FORGED, 1, false, token), rejectsWith(grpc.status.UNAVAILABLE, "EGRET_AGENT_AUTH_UNAVAILABLE"));
  assert.equal(k.service.store.entriesOf("198.18.1.10").length, 0);
  const ack = await observe(k.address, [observation("198.18.1.10", "api.partner.test", ["203.0.113.7"])], 1, false, token);
  assert.equal(ack.accepted_observations, 1, "the next attempt is reviewed again and accepted");
  assert.deepEqual(k.outcomes(), ["error", "reviewed"]);
});

test("kubernetes: a flood of distinct forged tokens keeps the token cache bounded", async (t) => {
  const k = await setup(t, { maxEntries: 4 });
  const real = decodeJwt(k.agentToken("egret-agent-b"));
  for (let i = 0; i < 10; i++) {
    const forged = encodeJwt({ ...real, payload: { ...real.payload, jti: `forged-${i}` } });
    await assert.rejects(observe(k.address, FORGED, 1, false, forged), rejectsWith(grpc.status.UNAUTHENTICATED));
  }
  assert.ok(k.auth.cachedTokens <= 4, `${k.auth.cachedTokens} cached`);
  // A refused token is refused from the cache while it is remembered: no second review.
  const last = encodeJwt({ ...real, payload: { ...real.payload, jti: "forged-9" } });
  const before = k.tokens.reviews;
  await assert.rejects(observe(k.address, FORGED, 1, false, last), rejectsWith(grpc.status.UNAUTHENTICATED));
  assert.equal(k.tokens.reviews, before);
});

// ---- the authenticator alone, with a stub API (cases a faithful API server never produces) ----

function stubToken(expSeconds: number): string {
  const part = (v: unknown) => Buffer.from(JSON.stringify(v)).toString("base64url");
  return `${part({ alg: "RS256" })}.${part({ exp: expSeconds, jti: String(Math.random()) })}.sig`;
}

function stubAuth(status: Record<string, unknown>, pod: { uid?: string; nodeName?: string } | undefined, now: () => number, reviews: { n: number }) {
  return new TokenReviewAuthenticator({
    reviewer: { review: async () => (reviews.n++, status) },
    pods: { pod: async () => pod },
    audience: AUDIENCE,
    serviceAccounts: ["egret-system:egret-agent"],
    cache: { ttlMs: 60_000, maxEntries: 8 },
    now,
  });
}

const GOOD_USER = {
  username: "system:serviceaccount:egret-system:egret-agent",
  extra: { "authentication.kubernetes.io/pod-name": ["egret-agent-a"], "authentication.kubernetes.io/pod-uid": ["u1"] },
};

test("token review: an API server that ignores spec.audiences (answers for its own audience) is not trusted", async () => {
  const auth = stubAuth({ authenticated: true, user: GOOD_USER, audiences: [API_AUDIENCE] }, { uid: "u1", nodeName: NODE_A }, Date.now, { n: 0 });
  await assert.rejects(auth.authenticate(`Bearer ${stubToken(Date.now() / 1000 + 600)}`), (e: Error & { reason?: string }) => e.reason === "wrong_audience");
});

test("token review: the node comes from the pod in the API, and a token naming another node is refused", async () => {
  const ok = stubAuth({ authenticated: true, user: GOOD_USER, audiences: [AUDIENCE] }, { uid: "u1", nodeName: NODE_A }, Date.now, { n: 0 });
  assert.equal((await ok.authenticate(`Bearer ${stubToken(Date.now() / 1000 + 600)}`)).node, NODE_A);
  const user = { ...GOOD_USER, extra: { ...GOOD_USER.extra, "authentication.kubernetes.io/node-name": [NODE_B] } };
  const lying = stubAuth({ authenticated: true, user, audiences: [AUDIENCE] }, { uid: "u1", nodeName: NODE_A }, Date.now, { n: 0 });
  await assert.rejects(lying.authenticate(`Bearer ${stubToken(Date.now() / 1000 + 600)}`), (e: Error & { reason?: string }) => e.reason === "forbidden");
  const unscheduled = stubAuth({ authenticated: true, user: GOOD_USER, audiences: [AUDIENCE] }, { uid: "u1" }, Date.now, { n: 0 });
  await assert.rejects(unscheduled.authenticate(`Bearer ${stubToken(Date.now() / 1000 + 600)}`), (e: Error & { reason?: string }) => e.reason === "forbidden");
});

test("token review: a cached positive is trusted for the TTL and never past the token's exp; a non-JWT costs no review", async () => {
  let now = 1_000_000_000_000;
  const reviews = { n: 0 };
  const auth = stubAuth({ authenticated: true, user: GOOD_USER, audiences: [AUDIENCE] }, { uid: "u1", nodeName: NODE_A }, () => now, reviews);
  const long = `Bearer ${stubToken(now / 1000 + 3600)}`;
  const id = await auth.authenticate(long);
  assert.equal(id.expiresAtMs, now + 3600_000);
  await auth.authenticate(long);
  assert.equal(reviews.n, 1);
  now += 61_000;
  await auth.authenticate(long);
  assert.equal(reviews.n, 2, "reviewed again after the cache TTL");
  const short = `Bearer ${stubToken(now / 1000 + 10)}`;
  await auth.authenticate(short);
  now += 11_000;
  await assert.rejects(auth.authenticate(short), (e: Error & { reason?: string }) => e.reason === "expired");
  assert.equal(reviews.n, 3);
  await assert.rejects(auth.authenticate("Bearer not-a-jwt"), (e: Error & { reason?: string }) => e.reason === "malformed");
  assert.equal(reviews.n, 3);
});
