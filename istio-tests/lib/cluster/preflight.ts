// Can this machine create a Kubernetes cluster with Istio? The suite needs a Docker engine that
// answers, kind, kubectl and istioctl. Every missing piece is reported, not just the first.
import { spawnSync } from "node:child_process";

/** Runs a command; resolves to its exit code, or undefined when the program does not exist. */
export type Probe = (cmd: string, args: string[]) => { code: number | undefined; output: string };

export const realProbe: Probe = (cmd, args) => {
  const r = spawnSync(cmd, args, { encoding: "utf8", timeout: 20_000 });
  if (r.error && (r.error as NodeJS.ErrnoException).code === "ENOENT") return { code: undefined, output: "" };
  return { code: r.status ?? 1, output: `${r.stdout ?? ""}${r.stderr ?? ""}`.trim() };
};

export interface Tool { name: string; args: string[]; why: string }

export const TOOLS: Tool[] = [
  { name: "docker", args: ["info", "--format", "{{.ServerVersion}}"], why: "runs the kind nodes and the outside-world container" },
  { name: "kind", args: ["version"], why: "creates the cluster" },
  { name: "kubectl", args: ["version", "--client"], why: "applies manifests and runs the clients in pods" },
  { name: "istioctl", args: ["version", "--remote=false"], why: "installs Istio" },
  { name: "openssl", args: ["version"], why: "makes the outside world's web certificate" },
];

/** Reasons the suite cannot run here; empty when it can. */
export function clusterUnavailableReasons(probe: Probe = realProbe): string[] {
  const reasons: string[] = [];
  for (const t of TOOLS) {
    const r = probe(t.name, t.args);
    if (r.code === undefined) reasons.push(`${t.name} is not installed (${t.why})`);
    else if (r.code !== 0) {
      const detail = r.output.split("\n").find((l) => l.trim()) ?? `exit ${r.code}`;
      reasons.push(t.name === "docker" ? `the Docker engine does not answer: ${detail}` : `${t.name} does not work: ${detail}`);
    }
  }
  return reasons;
}
