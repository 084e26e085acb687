// Asks egret control which names a pod resolved to an address, exactly as a filter's Lookup would
// (run it inside the pod's network namespace: control answers only the pod that owns the source
// address):
//   node lookup-probe.js CONTROL_HOST:PORT NAMESPACE/NAME POD_IP DESTINATION_IP [WAIT_MS]
// Prints one JSON line {result, names: [{name, cname_chain}], expires_unix_ms}.
import { createFilterClient, lookup, ipToBytes, bytesToIp } from "../../proto/index.js";

const [control = "", pod = "", podIp = "", destination = "", waitText = "0"] = process.argv.slice(2);
const [namespace = "", name = ""] = pod.split("/");
const client = createFilterClient(control);
try {
  const r = await lookup(client, {
    source_ip: ipToBytes(podIp)!, destination_ip: ipToBytes(destination)!,
    pod_name: name, pod_namespace: namespace, wait_ms: Number(waitText), instance_id: "mesh-lookup-probe",
  }, Number(waitText) + 5_000);
  process.stdout.write(JSON.stringify({
    result: r.result,
    ip: r.resolution ? bytesToIp(r.resolution.ip) : undefined,
    names: (r.resolution?.names ?? []).map((n) => ({ name: n.name, cname_chain: n.cname_chain })),
    expires_unix_ms: r.resolution?.expires_unix_ms,
  }) + "\n");
} catch (e) {
  process.stdout.write(JSON.stringify({ error: (e as Error).message }) + "\n");
  process.exitCode = 1;
} finally {
  client.close();
}
