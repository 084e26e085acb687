// TLS where credentials travel: with --tls-cert/--tls-key, AgentService (bearer tokens) is served
// only on the TLS listener; an agent verifying with --ca-file connects and delivers evidence, one
// that trusts another CA does not connect, and the plaintext port no longer offers Observe.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import { silentLogger } from "../../src/common/log.js";
import { agentCredentials } from "../../src/agent/credentials.js";
import { ReplicaStream } from "../../src/agent/replica-stream.js";
import type { DnsObservation } from "../../src/dns/observer.js";
import { createAgentClient } from "../../src/proto/index.js";
import { ControlFixture, egressPolicy, eventually, observation, observe } from "../support/control-harness.js";

const WEB = { name: "web-1", namespace: "shop", ips: ["198.18.1.10"], labels: { app: "web" } };
const openssl = spawnSync("openssl", ["version"]).status === 0;

/** A CA and a server certificate for 127.0.0.1 signed by it (openssl, as scripts/apt-packages.txt installs it). */
function makeCa(dir: string, name: string): { ca: string; cert: string; key: string } {
  const run = (...args: string[]) => {
    const r = spawnSync("openssl", args, { cwd: dir, encoding: "utf8" });
    if (r.status !== 0) throw new Error(`openssl ${args.join(" ")}: ${r.stderr}`);
  };
  run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", `${name}-ca.key`, "-out", `${name}-ca.pem`, "-days", "1", "-subj", `/CN=${name} test CA`);
  run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", "/CN=egret-control");
  writeFileSync(join(dir, `${name}.ext`), "subjectAltName=IP:127.0.0.1,DNS:localhost\n");
  run("x509", "-req", "-in", `${name}.csr`, "-CA", `${name}-ca.pem`, "-CAkey", `${name}-ca.key`, "-CAcreateserial", "-out", `${name}.pem`, "-days", "1", "-extfile", `${name}.ext`);
  return { ca: join(dir, `${name}-ca.pem`), cert: join(dir, `${name}.pem`), key: join(dir, `${name}.key`) };
}

function dnsObservation(name: string, ip: string): DnsObservation {
  return {
    podIp: "198.18.1.10", podPort: 40000, qname: name, qtype: 1, rcode: 0, cnameChain: [],
    answers: [{ name, type: "A", typeCode: 1, ttl: 600, data: ip }],
    negative: false, truncated: false, resolver: "198.19.0.53", resolverPort: 53, transport: "udp", time: Date.now(), id: 1,
  };
}

test("agents reach control over TLS with --ca-file; another CA or the plaintext port get nowhere", { skip: !openssl && "openssl is not installed (scripts/apt-packages.txt)" }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "egret-tls-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const good = makeCa(dir, "good");
  const other = makeCa(dir, "other");
  const f = new ControlFixture([WEB], { "web.yaml": egressPolicy("web-egress", "shop", { app: "web" }, ["**.example.com"]) }, {}, {
    tls: { cert: readFileSync(good.cert), key: readFileSync(good.key), listen: "127.0.0.1:0" },
  });
  t.after(async () => {
    await f.stop();
    f.cleanup();
  });
  await f.start();
  const { tlsPort } = f.ports;
  assert.ok(tlsPort && tlsPort > 0);

  const stream = (caFile: string) =>
    new ReplicaStream({
      address: `127.0.0.1:${tlsPort}`, agentId: "node-1/tls", log: silentLogger(), replaySource: () => [dnsObservation("a.example.com", "203.0.113.1")],
      maxBatch: 10, window: 2, maxQueue: 100, ackTimeoutMs: 5000, connectTimeoutMs: 1000, now: Date.now,
      credentials: agentCredentials({ tokenFile: f.agentTokenFile(), caFile }),
    });
  const trusted = stream(good.ca);
  t.after(() => trusted.close());
  trusted.start();
  await eventually(() => f.service.store.entriesOf("198.18.1.10").length === 1, "the evidence over TLS");

  // Trusting another CA: the handshake fails, nothing is delivered.
  const client = createAgentClient(`127.0.0.1:${tlsPort}`, agentCredentials({ caFile: other.ca }).channel);
  t.after(() => client.close());
  await assert.rejects(new Promise<void>((resolve, reject) => client.waitForReady(Date.now() + 1500, (err) => (err ? reject(err) : resolve()))));

  // The plaintext port serves filters only: Observe is not offered there.
  await assert.rejects(observe(f.address, [observation("198.18.1.10", "b.example.com", ["203.0.113.2"])]), (err: grpc.ServiceError) => {
    assert.equal(err.code, grpc.status.UNIMPLEMENTED);
    return true;
  });
});
