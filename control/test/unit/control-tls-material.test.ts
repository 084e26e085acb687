// Control's TLS material (control/src/tls/): the certificates Node writes itself are real X.509
// (openssl verifies them strictly, grpc-js handshakes with them); `egret tls bootstrap` works by
// state (creates once, keeps, renews before the end, never replaces a CA silently, survives a race
// with a second run) against the in-test API server; and control serves a renewed certificate
// from its files without a restart.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { X509Certificate } from "node:crypto";
import { certificateFacts, issueCa, issueServing, signedBy } from "../../src/tls/certificates.js";
import { ensureControlTls, publishCa, TlsBootstrapError, type BootstrapOptions, type TlsObjectStore } from "../../src/tls/bootstrap.js";
import { kubeTlsStore } from "../../src/tls/kube-store.js";
import { agentCredentials } from "../../src/agent/credentials.js";
import { createAgentClient } from "../../src/proto/index.js";
import { ControlFixture, egressPolicy } from "../support/control-harness.js";
import { FakeKube } from "../support/fake-kube.js";

const NAMES = ["egret-control.egret-system.svc", "egret-control.egret-system.svc.cluster.local"];
const DAY = 86_400_000;
const openssl = spawnSync("openssl", ["version"]).status === 0;

/** Secrets and ConfigMaps in a map, with resourceVersions and 409s like the API server. */
class MemoryStore implements TlsObjectStore {
  readonly objects = new Map<string, { data: Record<string, string>; resourceVersion: string }>();
  private rv = 0;
  writes = 0;
  async get(kind: string, name: string) {
    const o = this.objects.get(`${kind}/${name}`);
    return o && { data: { ...o.data }, resourceVersion: o.resourceVersion };
  }
  async create(kind: string, name: string, data: Record<string, string>) {
    if (this.objects.has(`${kind}/${name}`)) throw Object.assign(new Error("AlreadyExists"), { code: 409 });
    this.put(kind, name, data);
  }
  async replace(kind: string, name: string, data: Record<string, string>, resourceVersion: string | undefined) {
    if (this.objects.get(`${kind}/${name}`)?.resourceVersion !== resourceVersion) throw Object.assign(new Error("Conflict"), { code: 409 });
    this.put(kind, name, data);
  }
  private put(kind: string, name: string, data: Record<string, string>) {
    this.writes++;
    this.objects.set(`${kind}/${name}`, { data: { ...data }, resourceVersion: String(++this.rv) });
  }
}

function options(store: TlsObjectStore, now: () => Date): BootstrapOptions {
  return { store, now, serverNames: NAMES, caSecret: "egret-ca", tlsSecret: "egret-control-tls", caConfigMap: "egret-control-ca", caDays: 3650, certDays: 90, renewBeforeDays: 30 };
}

