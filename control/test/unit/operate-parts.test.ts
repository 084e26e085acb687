// The pieces of `egret observe` / `egret status` without sockets: the verdict feed's filters,
// bounds and drop accounting; flag parsing; table and JSON formatting (colour only on a
// terminal); merging several replicas' status; the operator token file; the Kubernetes
// authorizer's caching and failure handling.
import { test } from "node:test";
import assert from "node:assert/strict";
import { silentLogger } from "../../src/common/log.js";
import { AuthFailure } from "../../src/auth/agent-auth.js";
import { KubernetesOperatorAuthenticator, type AccessReviewer, type ReviewedUser } from "../../src/auth/operator-access.js";
import { parseOperatorTokens } from "../../src/auth/operator-auth.js";
import { auditRecordOf } from "../../src/control/reports.js";
import { NO_FILTER, VerdictFeed, retainedCopy, verdictMatches, type VerdictFilter } from "../../src/control/verdict-feed.js";
import { observeRequest, parseDuration, parseSince } from "../../src/operate/flags.js";
import { mergeStatus, nameCell, observeHeader, observeJson, observeLine, statusText, styleFor } from "../../src/operate/format.js";
import { ipToBytes, type GetStatusResponse, type VerdictEvent } from "../../src/proto/index.js";

function ev(over: Partial<VerdictEvent> = {}): VerdictEvent {
  return {
    time_unix_ms: Date.parse("2026-12-07T23:41:02.123Z"), pod_name: "web-1", pod_namespace: "shop", source_ip: ipToBytes("198.18.1.10"), source_port: 40000,
    destination_ip: ipToBytes("198.19.2.30"), destination_port: 443, names: ["api.example.test"], protocol: "tls", sni: "", host: "",
    verdict: "VERDICT_DENY", reason: "REASON_DEFAULT_DENY", policy: "shop/web-egress", rule: "", mode: "POLICY_MODE_ENFORCE", matched_name: "",
    instance_id: "i", detail: "", evidence: "NAME_SOURCE_POD_DNS", cluster: "", ...over,
  };
}

const filter = (over: Partial<VerdictFilter>): VerdictFilter => ({ ...NO_FILTER, ...over });

test("filters: each field narrows; several values are any of them; pods by name or namespace/name", () => {
  const e = ev();
  assert.ok(verdictMatches(NO_FILTER, e));
  assert.ok(verdictMatches(filter({ namespaces: new Set(["lab", "shop"]) }), e));
  assert.ok(!verdictMatches(filter({ namespaces: new Set(["lab"]) }), e));
  assert.ok(verdictMatches(filter({ pods: new Set(["web-1"]) }), e));
  assert.ok(verdictMatches(filter({ pods: new Set(["shop/web-1"]) }), e));
  assert.ok(!verdictMatches(filter({ pods: new Set(["lab/web-1"]) }), e));
  assert.ok(!verdictMatches(filter({ verdicts: new Set(["VERDICT_ALLOW"]) }), e));
  assert.ok(verdictMatches(filter({ reasons: new Set(["REASON_DEFAULT_DENY", "REASON_ALLOWED"]) }), e));
  assert.ok(!verdictMatches(filter({ policies: new Set(["web-egress"]) }), e));
  assert.ok(!verdictMatches(filter({ sinceMs: e.time_unix_ms + 1 }), e));
  assert.ok(verdictMatches(filter({ sinceMs: e.time_unix_ms }), e));
});

test("the feed keeps a bounded history and each subscriber a bounded buffer; drops are counted by namespace", () => {
  let dropped = 0;
  const feed = new VerdictFeed({ history: 3, subscriberBuffer: 2, maxSubscribers: 1 }, { dropped: () => dropped++, subscribers: () => undefined });
  let readable = 0;
  const sub = feed.subscribe(NO_FILTER, () => readable++);
  assert.throws(() => feed.subscribe(NO_FILTER, () => undefined), /already follow/);
  for (const ns of ["shop", "shop", "lab", "shop"]) feed.publish(ev({ pod_namespace: ns }));
  assert.equal(feed.history(NO_FILTER).length, 3, "history bounded");
  assert.equal(sub.pending, 2);
  assert.deepEqual([...sub.droppedByNamespace], [["lab", 1], ["shop", 1]]);
  assert.equal(dropped, 2);
  assert.equal(readable, 1, "woken once when the buffer stopped being empty");
  assert.equal(sub.take(10).length, 2);
  sub.close();
  assert.equal(feed.subscriberCount, 0);
});

test("retained events copy their bytes and clip what a pod chose, so the history stays bounded in bytes", () => {
  const whole = Buffer.from([1, 2, 3, 4, 198, 19, 2, 30]);
  const e = retainedCopy(ev({ destination_ip: whole.subarray(4), detail: "x".repeat(1_000_000), names: Array.from({ length: 1000 }, (_, i) => `n${i}.test`) }));
  assert.notEqual((e.destination_ip as Buffer).buffer, whole.buffer);
  assert.deepEqual([...e.destination_ip], [198, 19, 2, 30]);
  assert.equal(e.detail.length, 256);
  assert.equal(e.names.length, 16);
});

