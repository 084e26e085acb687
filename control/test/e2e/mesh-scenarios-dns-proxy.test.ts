// Every scenario file with Istio's DNS proxying on (ISTIO_META_DNS_CAPTURE): each sidecar pod's
// DNS, UDP and TCP port 53 to the cluster resolver, is REDIRECTed as istio-iptables does to
// istio-agent's DNS proxy on 127.0.0.1:15053 (uid/gid 1337, exempt), which answers the pod's
// ServiceEntry names itself and forwards the rest from the pod's address. Issue #17: with DNS
// capture on, every scenario passes; one that cannot apply says why in its file (skipDnsModes).
import { scenarioSuite } from "./scenario-suite.js";

await scenarioSuite("dns-proxy", "mesh-scenarios-dns-proxy");
