// egret learn's parts: sibling collapse bounded by the public suffix list, workloads from stable labels.
import { test } from "node:test";
import assert from "node:assert/strict";
import { collapseNames } from "../../src/learn/collapse.js";
import { stableLabels, workloadSelector, type Workload } from "../../src/learn/workloads.js";
import { selectorMatches } from "../../src/policy/index.js";

const keys = (m: Map<string, string[]>) => [...m.keys()];

test("collapse: *. with at least N one-label siblings, **. at mixed depths, exact names otherwise", () => {
  assert.deepEqual(keys(collapseNames(["a.x.example.com", "b.x.example.com", "c.x.example.com"], 3)), ["*.x.example.com"]);
  assert.deepEqual(keys(collapseNames(["a.x.example.com", "b.x.example.com"], 3)), ["a.x.example.com", "b.x.example.com"]);
  assert.deepEqual(keys(collapseNames(["a.x.example.com", "b.y.example.com", "c.example.com"], 3)), ["**.example.com"]);
  assert.deepEqual(keys(collapseNames(["a.x.example.com", "b.x.example.com", "c.x.example.com"], 4)), ["a.x.example.com", "b.x.example.com", "c.x.example.com"]);
  // The apex is never implied: example.com stays itself.
  assert.deepEqual(keys(collapseNames(["example.com", "a.example.com", "b.example.com", "c.example.com"], 3)), ["*.example.com", "example.com"]);
});

test("collapse: never above a registrable domain (public suffix list, private suffixes included)", () => {
  assert.deepEqual(keys(collapseNames(["a.co.uk", "b.co.uk", "c.co.uk"], 3)), ["a.co.uk", "b.co.uk", "c.co.uk"]);
  assert.deepEqual(keys(collapseNames(["one.example.com", "two.example.org", "three.example.net"], 2)), ["one.example.com", "three.example.net", "two.example.org"]);
  assert.deepEqual(keys(collapseNames(["alice.github.io", "bob.github.io", "carol.github.io"], 3)), ["alice.github.io", "bob.github.io", "carol.github.io"]);
  assert.deepEqual(keys(collapseNames(["x.alice.github.io", "y.alice.github.io", "z.alice.github.io"], 3)), ["*.alice.github.io"]);
});

test("workloads: volatile labels dropped; a selector never selects another workload of the namespace", () => {
  assert.deepEqual(stableLabels({ app: "web", "pod-template-hash": "7d9f", "controller-revision-hash": "x", track: "stable" }), { app: "web", track: "stable" });
  const w = (labels: Record<string, string>): Workload => ({ namespace: "shop", labels, pods: new Set(), key: JSON.stringify(labels) });
  const web = w({ app: "web" }), canary = w({ app: "web", track: "canary" }), other = w({ app: "api" });
  const all = [web, canary, other];
  const sel = workloadSelector(web, all);
  assert.equal(selectorMatches(sel, web.labels), true);
  assert.equal(selectorMatches(sel, canary.labels), false);
  assert.equal(selectorMatches(sel, other.labels), false);
  assert.equal(selectorMatches(workloadSelector(canary, all), canary.labels), true);
  assert.equal(selectorMatches(workloadSelector(canary, all), web.labels), false);
});
