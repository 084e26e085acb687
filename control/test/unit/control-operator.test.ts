// OperatorService (`egret observe`, `egret status`) against the real control service over real
// gRPC sockets: who may call it (nobody by default), and the scoping attack — a caller who may
// not read namespace `lab` sees none of lab's verdicts (retained, live, or as drop counts) and
// none of its status rows, in file mode (--operator-token-file) and in Kubernetes mode (TokenReview
// + SubjectAccessReview against the in-test API server). Also: a slow observer costs a bounded
// buffer and never blocks the filters' Report calls.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import { silentLogger } from "../../src/common/log.js";
import { FileOperatorAuthenticator, KubernetesOperatorAuthenticator } from "../../src/auth/operator-access.js";
import { KubeAccessReviewer } from "../../src/k8s/access-review.js";
import { KubeSource } from "../../src/k8s/index.js";
import { defaultPolicyApi } from "../../src/control/policy-api.js";
import { ControlService } from "../../src/control/service.js";
import {
  createFilterClient,
  createOperatorClient,
  ipToBytes,
  type GetStatusResponse,
  type ObserveVerdictsRequest,
  type ObserveVerdictsResponse,
  type Outgoing,
  type ReportResponse,
  type VerdictEvent,
} from "../../src/proto/index.js";
import { ControlFixture, WatchClient, bearer, egressPolicy, eventually, fromPod, loopbackOf, observe, observation } from "../support/control-harness.js";
import { FakeKube, kube } from "../support/fake-kube.js";
import { FakeAccessReviews } from "../support/fake-kube-authz.js";
import { API_AUDIENCE, FakeServiceAccountTokens } from "../support/fake-kube-tokens.js";

const BIN = join(fileURLToPath(new URL("../../../../", import.meta.url)), "bin", "egret.js");

/** Runs a program to its end without blocking the event loop (control runs in this process). */
function spawnAsync(cmd: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { env: { ...process.env, NO_COLOR: "1" } });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

const SHOP = { name: "web-1", namespace: "shop", ips: ["198.18.1.10"], labels: { app: "web" } };
const LAB = { name: "notebook-1", namespace: "lab", ips: ["198.18.1.20"], labels: { app: "notebook" } };
const ADMIN_TOKEN = "admin-token-0123456789abcdef";
const SHOP_TOKEN = "shop-token-0123456789abcdef";

async function fixture(t: import("node:test").TestContext, feedLimits = {}) {
  const dir = mkdtempSync(join(tmpdir(), "egE-operator-"));
  const tokens = join(dir, "operator-tokens");
  writeFileSync(tokens, `# operators\n${ADMIN_TOKEN} * admin\n${SHOP_TOKEN} shop shop-oncall\n`);
  const f = new ControlFixture(
    [SHOP, LAB],
    {
      "shop.yaml": egressPolicy("web-egress", "shop", { app: "web" }, ["api.shop.test"]),
      "lab.yaml": egressPolicy("lab-egress", "lab", { app: "notebook" }, ["api.lab.test"], { mode: "Monitor" }),
    },
    {},
    { operatorAccess: new FileOperatorAuthenticator(tokens, silentLogger()), feedLimits },
  );
  t.after(async () => {
    await f.stop();
    f.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });
  return f.start();
}

function event(pod: { ips: string[] }, verdict: VerdictEvent["verdict"], reason: VerdictEvent["reason"], policy: string, port = 443): Outgoing<VerdictEvent> {
  return {
    time_unix_ms: Date.now(), source_ip: ipToBytes(pod.ips[0]!), source_port: 40000, destination_ip: ipToBytes("198.19.2.30"), destination_port: port,
    verdict, reason, policy, rule: "r", mode: "POLICY_MODE_ENFORCE", names: ["api.example.test"], protocol: "tls",
  };
}

async function report(address: string, events: Outgoing<VerdictEvent>[]): Promise<ReportResponse> {
  const client = createFilterClient(address);
  try {
    return await new Promise<ReportResponse>((resolve, reject) => {
      const call = client.Report(new grpc.Metadata(), {}, (err, r) => (err ? reject(err) : resolve(r!)));
      call.write({ events });
      call.end();
    });
  } finally {
    client.close();
  }
}

