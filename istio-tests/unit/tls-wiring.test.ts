// The rendered install's TLS wiring, read from the objects as kubectl would apply them: control,
// agents, the sidecars' DestinationRule, the plugin configuration and the bootstrap Job (or
// cert-manager's Certificate) agree on the Secret, the CA ConfigMap, the port and the one server
// name. Then the material the rendered Job makes (its own args, run against an in-memory API)
// carries a real grpc-js handshake with what the agent's rendered flags say to verify.
import { strict as assert } from "node:assert";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import type { KubeObject } from "../../control/src/deploy/objects.js";
import { findEnvoyFilter, pluginConfigOf, renderInstall } from "../../control/src/deploy/render.js";
import { ensureControlTls, type TlsObjectStore } from "../../control/src/tls/bootstrap.js";
import { agentCredentials } from "../../control/src/agent/credentials.js";
import { createAgentClient } from "../../control/src/proto/index.js";

const MANIFESTS = fileURLToPath(new URL("../../../manifests", import.meta.url));
const SHA = "0".repeat(64);

type Container = { args: string[]; ports?: { name: string; containerPort: number }[]; volumeMounts?: { name: string; mountPath: string }[] };
type Volume = { name: string; secret?: { secretName: string; items?: { key: string; path: string }[] }; configMap?: { name: string; items?: { key: string; path: string }[] } };
type PodSpec = { containers: Container[]; volumes?: Volume[]; serviceAccountName?: string };

const render = (tls?: "bootstrap" | "cert-manager") => renderInstall({ manifestsDir: MANIFESTS, wasmSha256: SHA, ...(tls ? { tls } : {}) });
const find = (objects: KubeObject[], kind: string, name?: string) => {
  const o = objects.find((x) => x.kind === kind && (name === undefined || x.metadata.name === name));
  assert.ok(o, `${kind} ${name ?? ""} is rendered`);
  return o;
};
const podOf = (o: KubeObject): PodSpec => {
  const spec = o.spec as { template?: { spec: PodSpec }; jobTemplate?: { spec: { template: { spec: PodSpec } } } };
  return (spec.template ?? spec.jobTemplate!.spec.template).spec;
};
const flag = (args: string[], name: string): string[] => args.filter((a) => a.startsWith(`--${name}=`)).map((a) => a.slice(name.length + 3));
const one = (args: string[], name: string): string => {
  const v = flag(args, name);
  assert.equal(v.length, 1, `--${name} given once in ${args.join(" ")}`);
  return v[0]!;
};

/** The volume source behind the file `path` of container `c`: { kind, name, key }. */
function fileSource(pod: PodSpec, c: Container, path: string): { kind: "secret" | "configMap"; name: string; key: string } {
  const mount = (c.volumeMounts ?? []).find((m) => path.startsWith(`${m.mountPath}/`));
  assert.ok(mount, `${path} is under a mounted volume`);
  const file = path.slice(mount.mountPath.length + 1);
  const volume = (pod.volumes ?? []).find((v) => v.name === mount.name)!;
  const source = volume.secret ? { kind: "secret" as const, name: volume.secret.secretName, items: volume.secret.items } : { kind: "configMap" as const, name: volume.configMap!.name, items: volume.configMap!.items };
  const item = (source.items ?? []).find((i) => i.path === file);
  return { kind: source.kind, name: source.name, key: item ? item.key : file };
}

interface Wiring {
  servingSecret: string;
  caConfigMap: string;
  serverName: string;
  tlsPort: number;
}

