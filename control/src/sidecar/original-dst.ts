// The destination a connection had before iptables REDIRECT (SO_ORIGINAL_DST), through the
// native addon built by scripts/build-native.mjs into dist/native/original_dst.node.
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type { Socket } from "node:net";

const ADDON = fileURLToPath(new URL("../../../native/original_dst.node", import.meta.url));
const STATUS = fileURLToPath(new URL("../../../native/original_dst.status", import.meta.url));

interface Addon { originalDst(fd: number): { address: string; port: number; family: 4 | 6 } }
let addon: Addon | undefined;
let loadError: string | undefined;

/** Loads the addon; throws an explanation (what failed and how to fix it) when unavailable. */
export function loadOriginalDst(): Addon {
  if (addon) return addon;
  if (loadError) throw new Error(loadError);
  try {
    addon = createRequire(import.meta.url)(ADDON) as Addon;
    return addon;
  } catch (e) {
    let why = (e as Error).message.split("\n")[0];
    try { why = readFileSync(STATUS, "utf8").trim(); } catch { /* no status file: the addon was never attempted */ }
    loadError = `the SO_ORIGINAL_DST addon is unavailable (${ADDON}): ${why}. ` +
      "Run `npm run build:native` (needs g++ and Node's headers), or use --target / --proxy-protocol instead of iptables REDIRECT.";
    throw new Error(loadError);
  }
}

/** "ip:port" the client originally connected to; throws when the socket was not redirected. */
export function originalDestination(socket: Socket): string {
  const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (typeof fd !== "number" || fd < 0) throw new Error("socket has no file descriptor");
  const d = loadOriginalDst().originalDst(fd);
  return d.family === 6 ? `[${d.address}]:${d.port}` : `${d.address}:${d.port}`;
}