/** Reports one deny from each pod (through its own address, as its filter would). */
async function reportBoth(f: ControlFixture): Promise<void> {
  await report(await f.filterAddress(SHOP), [event(SHOP, "VERDICT_DENY", "REASON_DEFAULT_DENY", "shop/web-egress")]);
  await report(await f.filterAddress(LAB), [event(LAB, "VERDICT_WOULD_DENY", "REASON_UNATTRIBUTED", "lab/lab-egress")]);
}

/** A whole non-follow ObserveVerdicts: the responses, or the error. */
function observeAll(address: string, token: string | undefined, request: Outgoing<ObserveVerdictsRequest> = {}): Promise<ObserveVerdictsResponse[]> {
  const client = createOperatorClient(address);
  return new Promise<ObserveVerdictsResponse[]>((resolve, reject) => {
    const out: ObserveVerdictsResponse[] = [];
    const call = client.ObserveVerdicts(request, token ? bearer(token) : new grpc.Metadata());
    call.on("data", (r: ObserveVerdictsResponse) => out.push(r));
    call.on("error", reject);
    call.on("end", () => resolve(out));
  }).finally(() => client.close());
}

function getStatus(address: string, token: string | undefined): Promise<GetStatusResponse> {
  const client = createOperatorClient(address);
  return new Promise<GetStatusResponse>((resolve, reject) => {
    client.GetStatus({}, token ? bearer(token) : new grpc.Metadata(), {}, (err, r) => (err ? reject(err) : resolve(r!)));
  }).finally(() => client.close());
}

/** A follow stream that records what arrives. */
class Follower {
  readonly verdicts: VerdictEvent[] = [];
  dropped = 0;
  historyDone = false;
  error?: grpc.ServiceError;
  readonly call: grpc.ClientReadableStream<ObserveVerdictsResponse>;
  private readonly client: ReturnType<typeof createOperatorClient>;
  constructor(address: string, token: string, request: Outgoing<ObserveVerdictsRequest> = {}) {
    this.client = createOperatorClient(address);
    this.call = this.client.ObserveVerdicts({ ...request, follow: true }, bearer(token));
    this.call.on("data", (r: ObserveVerdictsResponse) => {
      this.verdicts.push(...r.verdicts);
      this.dropped = Math.max(this.dropped, r.dropped_verdicts);
      if (r.history_done) this.historyDone = true;
    });
    this.call.on("error", (e: grpc.ServiceError) => (this.error = e));
  }
  close(): void {
    this.call.cancel();
    this.client.close();
  }
}

function rejectsWith(code: grpc.status, egret: string) {
  return (err: grpc.ServiceError) => {
    assert.equal(err.code, code, `status ${err.code} (${err.details})`);
    assert.deepEqual(err.metadata.get("egret-error-code"), [egret]);
    return true;
  };
}

const verdictsOf = (rs: ObserveVerdictsResponse[]) => rs.flatMap((r) => r.verdicts);

test("operator calls are refused without operator credentials configured, without a token, or with an unknown one", async (t) => {
  const closed = new ControlFixture([SHOP], {});
  t.after(async () => {
    await closed.stop();
    closed.cleanup();
  });
  await closed.start();
  await assert.rejects(observeAll(closed.address, ADMIN_TOKEN), rejectsWith(grpc.status.UNAUTHENTICATED, "EGRET_OPERATOR_UNAUTHENTICATED"));
  await assert.rejects(getStatus(closed.address, ADMIN_TOKEN), rejectsWith(grpc.status.UNAUTHENTICATED, "EGRET_OPERATOR_UNAUTHENTICATED"));
  const f = await fixture(t);
  for (const token of [undefined, "not-a-known-token-at-all"]) {
    await assert.rejects(observeAll(f.address, token), rejectsWith(grpc.status.UNAUTHENTICATED, "EGRET_OPERATOR_UNAUTHENTICATED"));
    await assert.rejects(getStatus(f.address, token), rejectsWith(grpc.status.UNAUTHENTICATED, "EGRET_OPERATOR_UNAUTHENTICATED"));
  }
  assert.match(await f.service.metrics.registry.metrics(), /egret_control_operator_auth_total\{outcome="invalid"\} 2/);
});

