// Child process for bench/cases/65-propagation, run inside the pod's network namespace
// (`ip netns exec`): sends A queries to SERVER:53 at RATE/s for SECONDS, round-robin from PODS
// sockets bound to FIRST_IP + i (one per pod), each query with its own id and name, so every answer
// is distinct evidence for one pod.
//   node dns-load.js SERVER RATE SECONDS FIRST_IP PODS
import { createSocket } from "node:dgram";
import dnsPacket from "dns-packet";

const [server = "", rateText = "", secondsText = "", firstIp = "", podsText = ""] = process.argv.slice(2);
const base = firstIp.split(".").map(Number);
const pods = Number(podsText);
const rate = Number(rateText), seconds = Number(secondsText);
if (!server || !(rate > 0) || !(seconds > 0) || base.length !== 4 || !(pods > 0)) {
  process.stderr.write("usage: dns-load SERVER RATE SECONDS FIRST_IP PODS\n");
  process.exit(2);
}
const socks = await Promise.all(Array.from({ length: pods }, async (_, i) => {
  const sock = createSocket("udp4");
  sock.on("message", () => undefined); // answers are what the agent observes; nothing to do here
  await new Promise<void>((r) => sock.bind(0, `${base[0]}.${base[1]}.${base[2]}.${base[3]! + i}`, () => r()));
  return sock;
}));
const total = Math.round(rate * seconds);
const t0 = performance.now();
let sent = 0;
await new Promise<void>((done) => {
  const tick = () => {
    const due = Math.min(total, Math.round(((performance.now() - t0) / 1000) * rate));
    for (; sent < due; sent++) {
      const q = dnsPacket.encode({ type: "query", id: sent & 0xffff, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: "A", name: `q${sent}.prop.example.com` }] });
      socks[sent % pods]!.send(q, 53, server);
    }
    if (sent < total) setTimeout(tick, 1);
    else setTimeout(done, 500); // let the last answers arrive before the socket closes
  };
  tick();
});
for (const sock of socks) sock.close();
process.stdout.write(JSON.stringify({ sent }) + "\n");
