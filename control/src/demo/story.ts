// What the demo shows: a tiny outside world, two pods, two policies, and the connections the
// pods' "apps" make in a loop — each chosen to show one thing Egret does.
import type { World } from "../mesh/world.js";
import type { ScenarioPod } from "../mesh/scenario.js";

export const DEMO_WORLD: World = {
  resolver: "198.19.0.53",
  clusterCidrs: ["198.18.0.0/16"],
  services: [{ name: "web", kind: "web", addresses: ["198.19.2.10", "198.19.2.20", "198.19.2.30", "198.19.2.60"], port: 443 }],
  records: [
    { name: "api.example.test", ttl: 300, type: "A", value: "198.19.2.10" },
    { name: "www.example.test", ttl: 300, type: "A", value: "198.19.2.10" },
    { name: "*.googleapis.test", ttl: 300, type: "A", value: "198.19.2.20" },
    { name: "evil.example.net", ttl: 300, type: "A", value: "198.19.2.30" },
    { name: "billing.internal.test", ttl: 300, type: "A", value: "198.19.2.60" },
  ],
};

export const DEMO_PODS: ScenarioPod[] = [
  { name: "checkout", namespace: "shop", labels: { app: "checkout" }, key: "shop/checkout" },
  { name: "notebook", namespace: "lab", labels: { app: "notebook" }, key: "lab/notebook" },
];

export const DEMO_NAMESPACES = { shop: { labels: { team: "payments" } }, lab: { labels: { team: "research" } } };

export const DEMO_POLICIES: unknown[] = [
  {
    apiVersion: "egret.dev/v1alpha1", kind: "EgressPolicy",
    metadata: { name: "checkout-egress", namespace: "shop" },
    spec: {
      podSelector: { matchLabels: { app: "checkout" } },
      rules: [
        { name: "partner-api", action: "Allow", to: { domains: ["api.example.test"] }, ports: [{ port: 443 }], protocols: ["tls"] },
        { name: "google-apis", action: "Allow", to: { domains: ["*.googleapis.test"] }, ports: [{ port: 443 }], protocols: ["tls"] },
        { name: "no-evil", action: "Deny", to: { domains: ["evil.example.net"] } },
      ],
    },
  },
  {
    apiVersion: "egret.dev/v1alpha1", kind: "EgressPolicy",
    metadata: { name: "lab-rollout", namespace: "lab" },
    spec: {
      podSelector: { matchLabels: { app: "notebook" } },
      mode: "Monitor",
      rules: [{ name: "google-apis", action: "Allow", to: { domains: ["*.googleapis.test"] }, protocols: ["tls"] }],
    },
  },
];

export interface DemoAction {
  pod: string;
  /** What the app does, in words, for the table. */
  what: string;
  to: string;
  port: number;
  tls: boolean;
  /** Claims a compromised app makes instead of the name it connects to. */
  sni?: string;
  host?: string;
}

export const DEMO_ACTIONS: DemoAction[] = [
  { pod: "shop/checkout", what: "HTTPS api.example.test", to: "api.example.test", port: 443, tls: true },
  { pod: "shop/checkout", what: "HTTPS storage.googleapis.test", to: "storage.googleapis.test", port: 443, tls: true },
  { pod: "shop/checkout", what: "HTTP evil.example.net", to: "evil.example.net", port: 80, tls: false },
  { pod: "shop/checkout", what: "TLS evil.example.net + SNI api.example.test", to: "evil.example.net", port: 443, tls: true, sni: "api.example.test" },
  { pod: "shop/checkout", what: "HTTP 198.19.2.60 (address never resolved)", to: "198.19.2.60", port: 80, tls: false, host: "billing.internal.test" },
  { pod: "shop/checkout", what: "plain HTTP api.example.test:80", to: "api.example.test", port: 80, tls: false },
  { pod: "lab/notebook", what: "HTTPS www.example.test", to: "www.example.test", port: 443, tls: true },
  { pod: "lab/notebook", what: "HTTPS bigquery.googleapis.test", to: "bigquery.googleapis.test", port: 443, tls: true },
];
