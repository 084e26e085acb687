// The loader's options hold over a real socket: snake_case keys, numbers for 64-bit fields,
// enum names, Buffers for bytes, defaults filled in.
import { test } from "node:test";
import assert from "node:assert/strict";
import * as grpc from "@grpc/grpc-js";
import {
  agentServiceDefinition,
  bytesToIp,
  createFilterClient,
  filterServiceDefinition,
  ipToBytes,
  lookup,
  type FilterServiceHandlers,
  type LookupRequest,
} from "../../src/proto/index.js";

test("ipToBytes/bytesToIp round-trip IPv4, IPv6 and IPv4-mapped forms", () => {
  for (const ip of ["192.0.2.1", "0.0.0.0", "2001:db8::1", "::", "::1", "fe80::1:2:3:4", "2001:db8:0:1:1:1:1:1", "::ffff:0:c000:201"]) {
    assert.equal(bytesToIp(ipToBytes(ip)), ip);
  }
  // IPv4-mapped is the IPv4 address (address-normal-form.test.ts): 4 bytes, dotted text.
  assert.deepEqual([...ipToBytes("::ffff:192.0.2.1")], [192, 0, 2, 1]);
  assert.equal(bytesToIp(ipToBytes("::ffff:c000:201")), "192.0.2.1");
  assert.equal(bytesToIp(ipToBytes("2001:DB8:0:0:0:0:0:1")), "2001:db8::1");
  assert.throws(() => ipToBytes("example.com"), /not an IP address/);
  assert.equal(bytesToIp(new Uint8Array(5)), undefined);
});

test("a Lookup over a real socket decodes with the documented loader options", async (t) => {
  const server = new grpc.Server();
  let seen: LookupRequest | undefined;
  const handlers: FilterServiceHandlers = {
    Watch: (call) => call.end(),
    Report: (_call, cb) => cb(null, {}),
    Lookup: (call, cb) => {
      seen = call.request;
      cb(null, {
        result: "LOOKUP_RESULT_FOUND",
        resolution: { ip: call.request.destination_ip, names: [{ name: "db.example.com", cname_chain: ["x.cdn.example"], expires_unix_ms: 1_900_000_000_123 }], expires_unix_ms: 1_900_000_000_123 },
        server_time_unix_ms: 1_800_000_000_000,
      });
    },
  };
  server.addService(filterServiceDefinition(), handlers);
  server.addService(agentServiceDefinition(), { Observe: (call: grpc.ServerDuplexStream<unknown, unknown>) => call.end() });
  const port = await new Promise<number>((res, rej) => server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))));
  const client = createFilterClient(`127.0.0.1:${port}`);
  t.after(() => {
    client.close();
    server.forceShutdown();
  });
  const response = await lookup(client, { source_ip: ipToBytes("198.18.1.2"), destination_ip: ipToBytes("2001:db8::7"), wait_ms: 250 }, 10_000);
  assert.ok(seen);
  assert.ok(Buffer.isBuffer(seen.source_ip));
  assert.equal(bytesToIp(seen.source_ip), "198.18.1.2");
  assert.equal(seen.wait_ms, 250);
  assert.equal(seen.pod_name, "", "absent strings decode to their default");
  assert.equal(response.result, "LOOKUP_RESULT_FOUND");
  assert.equal(typeof response.server_time_unix_ms, "number");
  assert.equal(response.server_time_unix_ms, 1_800_000_000_000);
  assert.ok(response.resolution);
  assert.equal(bytesToIp(response.resolution.ip), "2001:db8::7");
  assert.deepEqual(response.resolution.names[0].cname_chain, ["x.cdn.example"]);
  assert.equal(response.resolution.names[0].expires_unix_ms, 1_900_000_000_123);
});