/** Reads the wiring from control and agent, and checks that everything else agrees with it. */
function wiringOf(objects: KubeObject[]): Wiring {
  const controlPod = podOf(find(objects, "Deployment", "egret-control"));
  const control = controlPod.containers[0]!;
  const cert = fileSource(controlPod, control, one(control.args, "tls-cert"));
  const key = fileSource(controlPod, control, one(control.args, "tls-key"));
  assert.deepEqual([cert.kind, cert.key, key.kind, key.key, key.name], ["secret", "tls.crt", "secret", "tls.key", cert.name]);
  const tlsPort = Number(one(control.args, "grpc-tls-listen").split(":").pop());
  assert.equal(control.ports!.find((p) => p.name === "grpc-tls")?.containerPort, tlsPort);

  const agentPod = podOf(find(objects, "DaemonSet", "egret-agent"));
  const agent = agentPod.containers[0]!;
  const ca = fileSource(agentPod, agent, one(agent.args, "ca-file"));
  assert.deepEqual([ca.kind, ca.key], ["configMap", "ca.crt"]);
  const serverName = one(agent.args, "tls-server-name");
  const [agentHost, agentPort] = one(agent.args, "control-service").split(":");
  assert.equal(Number(agentPort), tlsPort, "agents dial the TLS port");
  const headless = find(objects, "Service", "egret-control-agents").spec as { clusterIP: string; ports: { port: number; targetPort: string }[] };
  assert.ok(agentHost!.startsWith("egret-control-agents.egret-system.svc"));
  assert.equal(headless.clusterIP, "None");
  assert.ok(headless.ports.some((p) => p.port === tlsPort && p.targetPort === "grpc-tls"));

  // Sidecars: the filter's cluster is the TLS port, originated with the same CA and name.
  const config = pluginConfigOf(findEnvoyFilter(objects));
  const [, clusterPort, , clusterHost] = String(config.controlCluster).split("|");
  assert.equal(Number(clusterPort), tlsPort, "the filter's gRPC goes to the TLS port");
  const service = find(objects, "Service", "egret-control").spec as { ports: { port: number; targetPort: string; name: string }[] };
  assert.ok(service.ports.some((p) => p.port === tlsPort && p.targetPort === "grpc-tls" && p.name.startsWith("grpc-")), "Istio sees the TLS port as gRPC (HTTP/2)");
  const dr = find(objects, "DestinationRule").spec as { host: string; trafficPolicy: { portLevelSettings: { port: { number: number }; tls: Record<string, unknown> }[] } };
  assert.equal(dr.host, clusterHost);
  const portTls = dr.trafficPolicy.portLevelSettings.find((p) => p.port.number === tlsPort)?.tls;
  assert.deepEqual(portTls, { mode: "SIMPLE", credentialName: `configmap://egret-system/${ca.name}`, sni: serverName, subjectAltNames: [serverName] });

  const np = objects.filter((o) => o.kind === "NetworkPolicy" && o.metadata.name === "egret-control-ingress")[0]!.spec as { ingress: { ports: { port: number }[] }[] };
  assert.ok(np.ingress.some((r) => r.ports.some((p) => p.port === tlsPort)), "the NetworkPolicy admits the TLS port");
  return { servingSecret: cert.name, caConfigMap: ca.name, serverName, tlsPort };
}

type Rule = { resources: string[]; verbs: string[]; resourceNames?: string[] };
/** What the Job's Role lets it do to `resource` named `name`. */
const allowed = (rules: Rule[], resource: string, name: string) => rules.filter((r) => r.resources.includes(resource) && (!r.resourceNames || r.resourceNames.includes(name))).flatMap((r) => r.verbs);