test("scoping attack (file mode): an operator of shop sees none of lab's verdicts, retained or live, and none of its status rows", async (t) => {
  const f = await fixture(t);
  await reportBoth(f);
  const admin = verdictsOf(await observeAll(f.address, ADMIN_TOKEN));
  assert.deepEqual(admin.map((e) => `${e.pod_namespace}/${e.pod_name}`), ["shop/web-1", "lab/notebook-1"]);
  const shop = await observeAll(f.address, SHOP_TOKEN);
  assert.deepEqual(verdictsOf(shop).map((e) => e.pod_namespace), ["shop"]);
  assert.ok(shop.at(-1)!.history_done, "the history ends with history_done");
  // Asking for lab by name is refused, not answered empty.
  await assert.rejects(observeAll(f.address, SHOP_TOKEN, { namespaces: ["lab"] }), rejectsWith(grpc.status.PERMISSION_DENIED, "EGRET_OPERATOR_FORBIDDEN"));

  const live = new Follower(f.address, SHOP_TOKEN);
  t.after(() => live.close());
  await eventually(() => live.historyDone, "the follower's history to end");
  await reportBoth(f);
  await report(await f.filterAddress(SHOP), [event(SHOP, "VERDICT_ALLOW", "REASON_ALLOWED", "shop/web-egress")]);
  await eventually(() => live.verdicts.length >= 2, "shop's two live verdicts");
  assert.deepEqual(live.verdicts.map((e) => `${e.pod_namespace} ${e.verdict}`), ["shop VERDICT_DENY", "shop VERDICT_ALLOW"]);

  const s = await getStatus(f.address, SHOP_TOKEN);
  assert.equal(s.cluster_visible, false);
  assert.deepEqual(s.replicas, []);
  assert.deepEqual(s.agents, []);
  assert.deepEqual(s.filters.map((x) => x.namespace), ["shop"]);
  assert.deepEqual(s.policies.map((p) => `${p.namespace}/${p.name}`), ["shop/web-egress"]);
  assert.deepEqual(s.denies.map((d) => `${d.namespace} ${d.reason} ${d.count}`), ["shop REASON_DEFAULT_DENY 2"]);
  const all = await getStatus(f.address, ADMIN_TOKEN);
  assert.equal(all.cluster_visible, true);
  assert.deepEqual(all.denies.map((d) => `${d.namespace} ${d.verdict} ${d.count}`).sort(), ["lab VERDICT_WOULD_DENY 2", "shop VERDICT_DENY 2"]);
  assert.deepEqual(all.policies.map((p) => `${p.name} ${p.mode} ${p.ready}`).sort(), ["lab-egress POLICY_MODE_MONITOR true", "web-egress POLICY_MODE_ENFORCE true"]);
  assert.equal(all.replicas.length, 1);
  assert.equal(all.replicas[0]!.leader, "LEADER_STATE_UNSPECIFIED");
  assert.ok(all.replicas[0]!.answering && all.replicas[0]!.ready);
});

test("observe filters travel to control: namespace, pod, verdict, reason, policy, since", async (t) => {
  const f = await fixture(t);
  await reportBoth(f);
  const pods = (req: Outgoing<ObserveVerdictsRequest>) => observeAll(f.address, ADMIN_TOKEN, req).then((rs) => verdictsOf(rs).map((e) => e.pod_name));
  assert.deepEqual(await pods({ namespaces: ["lab"] }), ["notebook-1"]);
  assert.deepEqual(await pods({ pods: ["shop/web-1"] }), ["web-1"]);
  assert.deepEqual(await pods({ pods: ["notebook-1"] }), ["notebook-1"]);
  assert.deepEqual(await pods({ verdicts: ["VERDICT_WOULD_DENY"] }), ["notebook-1"]);
  assert.deepEqual(await pods({ reasons: ["REASON_DEFAULT_DENY", "REASON_ALLOWED"] }), ["web-1"]);
  assert.deepEqual(await pods({ policies: ["lab/lab-egress"] }), ["notebook-1"]);
  assert.deepEqual(await pods({ since_unix_ms: Date.now() + 60_000 }), []);
  await assert.rejects(observeAll(f.address, ADMIN_TOKEN, { verdicts: ["VERDICT_UNSPECIFIED"] }), rejectsWith(grpc.status.INVALID_ARGUMENT, "EGRET_OBSERVE_BAD_FILTER"));
  await assert.rejects(observeAll(f.address, ADMIN_TOKEN, { pods: ["x".repeat(300)] }), rejectsWith(grpc.status.INVALID_ARGUMENT, "EGRET_OBSERVE_BAD_FILTER"));
});

