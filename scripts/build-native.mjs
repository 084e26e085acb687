#!/usr/bin/env node
// Builds the sidecar's native addon (control/src/sidecar/native/original_dst.cc) into
// dist/native/original_dst.node with the system C++ compiler and Node's own headers. It is a
// Node-API addon: no node-gyp, no downloads, works offline and under `npm ci`.
// Never fails the build: without a compiler or headers it explains what is missing, and
// `egret sidecar` then refuses only the iptables-REDIRECT mode with the same explanation.
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, writeFileSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const source = join(root, "control", "src", "sidecar", "native", "original_dst.cc");
const outDir = join(root, "dist", "native");
const out = join(outDir, "original_dst.node");
const status = join(outDir, "original_dst.status");
mkdirSync(outDir, { recursive: true });

const prefix = join(dirname(process.execPath), "..");
const candidates = [
  process.env.EGRET_NODE_INCLUDE,
  join(prefix, "include", "node"),
  "/usr/include/node",
  "/usr/local/include/node",
  join(process.env.HOME ?? "/root", ".cache", "node-gyp", process.versions.node, "include", "node"),
].filter(Boolean);
const include = candidates.find((d) => existsSync(join(d, "node_api.h")));
const cxx = process.env.CXX ?? "g++";

function giveUp(reason) {
  rmSync(out, { force: true });
  writeFileSync(status, reason + "\n");
  console.warn(`build-native: original_dst addon NOT built: ${reason}\n` +
    "build-native: egret sidecar will work with --target or --proxy-protocol, not behind iptables REDIRECT.");
  process.exit(0);
}

if (process.platform !== "linux") giveUp(`SO_ORIGINAL_DST is Linux-only (platform ${process.platform})`);
if (!include) giveUp(`node_api.h not found (looked in ${candidates.join(", ")}); set EGRET_NODE_INCLUDE or install Node's headers`);
const r = spawnSync(cxx, ["-std=c++17", "-O2", "-Wall", "-fPIC", "-shared", `-I${include}`, "-o", out, source], { encoding: "utf8" });
if (r.error) giveUp(`C++ compiler "${cxx}" not runnable (${r.error.code ?? r.error.message}); install g++`);
if (r.status !== 0) giveUp(`${cxx} failed:\n${r.stderr}`);
rmSync(status, { force: true });
console.log(`build-native: built ${out.slice(root.length + 1)}`);
