// The one host:port parser (control/src/common/host-port.ts): every flag, file field and address
// reads endpoints through it, so one table of texts decides what Egret accepts everywhere.
import { test } from "node:test";
import assert from "node:assert/strict";
import { formatHostPort, parseHostPort, tryParseHostPort, HostPortError } from "../../src/common/host-port.js";

test("host:port: accepted forms", () => {
  assert.deepEqual(parseHostPort("egret-control:9090", "x"), { host: "egret-control", port: 9090 });
  assert.deepEqual(parseHostPort("198.18.0.1:1", "x"), { host: "198.18.0.1", port: 1 });
  assert.deepEqual(parseHostPort("[fd00::1]:9090", "x"), { host: "fd00::1", port: 9090 });
  assert.deepEqual(parseHostPort("[::ffff:198.18.0.1]:443", "x"), { host: "::ffff:198.18.0.1", port: 443 });
  assert.deepEqual(parseHostPort("h:65535", "x"), { host: "h", port: 65535 });
});

test("host:port: rejected forms name what was read and give an example", () => {
  for (const bad of ["egret-control", "h:", ":9090", "h:0", "h:65536", "h:99999999", "h:-1", "h:9090x", "fd00::1:9090", "[fd00::1]", "[198.18.0.1]:80", "[]:80", "h:p", " h:1", "a:b:1"]) {
    assert.equal(tryParseHostPort(bad), undefined, bad);
    assert.throws(() => parseHostPort(bad, "--grpc-listen"), (e: unknown) => e instanceof HostPortError && e.message.startsWith(`--grpc-listen: ${JSON.stringify(bad)} is not host:port (e.g. egret-control:9090 or [fd00::1]:9090; port 1–65535)`), bad);
  }
});

test("host:port: listen addresses may leave the host out and ask for any free port", () => {
  const listen = { allowEmptyHost: true, allowPortZero: true };
  assert.deepEqual(parseHostPort(":9090", "x", listen), { host: "0.0.0.0", port: 9090 });
  assert.deepEqual(parseHostPort("127.0.0.1:0", "x", listen), { host: "127.0.0.1", port: 0 });
  assert.deepEqual(parseHostPort(":0", "x", { ...listen, emptyHost: "::" }), { host: "::", port: 0 });
  assert.throws(() => parseHostPort("h:70000", "--metrics-address", listen), /--metrics-address: "h:70000" is not host:port .*port 0–65535, 0 = any free port; :PORT = every address/);
});

test("host:port: formatting round-trips, IPv6 in brackets", () => {
  for (const [host, port] of [["egret-control", 9090], ["198.18.0.1", 443], ["fd00::1", 53], ["::ffff:198.18.0.1", 80]] as const) {
    const text = formatHostPort(host, port);
    assert.deepEqual(parseHostPort(text, "x"), { host, port });
  }
  assert.equal(formatHostPort("fd00::1", 53), "[fd00::1]:53");
});
