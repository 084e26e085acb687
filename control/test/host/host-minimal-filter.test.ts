// The minimal filter (filter/assembly/minimal/) end to end in the host: counts and logs
// connections with destination.address, counts bytes, reports destinations on a gRPC stream.
import { test } from "node:test";
import assert from "node:assert/strict";
import * as grpc from "@grpc/grpc-js";
import { EnvoyHost } from "../../src/host/index.js";
import { eventually, lines, openConnected, probePath, startGrpcServer } from "./helpers.js";

const CLUSTER = "outbound|9000||egret-control.egret-system.svc.cluster.local";

// Test that the filter logs the destination, counts connections/bytes, and reports over gRPC (§4.3, §8, §5).
test("minimal filter: destination logged, metrics counted, destinations streamed to control", async () => {
  const received: string[] = [];
  const calls: grpc.ServerDuplexStream<Buffer, Buffer>[] = [];
  const srv = await startGrpcServer({ watch: () => undefined });
  // The minimal filter reports on egret.minimal.Reporter/Connections: register it too.
  srv.server.addService({
    Connections: { path: "/egret.minimal.Reporter/Connections", requestStream: true, responseStream: true,
      requestSerialize: (b: Buffer) => b, requestDeserialize: (b: Buffer) => b, responseSerialize: (b: Buffer) => b, responseDeserialize: (b: Buffer) => b },
  } as grpc.ServiceDefinition, {
    Connections: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
      calls.push(call);
      call.on("data", (m: Buffer) => { received.push(m.toString()); call.write(Buffer.from(`ack ${m}`)); });
      call.on("error", () => undefined);
    },
  });
  const host = await EnvoyHost.create({
    wasm: probePath("host_minimal"), concurrency: 2,
    pluginConfig: JSON.stringify({ grpc_cluster: CLUSTER, grpc_authority: "egret-control.egret-system.svc.cluster.local:9000" }),
    grpcClusters: { [CLUSTER]: srv.address },
  });
  try {
    const a = await openConnected(host, { source: "10.1.0.7:40000", destination: "198.18.0.10:5432" });
    const b = await openConnected(host, { source: "10.1.0.7:40001", destination: "[2001:db8::5]:443" });
    a.downstreamData(Buffer.from("12345"));
    a.upstreamData(Buffer.from("abc"));
    b.downstreamData(Buffer.from("xy"));
    a.downstreamClose();
    assert.deepEqual(lines(host, "minimal: connection to "), ["minimal: connection to 198.18.0.10:5432", "minimal: connection to [2001:db8::5]:443"]);
    assert.equal(host.metric("minimal_connections_total"), 2);
    assert.equal(host.metric("minimal_connections_active"), 1);
    assert.equal(host.metric("minimal_downstream_bytes_total"), 7);
    assert.equal(host.metric("minimal_upstream_bytes_total"), 3);
    await eventually(() => received.length === 2, 10_000, "two reports");
    assert.deepEqual(received.sort(), ["198.18.0.10:5432", "[2001:db8::5]:443"]);
    await eventually(() => host.metric("minimal_grpc_messages_total") === 2, 10_000, "acks");
    assert.deepEqual(lines(host, "minimal: control says ").sort(), ["minimal: control says ack 198.18.0.10:5432", "minimal: control says ack [2001:db8::5]:443"]);
    assert.ok(calls.length >= 3, "main and both workers opened their own stream");
  } finally { await host.close(); srv.server.forceShutdown(); }
});

// Test that a stream failure is logged and the filter keeps passing traffic (§5: failure = close only).
test("minimal filter: control unreachable is logged, traffic still flows", async () => {
  const host = await EnvoyHost.create({ wasm: probePath("host_minimal"), concurrency: 1, pluginConfig: JSON.stringify({ grpc_cluster: "nowhere" }) });
  try {
    await eventually(() => lines(host, "minimal: gRPC stream closed with status 14").length >= 2, 10_000, "stream failure");
    const c = await openConnected(host, { source: "10.1.0.7:1", destination: "198.18.0.1:80" });
    c.downstreamData(Buffer.from("hi"));
    assert.equal(c.sentUpstream.toString(), "hi");
  } finally { await host.close(); }
});
