// The EnvoyFilter's plugin configuration goes through the real filter: egret.wasm loaded in the
// Node proxy-wasm host exactly as Envoy would (canary + worker VMs, proxy_on_configure). A
// rejected configuration is not a cosmetic problem: with failure_policy FAIL_CLOSED it closes
// every outbound connection of every sidecar, so it must be caught here.
import { strict as assert } from "node:assert";
import { existsSync, readFileSync } from "node:fs";
import { createServer as createH2Server } from "node:http2";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { EnvoyHost } from "../../control/src/host/index.js";
import { defaultInstallObjects } from "../../control/src/deploy/render.js";
import { findEnvoyFilter, pluginConfigOf } from "../../control/src/deploy/render.js";

const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
const WASM = join(ROOT, "filter", "build", "egret.wasm");
const enforcementRegistered = /egress/.test(readFileSync(join(ROOT, "filter", "assembly", "index.ts"), "utf8"));
const config = pluginConfigOf(findEnvoyFilter(defaultInstallObjects(join(ROOT, "manifests"))));

async function configure(pluginConfig: string): Promise<{ ok: true } | { ok: false; error: string }> {
  let host: EnvoyHost | undefined;
  try {
    host = await EnvoyHost.create({
      wasm: WASM, pluginConfig, vmId: "egret", rootId: "egret", pluginName: "egret", concurrency: 1,
      node: { name: "app-0", namespace: "shop", labels: { app: "web" }, instanceIps: ["10.1.0.7"] },
      // A closed port: the filter's Watch fails and backs off; configuration is what is tested.
      grpcClusters: { [String(config.controlCluster)]: "127.0.0.1:9" },
      failurePolicy: "FAIL_CLOSED",
    });
    return { ok: true };
  } catch (err) {
    return { ok: false, error: (err as Error).message };
  } finally {
    await host?.close();
  }
}

test("the manifest's plugin configuration is accepted by egret.wasm's proxy_on_configure", async () => {
  assert.ok(existsSync(WASM), "filter/build/egret.wasm is built (npm run build)");
  const r = await configure(JSON.stringify(config));
  assert.deepEqual(r, { ok: true });
});

test("a configuration the enforcement filter cannot use is rejected (so the check above has teeth)", async (t) => {
  if (!enforcementRegistered) { t.skip("egret.wasm does not register the enforcement filter (filter/assembly/egress/) yet"); return; }
  const misspelled = await configure(JSON.stringify({ ...config, lookupTimeoutMS: 250 }));
  assert.equal(misspelled.ok, false);
  assert.match((misspelled as { error: string }).error, /lookupTimeoutMS/);
  const snakeCase = await configure(JSON.stringify({ control_cluster: config.controlCluster }));
  assert.equal(snakeCase.ok, false);
});

test("with the manifest's configuration the filter opens its Watch with the Service's authority (not the cluster name)", async () => {
  // A bare HTTP/2 server stands in for egret control and records what the filter's gRPC callout
  // sends: Istio's server side rejects ":authority: outbound|…" (istio#27918), so the serialized
  // GrpcService must carry controlAuthority.
  const seen: { authority?: string; path?: string }[] = [];
  const server = createH2Server();
  server.on("stream", (stream, headers) => {
    seen.push({ authority: headers[":authority"], path: headers[":path"] });
    stream.respond({ ":status": 200, "content-type": "application/grpc", "grpc-status": "12" }, { endStream: true });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as AddressInfo).port;
  let host: EnvoyHost | undefined;
  try {
    host = await EnvoyHost.create({
      wasm: WASM, pluginConfig: JSON.stringify(config), vmId: "egret", rootId: "egret", pluginName: "egret", concurrency: 1,
      node: { name: "app-0", namespace: "shop", labels: { app: "web" }, instanceIps: ["10.1.0.7"] },
      grpcClusters: { [String(config.controlCluster)]: `127.0.0.1:${port}` },
      failurePolicy: "FAIL_CLOSED",
    });
    const deadline = Date.now() + 30_000;
    while (!seen.some((s) => s.path?.startsWith("/egret.v1.FilterService/")) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    const call = seen.find((s) => s.path?.startsWith("/egret.v1.FilterService/"));
    assert.ok(call, `the filter called FilterService (saw ${JSON.stringify(seen)})`);
    assert.equal(call.authority, config.controlAuthority);
  } finally {
    await host?.close();
    server.close();
  }
});
