// Every scenario file with pods querying the cluster resolver directly (Istio without DNS
// capture). The same suite with Istio's DNS proxy: mesh-scenarios-dns-proxy.test.ts.
import { scenarioSuite } from "./scenario-suite.js";

await scenarioSuite("cluster-dns", "mesh-scenarios");