test("flags: verdicts and reasons in the audit spelling, comma lists, pods, --since durations and times", () => {
  const now = Date.parse("2026-12-07T23:00:00Z");
  const r = observeRequest({ verdict: ["deny,would-deny"], reason: ["denied-by-rule", "SNI-UNVERIFIED"], namespace: ["shop"], pod: ["shop/web-1", "db"], policy: ["shop/p"], since: "5m", follow: true }, now);
  assert.deepEqual(r.verdicts, ["VERDICT_DENY", "VERDICT_WOULD_DENY"]);
  assert.deepEqual(r.reasons, ["REASON_DENIED_BY_RULE", "REASON_SNI_UNVERIFIED"]);
  assert.deepEqual(r.pods, ["shop/web-1", "db"]);
  assert.equal(r.since_unix_ms, now - 300_000);
  assert.equal(r.follow, true);
  assert.equal(observeRequest({}, now).since_unix_ms, 0);
  assert.equal(parseDuration("1h30m"), 5_400_000);
  assert.equal(parseDuration("5 minutes"), undefined);
  assert.equal(parseSince("2026-12-07T22:00:00Z", now), now - 3_600_000);
  assert.throws(() => observeRequest({ verdict: ["blocked"] }, now), /--verdict blocked: not one of allow, deny, alert, would-deny/);
  assert.throws(() => observeRequest({ reason: ["nope"] }, now), /--reason nope: not one of allowed, denied-by-rule/);
  assert.throws(() => observeRequest({ since: "yesterday" }, now), /--since yesterday: give a duration/);
  assert.throws(() => observeRequest({ pod: ["a/b/c"] }, now), /--pod a\/b\/c: give NAME or NAMESPACE\/NAME/);
  assert.throws(() => observeRequest({ namespace: ["Shop"] }, now), /--namespace Shop: not a namespace name/);
});