test("TLS wiring (bootstrap, the default): control, agents, sidecars and the bootstrap Job agree on Secret, CA ConfigMap, port and server name", () => {
  const objects = render();
  const w = wiringOf(objects);
  const jobs = objects.filter((o) => o.kind === "Job" || o.kind === "CronJob");
  assert.deepEqual(jobs.map((j) => j.kind).sort(), ["CronJob", "Job"], "made at install, renewed on a schedule");
  for (const job of jobs) {
    const pod = podOf(job);
    const args = pod.containers[0]!.args;
    assert.deepEqual(args.slice(0, 2), ["tls", "bootstrap"]);
    assert.equal(one(args, "tls-secret"), w.servingSecret);
    assert.equal(one(args, "ca-configmap"), w.caConfigMap);
    assert.equal(flag(args, "server-name")[0], w.serverName, "the first name is the verified one");
    const caSecret = one(args, "ca-secret");
    assert.notEqual(caSecret, w.servingSecret, "control never mounts the CA key");
    const role = find(objects, "Role", pod.serviceAccountName).rules as Rule[];
    for (const [resource, name, verbs] of [["secrets", caSecret, ["create", "get", "update"]], ["secrets", w.servingSecret, ["create", "get", "update"]], ["configmaps", w.caConfigMap, ["create", "get", "update"]]] as const) {
      assert.deepEqual([...new Set(allowed(role, resource, name))].sort(), verbs, `${resource}/${name}`);
    }
    assert.deepEqual(allowed(role, "secrets", "some-other-secret"), ["create"], "no other Secret is readable");
  }
  const controlPod = podOf(find(objects, "Deployment", "egret-control"));
  assert.ok(!(controlPod.volumes ?? []).some((v) => v.secret?.secretName === one(podOf(jobs[0]!).containers[0]!.args, "ca-secret")));
});

test("--sidecar-tls off (Istio 1.20-1.25): the filters use control's plaintext FilterService port with no TLS to originate; agents keep TLS", () => {
  const objects = renderInstall({ manifestsDir: MANIFESTS, wasmSha256: SHA, sidecarTls: false });
  const control = podOf(find(objects, "Deployment", "egret-control")).containers[0]!;
  const plainPort = Number(one(control.args, "grpc-listen").split(":").pop());
  const tlsPort = Number(one(control.args, "grpc-tls-listen").split(":").pop());
  assert.notEqual(plainPort, tlsPort);
  const config = pluginConfigOf(findEnvoyFilter(objects));
  const [, clusterPort, , clusterHost] = String(config.controlCluster).split("|");
  assert.equal(Number(clusterPort), plainPort, "the filter's gRPC goes to the plaintext port");
  assert.equal(config.controlAuthority, `${clusterHost}:${plainPort}`);
  const service = find(objects, "Service", "egret-control").spec as { ports: { port: number; name: string }[] };
  assert.ok(service.ports.some((p) => p.port === plainPort && p.name.startsWith("grpc-")), "Istio sees the plaintext port as gRPC (HTTP/2)");
  const dr = find(objects, "DestinationRule").spec as { trafficPolicy: { tls: { mode: string }; portLevelSettings?: unknown[] } };
  assert.equal(dr.trafficPolicy.tls.mode, "DISABLE", "no Istio mTLS to control, which has no sidecar");
  assert.equal(dr.trafficPolicy.portLevelSettings, undefined, "no configmap:// credential for an Istio that cannot serve it");
  const np = objects.filter((o) => o.kind === "NetworkPolicy" && o.metadata.name === "egret-control-ingress")[0]!.spec as { ingress: { ports: { port: number }[] }[] };
  assert.ok(np.ingress.some((r) => r.ports.some((p) => p.port === plainPort)), "the NetworkPolicy admits the plaintext port");
  const agent = podOf(find(objects, "DaemonSet", "egret-agent")).containers[0]!;
  assert.equal(Number(one(agent.args, "control-service").split(":").pop()), tlsPort, "agents' tokens still travel over TLS");
  assert.ok(one(agent.args, "ca-file"));
});