test("a slow observer costs a bounded buffer: Report is never blocked, losses are counted and every event is delivered or counted", async (t) => {
  const f = await fixture(t, { subscriberBuffer: 8 });
  const slow = new Follower(f.address, ADMIN_TOKEN, { namespaces: ["shop"] });
  t.after(() => slow.close());
  await eventually(() => slow.historyDone, "the history to end");
  slow.call.pause();
  const sent = 3_000;
  const address = await f.filterAddress(SHOP);
  for (let i = 0; i < sent; i += 500) {
    const r = await report(address, Array.from({ length: 500 }, () => event(SHOP, "VERDICT_ALLOW", "REASON_ALLOWED", "shop/web-egress")));
    assert.equal(r.accepted_events, 500, "every report accepted while the observer does not read");
  }
  assert.match(await f.service.metrics.registry.metrics(), /egret_control_observe_dropped_total [1-9]/, "drops counted in the metric");
  slow.call.resume();
  await eventually(() => slow.verdicts.length + slow.dropped === sent, `delivered + dropped = ${sent} (have ${slow.verdicts.length} + ${slow.dropped})`, 20_000);
  assert.ok(slow.dropped > 0, "some were dropped");
  assert.ok(slow.verdicts.length < sent);
});

// ---- Kubernetes mode: TokenReview + SubjectAccessReview on the in-test API server ---------------

const WEB_IPS = ["198.18.1.10", loopbackOf({ ips: ["198.18.1.10"] })];
const NB_IPS = ["198.18.1.20", loopbackOf({ ips: ["198.18.1.20"] })];

async function kubeControl(t: import("node:test").TestContext, ttlMs: number) {
  const api = await new FakeKube().start();
  const reviews = new FakeAccessReviews().install(api);
  const tokens = new FakeServiceAccountTokens(api);
  api.upsert("namespaces", kube.namespace("shop"));
  api.upsert("namespaces", kube.namespace("lab"));
  api.upsert("pods", kube.pod("shop", "web-1", WEB_IPS, { app: "web" }, { nodeName: "node-1" }));
  api.upsert("pods", kube.pod("lab", "notebook-1", NB_IPS, { app: "notebook" }, { nodeName: "node-1" }));
  const kc = api.kubeConfig();
  const service = new ControlService({
    policyApi: defaultPolicyApi,
    source: new KubeSource({ kubeConfig: kc, policyApi: defaultPolicyApi, log: silentLogger(), statusDebounceMs: 10 }),
    log: silentLogger(),
    grpcListen: "127.0.0.1:0",
    audit: { write: () => undefined },
    operatorAccess: new KubernetesOperatorAuthenticator(new KubeAccessReviewer(kc), silentLogger(), { ttlMs }),
  });
  t.after(async () => {
    await service.stop();
    await api.stop();
  });
  const { grpcPort } = await service.start();
  const via = async (ips: string[]) => {
    const fw = await fromPod(`127.0.0.1:${grpcPort}`, { ips });
    t.after(() => fw.close());
    return fw.address;
  };
  /** A token of ServiceAccount ops/NAME for the API server's own audience (what kubectl create token gives). */
  const tokenOf = (name: string) => {
    tokens.serviceAccount("ops", name);
    return tokens.issue({ namespace: "ops", serviceAccount: name, audiences: [API_AUDIENCE] });
  };
  return { api, reviews, tokenOf, service, address: `127.0.0.1:${grpcPort}`, web: await via(WEB_IPS), notebook: await via(NB_IPS) };
}