test("format: a table line per verdict, colour only on a terminal and never with NO_COLOR; --json is the audit record", () => {
  assert.deepEqual(styleFor({ isTTY: true }, {}), { colour: true });
  assert.deepEqual(styleFor({ isTTY: false }, {}), { colour: false });
  assert.deepEqual(styleFor({ isTTY: true }, { NO_COLOR: "1" }), { colour: false });
  const plain = observeLine(ev({ rule: "no-evil" }), { colour: false });
  assert.doesNotMatch(plain, /\u001b/);
  assert.match(plain, /^23:41:02\.123 shop\/web-1 +198\.19\.2\.30:443 +api\.example\.test +tls +deny +default-deny +shop\/web-egress#no-evil$/);
  assert.match(observeLine(ev(), { colour: true }), /\u001b\[31mdeny/);
  assert.match(observeHeader({ colour: false }), /^TIME +POD +DESTINATION +NAME +PROTOCOL +VERDICT +REASON +POLICY#RULE$/);
  assert.deepEqual(JSON.parse(observeJson(ev())), JSON.parse(JSON.stringify(auditRecordOf(ev()))));
  assert.equal(nameCell(auditRecordOf(ev({ names: ["evil.example.net"], sni: "api.example.test" }))), "evil.example.net (sni api.example.test)");
  assert.equal(nameCell(auditRecordOf(ev({ names: [], host: "x.test" }))), "(host x.test)");
});

function status(over: Partial<GetStatusResponse>): GetStatusResponse {
  return {
    server_id: "a", ready: true, not_ready_reason: "", cluster_visible: true, replicas: [], agents: [], filters: [], policies: [], denies: [],
    denies_since_unix_ms: 0, server_time_unix_ms: 0, not_enforced_pods: [], ...over,
  };
}

test("status from several replicas: filters and denies add up, agents once per node, the answering replica's own row wins", () => {
  const agent = { node: "n1", agent_id: "n1/x", connected_since_unix_ms: 1, last_batch_unix_ms: 5, accepted_observations: 3, rejected_observations: 0 };
  const a = status({
    replicas: [{ name: "a", ready: true, leader: "LEADER_STATE_LEADER", answering: true, detail: "" }, { name: "b", ready: false, leader: "LEADER_STATE_FOLLOWER", answering: false, detail: "pod list" }],
    agents: [{ ...agent, capture_drops: 2 }],
    filters: [{ namespace: "shop", connected_pods: 1, known_pods: 3, selected_pods: 1, policy_selected_pods: 3 }],
    not_enforced_pods: [{ namespace: "shop", name: "a", reason: "filter-not-connected", since_unix_ms: 1 }, { namespace: "shop", name: "b", reason: "no-sidecar", since_unix_ms: 1 }],
    denies: [{ namespace: "shop", verdict: "VERDICT_DENY", reason: "REASON_UNATTRIBUTED", count: 2, last_unix_ms: 10 }],
    denies_since_unix_ms: 4,
  });
  const b = status({
    server_id: "b",
    replicas: [{ name: "b", ready: true, leader: "LEADER_STATE_FOLLOWER", answering: true, detail: "" }],
    agents: [{ ...agent, capture_drops: 5 }],
    filters: [{ namespace: "shop", connected_pods: 2, known_pods: 3, selected_pods: 2, policy_selected_pods: 3 }],
    not_enforced_pods: [{ namespace: "shop", name: "b", reason: "no-sidecar", since_unix_ms: 1 }],
    denies: [{ namespace: "shop", verdict: "VERDICT_DENY", reason: "REASON_UNATTRIBUTED", count: 3, last_unix_ms: 20 }],
    denies_since_unix_ms: 2,
  });
  const v = mergeStatus([a, b]);
  assert.deepEqual(v.replicas.map((r) => `${r.name} ${r.ready} ${r.leader}`), ["a true leader", "b true follower"]);
  assert.deepEqual(v.agents.map((x) => `${x.node} drops=${x.captureDrops} replicas=${x.replicas}`), ["n1 drops=5 replicas=2"]);
  assert.deepEqual(v.filters, [{ namespace: "shop", connectedPods: 3, selectedPods: 3, knownPods: 3, policySelectedPods: 3 }]);
  assert.deepEqual(v.notEnforced.map((p) => `${p.pod} ${p.reason}`), ["shop/b no-sidecar"], "a pod connected to one replica is enforced");
  assert.deepEqual(v.denies, [{ namespace: "shop", verdict: "deny", reason: "unattributed", count: 5, lastUnixMs: 20 }]);
  assert.equal(v.deniesSinceUnixMs, 2);
  const text = statusText(v, { colour: false }, 30);
  assert.match(text, /Control replicas\n +NAME +READY +LEADER/);
  assert.match(text, /shop +deny +unattributed +5/);
  assert.match(text, /Selected pods no filter enforces\n +POD +REASON +SINCE\n +shop\/b +no-sidecar/);
  const hidden = statusText(mergeStatus([status({ cluster_visible: false })]), { colour: false }, 0);
  assert.match(hidden, /cluster-wide rows .* hidden/);
  assert.doesNotMatch(hidden, /Control replicas/);
});

test("operator token file (shared with /debug/names): TOKEN NAMESPACES [WHO], and what egret observe/status may read with it", async () => {
  const m = parseOperatorTokens("# ops\nabcdefghijklmnopqrst * admin\nbcdefghijklmnopqrstu shop,lab oncall\n", "ops.txt");
  assert.deepEqual([...m.values()].map((g) => [g.who, g.namespaces === "*" ? "*" : [...g.namespaces].join(",")]), [["admin", "*"], ["oncall", "shop,lab"]]);
  assert.throws(() => parseOperatorTokens("short *\n", "ops.txt"), /ops\.txt:1: the token is shorter than 16 characters/);
  assert.throws(() => parseOperatorTokens("abcdefghijklmnopqrst Shop\n", "ops.txt"), /"Shop" is not a namespace name/);
});

class CountingReviewer implements AccessReviewer {
  tokenCalls = 0;
  accessCalls = 0;
  fail = false;
  allowed = new Set<string>(["shop"]);
  hang?: Promise<void>;
  async reviewToken(token: string): Promise<ReviewedUser | undefined> {
    this.tokenCalls++;
    await this.hang;
    return token === "good" ? { username: "alice", groups: ["g"] } : undefined;
  }
  async mayList(_user: ReviewedUser, namespace: string | undefined): Promise<boolean> {
    this.accessCalls++;
    if (this.fail) throw new Error("API down");
    return namespace !== undefined && this.allowed.has(namespace);
  }
}

test("Kubernetes authorizer: answers cached for the TTL, an API failure denies, a flood of reviews is refused", async () => {
  let now = 0;
  const r = new CountingReviewer();
  const auth = new KubernetesOperatorAuthenticator(r, silentLogger(), { ttlMs: 1000, now: () => now, maxInFlight: 2 });
  const access = await auth.authenticate("Bearer good");
  assert.equal(access.subject, "alice");
  assert.equal(access.cachedNamespace("shop"), undefined);
  assert.equal(await access.canReadNamespace("shop"), true);
  assert.equal(await access.canReadNamespace("lab"), false);
  assert.equal(await access.canReadCluster(), false);
  assert.equal(access.cachedNamespace("shop"), true);
  assert.equal(await access.canReadNamespace("shop"), true);
  assert.equal(r.accessCalls, 3, "cached");
  assert.equal(r.tokenCalls, 1, "token reviewed once");
  now = 1500;
  r.fail = true;
  assert.equal(await access.canReadNamespace("shop"), false, "a failed SubjectAccessReview denies");
  assert.equal(r.tokenCalls, 2, "the token is reviewed again after the TTL");
  await assert.rejects(auth.authenticate("Bearer bad"), (e: AuthFailure) => e.reason === "invalid");
  await assert.rejects(auth.authenticate(undefined), (e: AuthFailure) => e.reason === "missing");
  let release!: () => void;
  r.hang = new Promise((res) => (release = res));
  const waiting = [auth.authenticate("Bearer t1"), auth.authenticate("Bearer t2")];
  await assert.rejects(auth.authenticate("Bearer t3"), (e: AuthFailure) => e.reason === "unavailable");
  release();
  await Promise.allSettled(waiting);
});