test("TLS wiring (--tls cert-manager): the Certificate issues the Secret control mounts for the agents' server name, from a CA Issuer; the Job only publishes the CA", () => {
  const objects = render("cert-manager");
  const w = wiringOf(objects);
  const certs = objects.filter((o) => o.kind === "Certificate");
  const serving = certs.find((c) => (c.spec as { secretName: string }).secretName === w.servingSecret)!.spec as { dnsNames: string[]; issuerRef: { name: string; kind: string }; isCA?: boolean };
  assert.equal(serving.dnsNames[0], w.serverName);
  assert.ok(!serving.isCA);
  const issuer = find(objects, "Issuer", serving.issuerRef.name).spec as { ca?: { secretName: string } };
  assert.ok(issuer.ca, "signed by a CA Issuer, so the Secret carries ca.crt");
  const caCert = certs.find((c) => (c.spec as { secretName: string }).secretName === issuer.ca!.secretName)!.spec as { isCA: boolean };
  assert.equal(caCert.isCA, true);
  for (const job of objects.filter((o) => o.kind === "Job" || o.kind === "CronJob")) {
    const args = podOf(job).containers[0]!.args;
    assert.deepEqual(args.slice(0, 2), ["tls", "publish-ca"]);
    assert.equal(one(args, "tls-secret"), w.servingSecret);
    assert.equal(one(args, "ca-configmap"), w.caConfigMap);
    const role = find(objects, "Role", podOf(job).serviceAccountName).rules as Rule[];
    assert.deepEqual(allowed(role, "secrets", w.servingSecret), ["get"], "reads the serving Secret, writes no Secret");
    assert.deepEqual(allowed(role, "secrets", issuer.ca!.secretName), [], "never reads the CA key");
  }
});

class MemoryStore implements TlsObjectStore {
  readonly objects = new Map<string, Record<string, string>>();
  async get(kind: string, name: string) {
    const data = this.objects.get(`${kind}/${name}`);
    return data && { data, resourceVersion: "1" };
  }
  async create(kind: string, name: string, data: Record<string, string>) {
    this.objects.set(`${kind}/${name}`, data);
  }
  async replace(kind: string, name: string, data: Record<string, string>) {
    this.objects.set(`${kind}/${name}`, data);
  }
}

function ready(address: string, caPem: string, serverName: string, dir: string): Promise<boolean> {
  const caFile = join(dir, `ca-${Math.random().toString(36).slice(2)}.pem`);
  writeFileSync(caFile, caPem);
  const creds = agentCredentials({ caFile, serverName });
  const client = createAgentClient(address, creds.channel, creds.options);
  return new Promise((resolve) => client.waitForReady(Date.now() + 3_000, (err) => {
    client.close();
    resolve(!err);
  }));
}

test("TLS wiring, for real: the material the rendered Job makes carries a grpc-js handshake verified as the rendered agent verifies; the wrong name or CA is refused", async (t) => {
  const objects = render();
  const w = wiringOf(objects);
  const args = podOf(objects.find((o) => o.kind === "Job")!).containers[0]!.args;
  const store = new MemoryStore();
  await ensureControlTls({
    store, now: () => new Date(), serverNames: flag(args, "server-name"), caSecret: one(args, "ca-secret"), tlsSecret: one(args, "tls-secret"),
    caConfigMap: one(args, "ca-configmap"), caDays: 3650, certDays: 90, renewBeforeDays: 30,
  });
  const serving = store.objects.get(`Secret/${w.servingSecret}`)!;
  const caPem = store.objects.get(`ConfigMap/${w.caConfigMap}`)!["ca.crt"]!;
  const server = new grpc.Server();
  const port = await new Promise<number>((resolve, reject) => server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createSsl(null, [{ cert_chain: Buffer.from(serving["tls.crt"]!), private_key: Buffer.from(serving["tls.key"]!) }], false), (err, p) => (err ? reject(err) : resolve(p))));
  const dir = mkdtempSync(join(tmpdir(), "egret-wiring-"));
  t.after(() => {
    server.forceShutdown();
    rmSync(dir, { recursive: true, force: true });
  });
  const address = `127.0.0.1:${port}`;
  assert.equal(await ready(address, caPem, w.serverName, dir), true, "the agent's --ca-file and --tls-server-name verify control");
  assert.equal(await ready(address, caPem, "egret-control-agents.egret-system.svc", dir), false, "the headless Service's name is not in the certificate");
  const other = new MemoryStore();
  await ensureControlTls({ store: other, now: () => new Date(), serverNames: [w.serverName], caSecret: "a", tlsSecret: "b", caConfigMap: "c", caDays: 10, certDays: 5, renewBeforeDays: 1 });
  assert.equal(await ready(address, other.objects.get("ConfigMap/c")!["ca.crt"]!, w.serverName, dir), false, "another install's CA is refused");
});
