#!/usr/bin/env node
// Builds the native addons into dist/native/NAME.node with the system C++ compiler and Node's own
// headers: the sidecar's SO_ORIGINAL_DST reader (control/src/sidecar/native/original_dst.cc) and
// the agent's AF_PACKET/TPACKET_V3 capture ring (control/src/agent/native/packet_ring.cc). They
// are Node-API addons: no node-gyp, no downloads, work offline and under `npm ci`.
// Never fails the build: without a compiler or headers it explains what is missing, and the
// command that needs the addon refuses with the same explanation.
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, writeFileSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const outDir = join(root, "dist", "native");
mkdirSync(outDir, { recursive: true });

/** Each addon: its source, and what works without it (printed when it cannot be built). */
const ADDONS = [
  {
    name: "original_dst",
    source: join(root, "control", "src", "sidecar", "native", "original_dst.cc"),
    why: "SO_ORIGINAL_DST is Linux-only",
    without: "egret sidecar will work with --target or --proxy-protocol, not behind iptables REDIRECT.",
  },
  {
    name: "packet_ring",
    source: join(root, "control", "src", "agent", "native", "packet_ring.cc"),
    why: "AF_PACKET is Linux-only",
    without: "egret agent cannot capture live (it refuses to start with this reason); offline commands are unaffected.",
  },
];

const prefix = join(dirname(process.execPath), "..");
const candidates = [
  process.env.EGRET_NODE_INCLUDE,
  join(prefix, "include", "node"),
  "/usr/include/node",
  "/usr/local/include/node",
  join(process.env.HOME ?? "/root", ".cache", "node-gyp", process.versions.node, "include", "node"),
].filter(Boolean);
const include = candidates.find((d) => existsSync(join(d, "node_api.h")) && existsSync(join(d, "uv.h")));
const cxx = process.env.CXX ?? "g++";

function build(addon) {
  const out = join(outDir, `${addon.name}.node`);
  const status = join(outDir, `${addon.name}.status`);
  const giveUp = (reason) => {
    rmSync(out, { force: true });
    writeFileSync(status, reason + "\n");
    console.warn(`build-native: ${addon.name} addon NOT built: ${reason}\nbuild-native: ${addon.without}`);
  };
  if (process.platform !== "linux") return giveUp(`${addon.why} (platform ${process.platform})`);
  if (!include) return giveUp(`node_api.h and uv.h not found (looked in ${candidates.join(", ")}); set EGRET_NODE_INCLUDE or install Node's headers`);
  const r = spawnSync(cxx, ["-std=c++17", "-O2", "-Wall", "-fPIC", "-shared", "-pthread", `-I${include}`, "-o", out, addon.source], { encoding: "utf8" });
  if (r.error) return giveUp(`C++ compiler "${cxx}" not runnable (${r.error.code ?? r.error.message}); install g++`);
  if (r.status !== 0) return giveUp(`${cxx} failed:\n${r.stderr}`);
  rmSync(status, { force: true });
  console.log(`build-native: built ${out.slice(root.length + 1)}`);
}

// Never fails the build: each addon that cannot be built leaves its reason in NAME.status.
for (const addon of ADDONS) build(addon);