test("scoping attack (Kubernetes): a user whose RBAC denies lab sees nothing of lab; a revoked RoleBinding or token ends what it could see", async (t) => {
  const k = await kubeControl(t, 200);
  const ALICE = "system:serviceaccount:ops:alice";
  const aliceToken = k.tokenOf("alice");
  const rootToken = k.tokenOf("root");
  k.reviews.allow({ subject: ALICE, verb: "list", group: "egret.dev", resource: "egresspolicies", namespace: "shop" });
  k.reviews.allow({ subject: "system:serviceaccount:ops:root", verb: "list", group: "egret.dev", resource: "egresspolicies", namespace: "*" });
  k.reviews.allow({ subject: "system:serviceaccount:ops:root", verb: "list", group: "egret.dev", resource: "clusteregresspolicies", namespace: "*" });
  await report(k.web, [event({ ips: WEB_IPS }, "VERDICT_DENY", "REASON_DEFAULT_DENY", "")]);
  await report(k.notebook, [event({ ips: NB_IPS }, "VERDICT_DENY", "REASON_DEFAULT_DENY", "")]);

  assert.deepEqual(verdictsOf(await observeAll(k.address, rootToken)).map((e) => e.pod_namespace), ["shop", "lab"]);
  assert.deepEqual(verdictsOf(await observeAll(k.address, aliceToken)).map((e) => e.pod_namespace), ["shop"]);
  assert.ok(k.reviews.accessReviews.some((r) => r.user === ALICE && r.namespace === "lab" && r.resource === "egresspolicies" && r.verb === "list" && !r.allowed));
  await assert.rejects(observeAll(k.address, aliceToken, { namespaces: ["lab"] }), rejectsWith(grpc.status.PERMISSION_DENIED, "EGRET_OPERATOR_FORBIDDEN"));
  await assert.rejects(observeAll(k.address, "mallory-token"), rejectsWith(grpc.status.UNAUTHENTICATED, "EGRET_OPERATOR_UNAUTHENTICATED"));

  const s = await getStatus(k.address, aliceToken);
  assert.equal(s.cluster_visible, false);
  assert.deepEqual(s.filters.map((x) => x.namespace), ["shop"]);
  assert.deepEqual(s.denies.map((d) => d.namespace), ["shop"]);
  assert.deepEqual((await getStatus(k.address, rootToken)).denies.map((d) => d.namespace).sort(), ["lab", "shop"]);

  // Live: alice follows; lab's verdicts never arrive; when her RoleBinding goes, shop's stop too.
  const live = new Follower(k.address, aliceToken);
  t.after(() => live.close());
  await eventually(() => live.historyDone, "history");
  await report(k.notebook, [event({ ips: NB_IPS }, "VERDICT_DENY", "REASON_DEFAULT_DENY", "")]);
  await report(k.web, [event({ ips: WEB_IPS }, "VERDICT_ALLOW", "REASON_ALLOWED", "")]);
  await eventually(() => live.verdicts.length >= 1, "shop's live verdict");
  assert.deepEqual(live.verdicts.map((e) => e.pod_namespace), ["shop"]);
  k.reviews.revoke(ALICE);
  await new Promise((r) => setTimeout(r, 300)); // past the 200 ms cache
  await report(k.web, [event({ ips: WEB_IPS }, "VERDICT_ALLOW", "REASON_ALLOWED", "")]);
  const marker = new Follower(k.address, rootToken);
  t.after(() => marker.close());
  await eventually(() => marker.historyDone, "a second observer is live");
  await report(k.web, [event({ ips: WEB_IPS }, "VERDICT_DENY", "REASON_DENIED_BY_RULE", "")]);
  await eventually(() => marker.verdicts.some((e) => e.reason === "REASON_DENIED_BY_RULE"), "the marker reached a live observer");
  assert.deepEqual(live.verdicts.map((e) => e.pod_namespace), ["shop"], "after the RoleBinding went, nothing more");
  // A token that stops being valid (its ServiceAccount deleted) ends the stream at the next check.
  const bobToken = k.tokenOf("bob");
  k.reviews.allow({ subject: "group:system:serviceaccounts:ops", verb: "list", group: "egret.dev", resource: "egresspolicies", namespace: "shop" });
  const bobs = new Follower(k.address, bobToken);
  t.after(() => bobs.close());
  await eventually(() => bobs.historyDone, "bob's history");
  k.api.delete("serviceaccounts", "ops", "bob");
  await new Promise((r) => setTimeout(r, 300));
  await report(k.web, [event({ ips: WEB_IPS }, "VERDICT_ALLOW", "REASON_ALLOWED", "")]);
  await eventually(() => bobs.error, "bob's stream to end");
  assert.equal(bobs.error!.code, grpc.status.UNAUTHENTICATED);
});

