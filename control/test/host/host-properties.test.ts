// Properties for an Istio outbound connection (reference/proxy-wasm.md §4).
import { test } from "node:test";
import assert from "node:assert/strict";
import { lines, probeHost } from "./helpers.js";

const node = { name: "web-7d9f-abcde", namespace: "shop", labels: { app: "web", "app.kubernetes.io/part-of": "store" }, instanceIps: ["10.1.0.7", "fd00::7"] };

// Test the root-context properties: plugin identity and xds.node metadata, NUL-separated paths (§4.1, §4.3).
test("root context sees plugin_* and xds.node metadata NAME/NAMESPACE/LABELS/INSTANCE_IPS", async () => {
  const host = await probeHost("props", { concurrency: 1, node, pluginName: "shop.egret", rootId: "egret", vmId: "egret-vm" });
  try {
    const root = lines(host, "root props", "main")[0];
    assert.equal(root, "root props plugin_name=shop.egret root_id=egret vm_id=egret-vm node.id=sidecar~10.1.0.7~web-7d9f-abcde.shop~shop.svc.cluster.local" +
      " NAME=web-7d9f-abcde NAMESPACE=shop INSTANCE_IPS=10.1.0.7,fd00::7 label.app=web direction=2 source=<1> legacy=<1>");
    // A map property comes back as pairs (§4.2); a label key containing dots is one segment.
    assert.deepEqual(lines(host, "labels", "main"), ["labels app=web app.kubernetes.io/part-of=store"]);
    // "source.address" as ONE segment is NotFound (§4.1).
    assert.deepEqual(lines(host, "dotted-path=", "main"), ["dotted-path=null"]);
  } finally { await host.close(); }
});

// Test the legacy pre-1.33 `node` property behind its flag (§4.3 version trap).
test("legacy node.* properties exist only when enabled", async () => {
  const host = await probeHost("props", { concurrency: 1, node, legacyNodeProperties: true });
  try { assert.match(lines(host, "root props", "main")[0], /legacy=web-7d9f-abcde$/); } finally { await host.close(); }
});

// Test connection properties: addresses include the port, ports are int64 LE, upstream only once connected (§4.2, §4.3).
test("stream context sees source/destination with ports, connection_id, and upstream after connect", async () => {
  const host = await probeHost("props", { concurrency: 1, node });
  try {
    const c = host.openConnection({ source: "10.1.0.7:43210", destination: "198.18.0.10:5432", autoConnectUpstream: false });
    assert.deepEqual(lines(host, "props source="), [
      "props source=10.1.0.7:43210 source.port=i64:43210 destination=198.18.0.10:5432 destination.port=i64:5432 upstream=<1> NAME=web-7d9f-abcde",
    ]);
    // proxy_set_property writes filter state wasm.<path>, readable back (§1.2).
    assert.deepEqual(lines(host, "set_property="), ["set_property=0 get=abc wasm.=abc"]);
    assert.deepEqual(lines(host, "connection_id bytes="), ["connection_id bytes=8"]);
    c.upstreamConnected();
    c.downstreamData(Buffer.from("x"));
    assert.deepEqual(lines(host, "props upstream="), ["props upstream=198.18.0.10:5432"]);
  } finally { await host.close(); }
});

// Test IPv6 address formatting ([addr]:port) as Envoy prints it (§4.3).
test("IPv6 destinations are [addr]:port", async () => {
  const host = await probeHost("props", { concurrency: 1 });
  try {
    host.openConnection({ source: "[fd00::7]:5000", destination: "[2001:db8::1]:443" });
    assert.match(lines(host, "props source=")[0], /source=\[fd00::7\]:5000 .*destination=\[2001:db8::1\]:443 destination.port=i64:443/);
  } finally { await host.close(); }
});

// Test that a malformed address is refused clearly (§4.3 addresses are ip:port).
test("openConnection rejects malformed addresses", async () => {
  const host = await probeHost("", { concurrency: 1 });
  try {
    assert.throws(() => host.openConnection({ source: "10.0.0.1", destination: "198.18.0.1:80" }), /connection source: "10\.0\.0\.1" is not host:port/);
  } finally { await host.close(); }
});
