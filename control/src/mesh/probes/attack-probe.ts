// What an app that is root in its pod can send to egret control's gRPC port, as one command per
// attack (run it inside the attacker pod's network namespace; the mesh test runs it as the
// sidecar's uid, which the pod's REDIRECT exempts, as a root app can):
//   node attack-probe.js CONTROL observe TOKEN|- POD_IP NAME IP RESOLVER
//   node attack-probe.js CONTROL watch NS/NAME POD_IP
//   node attack-probe.js CONTROL lookup NS/NAME SOURCE_IP DESTINATION_IP
//   node attack-probe.js CONTROL report NS/NAME SOURCE_IP DESTINATION_IP
//   node attack-probe.js CONTROL flood-streams NS/NAME POD_IP N
//   node attack-probe.js CONTROL flood-lookups NS/NAME SOURCE_IP DESTINATION_IP N
// Prints one JSON line: the gRPC status name ("OK", "UNAUTHENTICATED", …) and what came back.
import * as grpc from "@grpc/grpc-js";
import { createAgentClient, createFilterClient, ipToBytes, lookup, type FilterServiceClient } from "../../proto/index.js";

const [control = "", mode = "", ...rest] = process.argv.slice(2);
const CALL_MS = 10_000;

const statusName = (err: unknown) => grpc.status[(err as grpc.ServiceError).code] ?? String((err as Error).message);
const podOf = (key: string) => {
  const [namespace = "", name = ""] = key.split("/");
  return { pod_namespace: namespace, pod_name: name };
};

/** One Observe batch claiming `podIp` resolved `name` to `ip`; the first answer or the stream's end. */
function observe(token: string, podIp: string, name: string, ip: string, resolver: string): Promise<Record<string, unknown>> {
  const client = createAgentClient(control);
  const md = new grpc.Metadata();
  if (token !== "-") md.set("authorization", `Bearer ${token}`);
  const call = client.Observe(md, { deadline: Date.now() + CALL_MS });
  return new Promise((resolve) => {
    const done = (r: Record<string, unknown>) => {
      call.cancel();
      client.close();
      resolve(r);
    };
    call.on("data", (r: { accepted_observations: number; rejected_observations: number }) => done({ status: "OK", accepted: r.accepted_observations, rejected: r.rejected_observations }));
    call.on("error", (err) => done({ status: statusName(err), details: (err as grpc.ServiceError).details }));
    call.write({
      agent_id: "attacker", sequence: 1, replay: false,
      observations: [{
        pod_ip: ipToBytes(podIp), query_name: name, query_type: 1, rcode: 0, cname_chain: [],
        answers: [{ ip: ipToBytes(ip), ttl_seconds: 600 }],
        resolver_ip: ipToBytes(resolver), resolver_port: 53, transport: "DNS_TRANSPORT_UDP", observed_unix_ms: Date.now(), interface_name: "",
      }],
    });
  });
}

/** A Watch SUBSCRIBE; "OK" once a snapshot arrives. */
function watchOnce(client: FilterServiceClient, pod: string, podIp: string): Promise<string> {
  const call = client.Watch(new grpc.Metadata(), { deadline: Date.now() + CALL_MS });
  return new Promise((resolve) => {
    let settled = false;
    const done = (s: string) => {
      if (settled) return;
      settled = true;
      resolve(s);
    };
    call.on("data", () => done("OK"));
    call.on("error", (err) => done(statusName(err)));
    call.write({ type: "WATCH_REQUEST_TYPE_SUBSCRIBE", ...podOf(pod), pod_ips: [ipToBytes(podIp)], instance_id: `attacker-${Math.random()}` });
  });
}

function report(pod: string, sourceIp: string, destination: string): Promise<Record<string, unknown>> {
  const client = createFilterClient(control);
  return new Promise((resolve) => {
    const call = client.Report(new grpc.Metadata(), { deadline: Date.now() + CALL_MS }, (err: grpc.ServiceError | null, r?: { accepted_events: number; rejected_events: number }) => {
      client.close();
      resolve(err ? { status: statusName(err), details: err.details } : { status: "OK", accepted: Number(r!.accepted_events), rejected: Number(r!.rejected_events) });
    });
    call.write({
      events: [{
        time_unix_ms: Date.now(), ...podOf(pod), source_ip: ipToBytes(sourceIp), source_port: 40000, destination_ip: ipToBytes(destination), destination_port: 443,
        names: ["api.example.test"], protocol: "tls", sni: "api.example.test", verdict: "VERDICT_ALLOW", reason: "REASON_ALLOWED",
        policy: "forged/policy", rule: "forged-rule", mode: "POLICY_MODE_ENFORCE", matched_name: "api.example.test", instance_id: "attacker", detail: "forged by the attacker pod",
      }],
      dropped_events: 0,
    });
    call.end();
  });
}

async function lookupOnce(client: FilterServiceClient, pod: string, source: string, destination: string, waitMs: number): Promise<string> {
  try {
    const r = await lookup(client, { source_ip: ipToBytes(source)!, destination_ip: ipToBytes(destination)!, ...podOf(pod), wait_ms: waitMs, instance_id: "attacker" }, waitMs + CALL_MS);
    return String(r.result);
  } catch (err) {
    return statusName(err);
  }
}

const tally = (outcomes: string[]) => outcomes.reduce<Record<string, number>>((t, o) => ({ ...t, [o]: (t[o] ?? 0) + 1 }), {});

async function main(): Promise<Record<string, unknown>> {
  switch (mode) {
    case "observe":
      return observe(rest[0]!, rest[1]!, rest[2]!, rest[3]!, rest[4]!);
    case "watch": {
      const client = createFilterClient(control);
      const status = await watchOnce(client, rest[0]!, rest[1]!);
      client.close();
      return { status };
    }
    case "lookup": {
      const client = createFilterClient(control);
      const status = await lookupOnce(client, rest[0]!, rest[1]!, rest[2]!, 200);
      client.close();
      return { status };
    }
    case "report":
      return report(rest[0]!, rest[1]!, rest[2]!);
    case "flood-streams": {
      // Streams stay open (no cancel) until every one has an answer: they all count at once.
      const client = createFilterClient(control);
      const outcomes = await Promise.all(Array.from({ length: Number(rest[2]) }, () => watchOnce(client, rest[0]!, rest[1]!)));
      client.close();
      return { outcomes: tally(outcomes) };
    }
    case "flood-lookups": {
      // Each Lookup asks about an address nobody resolved and waits: they park until the deadline.
      const client = createFilterClient(control);
      const outcomes = await Promise.all(Array.from({ length: Number(rest[3]) }, () => lookupOnce(client, rest[0]!, rest[1]!, rest[2]!, 3_000)));
      client.close();
      return { outcomes: tally(outcomes) };
    }
    default:
      throw new Error(`unknown attack "${mode}"`);
  }
}

main().then(
  (r) => process.stdout.write(`${JSON.stringify(r)}\n`),
  (err) => {
    process.stdout.write(`${JSON.stringify({ status: "ERROR", details: (err as Error).message })}\n`);
    process.exitCode = 1;
  },
);
