// `egret import` equivalence: for each fixture (control/test/fixtures/import/), a table of
// connections judged twice — by the source system's documented semantics, written here by hand in
// `source`, and by Egret's engine through `egret explain --json` over the imported policies. They
// must agree, except where the row says `egret` differs and the report calls that rule "stricter".
// Every import must also validate with 0 errors and report every source rule.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { tmpdir } from "node:os";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";

const BIN = fileURLToPath(new URL("../../../../bin/egret.js", import.meta.url));
const FIXTURES = fileURLToPath(new URL("../../../../control/test/fixtures/import/", import.meta.url));
const egret = (...args: string[]) => spawnSync(process.execPath, [BIN, ...args], { encoding: "utf8" });

type V = "allow" | "deny";
interface Row {
  what: string;
  pod: string;                // NS/NAME:labels
  ns?: string;                // namespace labels k=v,…
  to: string;                 // NAME:PORT or IP:PORT
  names?: string[];           // names the pod resolved to the IP (with an IP `to`)
  protocol?: string;
  sni?: string;
  source: V;                  // the source system's verdict (its documented semantics)
  egret?: V;                  // Egret's verdict when it differs — only where the report says stricter
  stricter?: string;          // report path of the stricter rule
}

interface Report { report: { source: string; path: string; status: string; egret: string[] }[] }

function importFixture(file: string): { dir: string; policy: string; report: Report } {
  const dir = mkdtempSync(join(tmpdir(), "egret-import-"));
  const r = egret("import", join(FIXTURES, file), "--report", "json");
  assert.equal(r.status, 0, r.stderr);
  const policy = join(dir, "imported.yaml");
  writeFileSync(policy, r.stdout);
  const v = egret("validate", "--json", policy);
  const parsed = JSON.parse(v.stdout) as { errors: number; diagnostics: unknown[] };
  assert.equal(parsed.errors, 0, JSON.stringify(parsed.diagnostics));
  return { dir, policy, report: JSON.parse(r.stderr) as Report };
}

function explain(policy: string, row: Row): { verdict: string; reason: string; policy: string | null; rule: string | null } {
  const args = ["explain", "--json", "--policy", policy, "--pod", row.pod, "--to", row.to];
  if (row.ns) args.push("--namespace-labels", row.ns);
  for (const n of row.names ?? []) args.push("--name", n);
  if (row.protocol) args.push("--protocol", row.protocol);
  if (row.sni) args.push("--sni", row.sni);
  const r = egret(...args);
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as { verdict: string; reason: string; policy: string | null; rule: string | null };
}

