#!/usr/bin/env node
// Writes manifests/ from the typed install definitions (control/src/deploy/install/) through the
// built code in dist/: run `npm run build:control` first (`npm run manifests` does both).
// Files of the old layout that are no longer generated are reported, not deleted.
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(fileURLToPath(new URL(".", import.meta.url)), "..");
const { manifestTree } = await import(join(root, "dist/control/src/deploy/tree.js"));
const dir = join(root, "manifests");
for (const [path, text] of manifestTree(dir)) {
  mkdirSync(dirname(join(dir, path)), { recursive: true });
  writeFileSync(join(dir, path), text);
  console.log(`wrote manifests/${path}`);
}