test("certificates: a P-256 CA and a serving certificate that openssl verifies strictly for the server name, and only for it", (t) => {
  const now = new Date();
  const ca = issueCa({ commonName: "egret-control-ca", now, days: 3650 });
  const leaf = issueServing({ ca, names: [...NAMES, "198.18.0.9"], now, days: 90 });
  const facts = certificateFacts(leaf);
  assert.deepEqual(facts.names, [...NAMES, "198.18.0.9"]);
  assert.equal(facts.isCa, false);
  assert.equal(facts.keyMatches, true);
  assert.equal(certificateFacts(ca).isCa, true);
  assert.ok(signedBy(leaf.certPem, ca.certPem));
  const other = issueCa({ commonName: "egret-control-ca", now, days: 3650 });
  assert.equal(signedBy(leaf.certPem, other.certPem), false, "another CA with the same name did not sign it");
  const x = new X509Certificate(leaf.certPem);
  assert.equal(x.checkHost(NAMES[0]!), NAMES[0]);
  assert.equal(x.checkHost("egret-control-agents.egret-system.svc"), undefined);
  assert.equal(x.checkIP("198.18.0.9"), "198.18.0.9");
  assert.ok(Math.abs(new Date(x.validTo).getTime() - (now.getTime() + 90 * DAY)) < 2_000);
  // A serving certificate never outlives its CA.
  const shortCa = issueCa({ commonName: "short", now, days: 10 });
  assert.equal(new X509Certificate(issueServing({ ca: shortCa, names: NAMES, now, days: 90 }).certPem).validTo, new X509Certificate(shortCa.certPem).validTo);
  if (!openssl) return t.diagnostic("openssl not installed: strict verification skipped");
  const dir = mkdtempSync(join(tmpdir(), "egret-x509-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, "ca.pem"), ca.certPem);
  writeFileSync(join(dir, "leaf.pem"), leaf.certPem);
  const verify = (host: string) => spawnSync("openssl", ["verify", "-x509_strict", "-purpose", "sslserver", "-verify_hostname", host, "-CAfile", join(dir, "ca.pem"), join(dir, "leaf.pem")], { encoding: "utf8" });
  assert.equal(verify(NAMES[0]!).status, 0, verify(NAMES[0]!).stderr);
  assert.notEqual(verify("attacker.example").status, 0, "a name the certificate does not carry is refused");
});

test("bootstrap: creates the CA, the serving Secret and the CA ConfigMap once; a second run changes nothing", async () => {
  const store = new MemoryStore();
  const first = await ensureControlTls(options(store, () => new Date()));
  assert.deepEqual([first.ca, first.serving, first.caConfigMap], ["created", "created", "created"]);
  const ca = (await store.get("Secret", "egret-ca"))!.data;
  const tls = (await store.get("Secret", "egret-control-tls"))!.data;
  const cm = (await store.get("ConfigMap", "egret-control-ca"))!.data;
  assert.deepEqual(Object.keys(ca).sort(), ["ca.crt", "ca.key"]);
  assert.deepEqual(Object.keys(tls).sort(), ["ca.crt", "tls.crt", "tls.key"]);
  assert.deepEqual(Object.keys(cm), ["ca.crt"], "the public ConfigMap carries no key");
  assert.equal(cm["ca.crt"], ca["ca.crt"]);
  assert.ok(signedBy(tls["tls.crt"]!, ca["ca.crt"]!));
  assert.deepEqual(certificateFacts({ certPem: tls["tls.crt"]!, keyPem: tls["tls.key"]! }).names, NAMES);
  const writes = store.writes;
  const second = await ensureControlTls(options(store, () => new Date()));
  assert.deepEqual([second.ca, second.serving, second.caConfigMap], ["kept", "kept", "kept"]);
  assert.equal(store.writes, writes);
});

test("bootstrap: renews the serving certificate 30 days before its end, and one that is broken, for other names or from another CA; the CA stays", async () => {
  const store = new MemoryStore();
  let now = new Date();
  await ensureControlTls(options(store, () => now));
  const caPem = (await store.get("Secret", "egret-ca"))!.data["ca.crt"];
  const servingPem = async () => (await store.get("Secret", "egret-control-tls"))!.data["tls.crt"];
  const before = await servingPem();
  now = new Date(now.getTime() + 59 * DAY);
  assert.equal((await ensureControlTls(options(store, () => now))).serving, "kept", "59 days in: 31 left");
  now = new Date(now.getTime() + 2 * DAY);
  const renewed = await ensureControlTls(options(store, () => now));
  assert.equal(renewed.serving, "renewed", "61 days in: 29 left");
  assert.notEqual(await servingPem(), before);
  assert.ok(renewed.servingNotAfter.getTime() > now.getTime() + 89 * DAY);
  assert.equal((await store.get("Secret", "egret-ca"))!.data["ca.crt"], caPem, "the CA is not touched");

  const tamper = async (data: Record<string, string>) => {
    const s = (await store.get("Secret", "egret-control-tls"))!;
    await store.replace("Secret", "egret-control-tls", { ...s.data, ...data }, s.resourceVersion);
    return (await ensureControlTls(options(store, () => now))).serving;
  };
  assert.equal(await tamper({ "tls.crt": "garbage" }), "renewed");
  const foreignCa = issueCa({ commonName: "egret-control-ca", now, days: 10 });
  const foreign = issueServing({ ca: foreignCa, names: NAMES, now, days: 90 });
  assert.equal(await tamper({ "tls.crt": foreign.certPem, "tls.key": foreign.keyPem }), "renewed", "signed by another CA");
  const own = issueServing({ ca: { certPem: caPem!, keyPem: (await store.get("Secret", "egret-ca"))!.data["ca.key"]! }, names: ["attacker.example"], now, days: 90 });
  assert.equal(await tamper({ "tls.crt": own.certPem, "tls.key": own.keyPem }), "renewed", "other names");
  assert.equal(await tamper({ "tls.key": foreign.keyPem }), "renewed", "a key that is not the certificate's");
  assert.deepEqual(certificateFacts({ certPem: (await servingPem())!, keyPem: (await store.get("Secret", "egret-control-tls"))!.data["tls.key"]! }).names, NAMES);
});

test("bootstrap: an unreadable or expired CA is an error naming the Secret; nothing is replaced", async () => {
  for (const data of [{ "ca.crt": "not a certificate", "ca.key": "x" }, { "ca.crt": issueCa({ commonName: "old", now: new Date(Date.now() - 20 * DAY), days: 1 }).certPem, "ca.key": "" }]) {
    const store = new MemoryStore();
    await store.create("Secret", "egret-ca", data);
    const writes = store.writes;
    await assert.rejects(ensureControlTls(options(store, () => new Date())), (err: Error) => err instanceof TlsBootstrapError && /Secret egret-ca: .*delete the Secret/.test(err.message));
    assert.equal(store.writes, writes);
  }
  const expired = new MemoryStore();
  const old = issueCa({ commonName: "old", now: new Date(Date.now() - 20 * DAY), days: 1 });
  await expired.create("Secret", "egret-ca", { "ca.crt": old.certPem, "ca.key": old.keyPem });
  await assert.rejects(ensureControlTls(options(expired, () => new Date())), /the CA expired/);
});

test("bootstrap: two runs at once (Job and CronJob) end with one CA that both the Secret and the ConfigMap carry", async () => {
  const store = new MemoryStore();
  const [a, b] = await Promise.all([ensureControlTls(options(store, () => new Date())), ensureControlTls(options(store, () => new Date()))]);
  assert.ok([a.ca, b.ca].includes("created"));
  const ca = (await store.get("Secret", "egret-ca"))!.data["ca.crt"]!;
  assert.equal((await store.get("ConfigMap", "egret-control-ca"))!.data["ca.crt"], ca);
  assert.equal((await store.get("Secret", "egret-control-tls"))!.data["ca.crt"], ca);
  assert.ok(signedBy((await store.get("Secret", "egret-control-tls"))!.data["tls.crt"]!, ca));
});

test("bootstrap and publish-ca through the Kubernetes API (in-test API server): Secrets base64, ConfigMap text", async (t) => {
  const kube = await new FakeKube().start();
  t.after(() => kube.stop());
  const store = kubeTlsStore(kube.kubeConfig(), "egret-system");
  const result = await ensureControlTls(options(store, () => new Date()));
  assert.equal(result.ca, "created");
  const secret = kube.get("secrets", "egret-system", "egret-control-tls") as unknown as { data: Record<string, string> };
  const pem = Buffer.from(secret.data["tls.crt"]!, "base64").toString();
  assert.match(pem, /^-----BEGIN CERTIFICATE-----/);
  const cm = kube.get("configmaps", "egret-system", "egret-control-ca") as unknown as { data: Record<string, string> };
  assert.match(cm.data["ca.crt"]!, /^-----BEGIN CERTIFICATE-----/);
  assert.equal((await ensureControlTls(options(store, () => new Date()))).serving, "kept");
  // cert-manager mode: the serving Secret's ca.crt is published; a missing Secret says what to check.
  kube.delete("configmaps", "egret-system", "egret-control-ca");
  assert.equal(await publishCa({ store, tlsSecret: "egret-control-tls", caConfigMap: "egret-control-ca" }), "created");
  assert.equal(await publishCa({ store, tlsSecret: "egret-control-tls", caConfigMap: "egret-control-ca" }), "kept");
  await assert.rejects(publishCa({ store, tlsSecret: "missing", caConfigMap: "egret-control-ca" }), /cert-manager has not issued/);
});

/** Whether a channel with this CA and server name becomes ready (the TLS handshake and the name check passed). */
function handshake(address: string, caPem: string, serverName: string, waitMs = 3_000): Promise<"connected" | "refused"> {
  const dir = mkdtempSync(join(tmpdir(), "egret-ca-"));
  writeFileSync(join(dir, "ca.pem"), caPem);
  const creds = agentCredentials({ caFile: join(dir, "ca.pem"), serverName });
  rmSync(dir, { recursive: true, force: true });
  const client = createAgentClient(address, creds.channel, creds.options);
  return new Promise((resolve) => {
    client.waitForReady(Date.now() + waitMs, (err) => {
      client.close();
      resolve(err ? "refused" : "connected");
    });
  });
}

test("grpc-js TLS with bootstrapped material: the right CA and server name connect to control's TLS port; another CA or name is refused; a renewed certificate is served without a restart", async (t) => {
  const store = new MemoryStore();
  await ensureControlTls(options(store, () => new Date()));
  const dir = mkdtempSync(join(tmpdir(), "egret-tlsm-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const files = { cert: join(dir, "tls.crt"), key: join(dir, "tls.key"), reloadMs: 200 };
  const tls = (await store.get("Secret", "egret-control-tls"))!.data;
  writeFileSync(files.cert, tls["tls.crt"]!);
  writeFileSync(files.key, tls["tls.key"]!);
  const f = new ControlFixture([{ name: "web-1", namespace: "shop", ips: ["198.18.1.10"], labels: { app: "web" } }], { "web.yaml": egressPolicy("web-egress", "shop", { app: "web" }, ["**.example.com"]) }, {}, {
    tls: { cert: Buffer.from(tls["tls.crt"]!), key: Buffer.from(tls["tls.key"]!), listen: "127.0.0.1:0", files },
  });
  t.after(async () => {
    await f.stop();
    f.cleanup();
  });
  await f.start();
  const address = `127.0.0.1:${f.ports.tlsPort}`;
  const caPem = tls["ca.crt"]!;
  assert.equal(await handshake(address, caPem, NAMES[0]!), "connected");
  assert.equal(await handshake(address, caPem, "egret-control-agents.egret-system.svc"), "refused", "a name the certificate does not carry");
  const otherCa = issueCa({ commonName: "egret-control-ca", now: new Date(), days: 30 });
  assert.equal(await handshake(address, otherCa.certPem, NAMES[0]!), "refused", "another CA with the same name");

  // Rotation: the files change (as the kubelet updates a mounted Secret) to a certificate of
  // another CA; new connections get it within the reload interval.
  const next = issueServing({ ca: otherCa, names: NAMES, now: new Date(), days: 30 });
  writeFileSync(files.key, next.keyPem);
  writeFileSync(files.cert, next.certPem);
  let outcome: string = "refused";
  for (let i = 0; i < 20 && outcome !== "connected"; i++) {
    await new Promise((r) => setTimeout(r, 250));
    outcome = await handshake(address, otherCa.certPem, NAMES[0]!, 1_000);
  }
  assert.equal(outcome, "connected", "the renewed certificate is served");
  assert.equal(await handshake(address, caPem, NAMES[0]!), "refused", "the old CA no longer verifies it");
});