function checkTable(file: string, rows: Row[], expectStatuses: Record<string, string> = {}): void {
  test(`import ${file}: the source's verdicts and Egret's agree (except where the report says stricter)`, () => {
    const { dir, policy, report } = importFixture(file);
    try {
      for (const [path, status] of Object.entries(expectStatuses)) {
        const e = report.report.find((x) => x.path === path);
        assert.ok(e, `report has an entry for ${path}: ${JSON.stringify(report.report.map((x) => x.path))}`);
        assert.equal(e.status, status, `status of ${path}`);
      }
      for (const row of rows) {
        const got = explain(policy, row);
        const verdict: V = got.verdict === "allow" || got.verdict === "alert" ? "allow" : "deny";
        assert.notEqual(got.verdict, "pending", `${row.what}: pending — the table must give --protocol`);
        const want = row.egret ?? row.source;
        if (row.egret && row.egret !== row.source) {
          const e = report.report.find((x) => x.path === row.stricter);
          assert.equal(e?.status, "stricter", `${row.what}: differs from the source, so the report must call ${row.stricter} stricter`);
        }
        assert.equal(verdict, want, `${row.what}: egret ${got.verdict} (${got.reason}, ${got.policy}#${got.rule}); source ${row.source}`);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

// Kubernetes NetworkPolicy: union of allows for selected pods; unselected pods are not isolated.
checkTable("networkpolicy-seed.yaml", [
  { what: "role=app to the database subnet on 5432", pod: "shop/app-1:role=app", to: "10.10.3.4:5432", source: "allow" },
  { what: "role=app to the database subnet on another port", pod: "shop/app-1:role=app", to: "10.10.3.4:5433", source: "deny" },
  { what: "role=app outside the subnet", pod: "shop/app-1:role=app", to: "10.11.0.1:5432", source: "deny" },
  { what: "role=app to a public name on 443", pod: "shop/app-1:role=app", to: "www.example.com:443", protocol: "tls", source: "deny" },
  { what: "another pod of the namespace is not selected", pod: "shop/web-1:role=web", to: "10.11.0.1:5432", source: "allow" },
  { what: "role=app in another namespace is not selected", pod: "other/app-1:role=app", to: "10.11.0.1:5432", source: "allow" },
], { "spec.egress[0].to[0]": "exact", "spec.egress[1].to[0]": "not-expressible", "spec.egress[1].ports": "not-expressible" });

// OpenShift EgressNetworkPolicy: first match within the object, unmatched allowed, in-cluster unaffected.
checkTable("openshift-seed.yaml", [
  { what: "google.com (allowed first)", pod: "news/reader-1:app=reader", to: "google.com:443", protocol: "tls", source: "allow" },
  { what: "cnn.com", pod: "news/reader-1:app=reader", to: "cnn.com:80", protocol: "http", source: "allow" },
  { what: "yahoo.com (denied by name)", pod: "news/reader-1:app=reader", to: "yahoo.com:443", protocol: "tls", source: "deny" },
  { what: "anything else outside the cluster", pod: "news/reader-1:app=reader", to: "example.org:443", protocol: "tls", source: "deny" },
  { what: "a pod in the cluster network is unaffected", pod: "news/reader-1:app=reader", to: "10.1.2.3:8080", protocol: "http", source: "allow" },
  { what: "google.com's address with a forged SNI claiming google.com but resolved from yahoo.com", pod: "news/reader-1:app=reader", to: "198.51.100.9:443", names: ["yahoo.com"], protocol: "tls", sni: "google.com", source: "deny" },
  { what: "a name OpenShift resolved to google.com's address, reached with an SNI the pod never resolved", pod: "news/reader-1:app=reader", to: "198.51.100.10:443", names: ["google.com"], protocol: "tls", sni: "www.google.com", source: "allow", egret: "deny", stricter: "spec.egress[0]" },
  { what: "other namespaces are not affected", pod: "sports/x-1:app=x", to: "yahoo.com:443", protocol: "tls", source: "allow" },
]);

// Istio 0.x EgressRule: *.googleapis.com (suffix) https on 443; everything else external blocked.
checkTable("istio-egressrule-seed.yaml", [
  { what: "storage.googleapis.com over TLS on 443", pod: "default/app-1:app=a", to: "storage.googleapis.com:443", protocol: "tls", source: "allow" },
  { what: "a.b.googleapis.com (suffix match)", pod: "default/app-1:app=a", to: "a.b.googleapis.com:443", protocol: "tls", source: "allow" },
  { what: "googleapis.com itself is not *.googleapis.com", pod: "default/app-1:app=a", to: "googleapis.com:443", protocol: "tls", source: "deny" },
  { what: "port 80", pod: "default/app-1:app=a", to: "storage.googleapis.com:80", protocol: "http", source: "deny" },
  { what: "another external host", pod: "default/app-1:app=a", to: "example.com:443", protocol: "tls", source: "deny" },
  { what: "in-cluster service", pod: "default/app-1:app=a", to: "10.96.0.10:80", protocol: "http", source: "allow" },
  { what: "SNI storage.googleapis.com to an address the pod resolved from evil.example.net", pod: "default/app-1:app=a", to: "203.0.113.5:443", names: ["evil.example.net"], protocol: "tls", sni: "storage.googleapis.com", source: "allow", egret: "deny", stricter: "spec.ports (https)" },
  { what: "TLS-port traffic that is not TLS", pod: "default/app-1:app=a", to: "storage.googleapis.com:443", protocol: "ssh", source: "allow", egret: "deny", stricter: "spec.ports (https)" },
]);

// ClusterNetworkPolicy v1alpha2: Admin → NetworkPolicy → Baseline → allow; Pass skips the tier.
checkTable("clusternetworkpolicy.yaml", [
  { what: "metadata service denied in Admin", pod: "dev/a-1:app=a", to: "169.254.169.254:80", protocol: "http", source: "deny" },
  { what: "APIs by name accepted", pod: "prod/a-1:app=a", ns: "env=prod", to: "storage.googleapis.com:443", protocol: "tls", source: "allow" },
  { what: "api.github.com on 80 is not accepted by the Admin rule; prod Baseline denies the internet", pod: "prod/a-1:app=a", ns: "env=prod", to: "api.github.com:80", protocol: "http", source: "deny" },
  { what: "database subnet passed on: no NetworkPolicy, Baseline no-internet denies 0.0.0.0/0 in prod", pod: "prod/a-1:app=a", ns: "env=prod", to: "10.10.1.1:5432", protocol: "postgresql", source: "deny" },
  { what: "database subnet passed on in dev: nothing decides, Kubernetes default allows", pod: "dev/a-1:app=a", ns: "env=dev", to: "10.10.1.1:5432", protocol: "postgresql", source: "allow" },
  { what: "partner network: Baseline Pass, Kubernetes default allows", pod: "prod/a-1:app=a", ns: "env=prod", to: "203.0.113.7:443", protocol: "tls", source: "allow" },
  { what: "dev namespace, unknown external: only the Admin policy selects it, default allows", pod: "dev/a-1:app=a", ns: "env=dev", to: "example.org:443", protocol: "tls", source: "allow" },
], { "spec.egress[3].to[0]": "not-expressible", "spec.egress[2].to[0]": "stricter" });

// AdminNetworkPolicy + BaselineAdminNetworkPolicy v1alpha1.
checkTable("adminnetworkpolicy.yaml", [
  { what: "tracker on 443 denied", pod: "pay/api-1:app=api", ns: "team=pay", to: "198.51.100.4:443", protocol: "tls", source: "deny" },
  { what: "tracker on 8500 (range) denied", pod: "pay/api-1:app=api", ns: "team=pay", to: "198.51.100.4:8500", protocol: "http", source: "deny" },
  { what: "tracker on 80 not matched: default allow", pod: "pay/api-1:app=api", ns: "team=pay", to: "198.51.100.4:80", protocol: "http", source: "allow" },
  { what: "corp ssh: ANP passes, BANP denies", pod: "pay/api-1:app=api", ns: "team=pay", to: "172.16.5.5:22", protocol: "ssh", source: "deny" },
  { what: "corp https: ANP passes, BANP does not match, default allows", pod: "pay/api-1:app=api", ns: "team=pay", to: "172.16.5.5:443", protocol: "tls", source: "allow" },
  { what: "another pay pod: only BANP, corp ssh denied", pod: "pay/worker-1:app=worker", ns: "team=pay", to: "172.16.5.5:22", protocol: "ssh", source: "deny" },
  { what: "stripe allowed", pod: "pay/api-1:app=api", ns: "team=pay", to: "api.stripe.com:443", protocol: "tls", source: "allow" },
]);

// OVN EgressFirewall: `*.` one label, ports, first match.
checkTable("egressfirewall.yaml", [
  { what: "x.ads.example.com denied first", pod: "web/f-1:app=f", to: "x.ads.example.com:443", protocol: "tls", source: "deny" },
  { what: "www.example.com on 443 allowed", pod: "web/f-1:app=f", to: "www.example.com:443", protocol: "tls", source: "allow" },
  { what: "a.b.example.com is two labels: not matched, denied by 0.0.0.0/0", pod: "web/f-1:app=f", to: "a.b.example.com:443", protocol: "tls", source: "deny" },
  { what: "www.example.com on 80: port not listed, denied", pod: "web/f-1:app=f", to: "www.example.com:80", protocol: "http", source: "deny" },
  { what: "192.0.2.1 over TCP: the UDP-only rule does not match TCP", pod: "web/f-1:app=f", to: "192.0.2.1:123", protocol: "unknown", source: "deny" },
  { what: "in-cluster traffic is not affected", pod: "web/f-1:app=f", to: "10.0.0.5:443", protocol: "tls", source: "allow" },
], { "spec.egress[3]": "not-expressible", "spec.egress[2].ports": "not-expressible" });

// Istio ServiceEntry + REGISTRY_ONLY + Sidecar ALLOW_ANY.
checkTable("istio-serviceentry.yaml", [
  { what: "payments over HTTPS", pod: "shop/a-1:app=a", to: "api.payments.example.com:443", protocol: "tls", source: "allow" },
  { what: "payments over HTTP", pod: "shop/a-1:app=a", to: "api.payments.example.com:80", protocol: "http", source: "allow" },
  { what: "unknown host blocked", pod: "shop/a-1:app=a", to: "example.org:443", protocol: "tls", source: "deny" },
  { what: "wikipedia exported to docs only: shop cannot", pod: "shop/a-1:app=a", to: "en.wikipedia.org:443", protocol: "tls", source: "deny" },
  { what: "wikipedia from docs", pod: "docs/d-1:app=d", to: "en.wikipedia.org:443", protocol: "tls", source: "allow" },
  { what: "payments from docs too (exported everywhere)", pod: "docs/d-1:app=d", to: "api.payments.example.com:443", protocol: "tls", source: "allow" },
  { what: "lab's Sidecar is ALLOW_ANY", pod: "lab/l-1:app=l", to: "example.org:443", protocol: "tls", source: "allow" },
  { what: "Host header naming payments on an address resolved from another name", pod: "shop/a-1:app=a", to: "203.0.113.8:80", names: ["tracker.example.net"], protocol: "http", source: "allow", egret: "deny", stricter: "spec.ports (HTTP)" },
]);

// Cilium: union of allows, deny wins, default deny for selected endpoints.
checkTable("cilium.yaml", [
  { what: "api.example.com on 443", pod: "data/c-1:app=crawler", to: "api.example.com:443", protocol: "tls", source: "allow" },
  { what: "x.cdn.example.net (one label)", pod: "data/c-1:app=crawler", to: "x.cdn.example.net:443", protocol: "tls", source: "allow" },
  { what: "a.b.cdn.example.net is two labels", pod: "data/c-1:app=crawler", to: "a.b.cdn.example.net:443", protocol: "tls", source: "deny" },
  { what: "a.b.s3.example.org (any depth)", pod: "data/c-1:app=crawler", to: "a.b.s3.example.org:443", protocol: "tls", source: "allow" },
  { what: "img-1.example.com: partial-label pattern not expressible", pod: "data/c-1:app=crawler", to: "img-1.example.com:443", protocol: "tls", source: "allow", egret: "deny", stricter: "spec.egress[0].toFQDNs" },
  { what: "database subnet on 5432", pod: "data/c-1:app=crawler", to: "10.20.1.1:5432", protocol: "postgresql", source: "allow" },
  { what: "the except block", pod: "data/c-1:app=crawler", to: "10.20.9.1:5432", protocol: "postgresql", source: "deny" },
  { what: "clusterwide deny wins over nothing, for any pod", pod: "web/w-1:app=w", to: "203.0.113.9:443", protocol: "tls", source: "deny" },
  { what: "clusterwide deny of SMTP to the world", pod: "web/w-1:app=w", to: "mail.example.com:25", protocol: "smtp", source: "deny" },
  { what: "a pod only under the non-default-deny clusterwide policy", pod: "web/w-1:app=w", to: "example.org:443", protocol: "tls", source: "allow" },
  { what: "crawler: anything else is default-denied", pod: "data/c-1:app=crawler", to: "example.org:443", protocol: "tls", source: "deny" },
], { "spec.egress[0].toFQDNs[3]": "not-expressible", "spec.egress[3].toPorts": "not-expressible", "spec.egress[2].toEndpoints": "not-expressible" });

test("import: unknown kinds and unreadable files are reported, never silently dropped", () => {
  const dir = mkdtempSync(join(tmpdir(), "egret-import-"));
  try {
    const f = join(dir, "x.yaml");
    writeFileSync(f, "apiVersion: v1\nkind: Service\nmetadata: {name: s}\n");
    const r = egret("import", f, "--report", "json");
    assert.equal(r.status, 0);
    const rep = JSON.parse(r.stderr) as Report;
    assert.equal(rep.report[0]!.status, "not-expressible");
    const missing = egret("import", join(dir, "nope.yaml"));
    assert.equal(missing.status, 1);
    assert.match(missing.stderr, /cannot read .*nope\.yaml/);
    const usage = egret("import", f, "--report", "xml");
    assert.equal(usage.status, 2);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