test("status counts agents with their capture drops and connected filters per namespace", async (t) => {
  const f = await fixture(t);
  await observe(f.address, [observation("198.18.1.10", "api.shop.test", ["198.19.2.30"])]);
  const w = new WatchClient(await f.filterAddress(SHOP), SHOP);
  t.after(() => w.close());
  await eventually(() => w.responses.length >= 1, "the snapshot");
  // An agent stream that stays open, reporting its drops.
  const { createAgentClient } = await import("../../src/proto/index.js");
  const agent = createAgentClient(f.address);
  const call = agent.Observe(bearer("test-agent-token-for-node-1"));
  t.after(() => { call.cancel(); agent.close(); });
  await new Promise<void>((resolve, reject) => {
    call.once("data", () => resolve());
    call.once("error", reject);
    call.write({ agent_id: "node-1/boot", sequence: 1, observations: [observation("198.18.1.10", "x.shop.test", ["198.19.2.31"])], capture_drops: 7 });
  });
  const s = await getStatus(f.address, ADMIN_TOKEN);
  const row = s.agents.find((a) => a.agent_id === "node-1/boot");
  assert.ok(row, JSON.stringify(s.agents));
  assert.equal(row.node, "node-1");
  assert.equal(row.capture_drops, 7);
  assert.equal(row.accepted_observations, 1);
  assert.deepEqual(s.filters, [
    { namespace: "lab", connected_pods: 0, known_pods: 1, selected_pods: 0, policy_selected_pods: 1 },
    { namespace: "shop", connected_pods: 1, known_pods: 1, selected_pods: 1, policy_selected_pods: 1 },
  ]);
  // lab's pod is selected by a policy but no filter is connected (enforcement coverage).
  assert.deepEqual(s.not_enforced_pods.map((p) => `${p.namespace}/${p.name}`), ["lab/notebook-1"]);
  const shopOnly = await getStatus(f.address, SHOP_TOKEN);
  assert.deepEqual(shopOnly.not_enforced_pods, [], "another namespace's coverage is not shown");
});

test("with TLS, operator calls are served only on the TLS port: the egret CLI verifies with --ca-file; the plaintext port has no OperatorService", { skip: spawnSync("openssl", ["version"]).status !== 0 && "openssl is not installed (scripts/apt-packages.txt)" }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "egE-operator-tls-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const made = spawnSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "key.pem", "-out", "cert.pem",
    "-days", "1", "-subj", "/CN=egret-control", "-addext", "subjectAltName=IP:127.0.0.1"], { cwd: dir, encoding: "utf8" });
  assert.equal(made.status, 0, made.stderr);
  const tokens = join(dir, "operator-tokens");
  writeFileSync(tokens, `${ADMIN_TOKEN} * admin\n`);
  writeFileSync(join(dir, "token"), `${ADMIN_TOKEN}\n`);
  const f = new ControlFixture([SHOP], { "shop.yaml": egressPolicy("web-egress", "shop", { app: "web" }, ["api.shop.test"]) }, {}, {
    operatorAccess: new FileOperatorAuthenticator(tokens, silentLogger()),
    tls: { cert: readFileSync(join(dir, "cert.pem")), key: readFileSync(join(dir, "key.pem")), listen: "127.0.0.1:0" },
  });
  t.after(async () => {
    await f.stop();
    f.cleanup();
  });
  await f.start();
  await report(await f.filterAddress(SHOP), [event(SHOP, "VERDICT_DENY", "REASON_DEFAULT_DENY", "shop/web-egress")]);
  const egret = (...args: string[]) => spawnAsync(process.execPath, [BIN, ...args, "--token-file", join(dir, "token")]);
  const tlsAt = `127.0.0.1:${f.ports.tlsPort}`;
  const status = await egret("status", "--control", tlsAt, "--ca-file", join(dir, "cert.pem"), "--json");
  assert.equal(status.code, 0, status.stderr);
  const denies = (JSON.parse(status.stdout) as { denies: { namespace: string; verdict: string; reason: string; count: number }[] }).denies;
  assert.deepEqual(denies.map((d) => `${d.namespace} ${d.verdict} ${d.reason} ${d.count}`), ["shop deny default-deny 1"]);
  const seen = await egret("observe", "--control", tlsAt, "--ca-file", join(dir, "cert.pem"), "--json");
  assert.equal(seen.code, 0, seen.stderr);
  assert.deepEqual(seen.stdout.trim().split("\n").map((l) => (JSON.parse(l) as { pod: string; verdict: string }).verdict), ["deny"]);
  const plain = await egret("observe", "--control", f.address);
  assert.equal(plain.code, 1);
  assert.match(plain.stderr, /UNIMPLEMENTED/);
  const untrusted = await egret("status", "--control", tlsAt, "--timeout", "3");
  assert.equal(untrusted.code, 1, "plaintext to the TLS port gets nowhere");
});
