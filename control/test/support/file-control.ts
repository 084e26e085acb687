// A real `egret control` service in file mode, in this process, for tests and benchmarks: the
// policy and pods files are written to a temporary folder, gRPC listens on a free loopback port,
// logs and audit lines are discarded. stop() shuts the service down and removes the folder.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ControlService } from "../../src/control/service.js";
import { fileControlSource } from "../../src/control/file-source.js";
import { defaultPolicyApi } from "../../src/control/policy-api.js";
import { createControlMetrics } from "../../src/control/metrics.js";
import { silentLogger } from "../../src/common/log.js";
import { FileAgentAuthenticator } from "../../src/auth/agent-tokens.js";

const AGENT_TOKEN = "file-control-agent-token-node-1";

export interface FileControl {
  service: ControlService;
  grpcPort: number;
  dir: string;
  /** `egret agent --token-file` content accepted for node `node-1` (pods file: `node: node-1`). */
  agentTokenFile: string;
  stop(): Promise<void>;
}

/**
 * `policy`: policy YAML text; `pods`: pods-file YAML text (control/src/control/README.md). Agents
 * authenticate with `agentTokenFile` for node-1; filters are served from their pod's address (give
 * each pod a 127.0.0.0/8 address and the host `grpcSourceAddress`).
 */
export async function startFileControl(o: { policy: string; pods: string }): Promise<FileControl> {
  const dir = mkdtempSync(join(tmpdir(), "egret-file-control-"));
  let service: ControlService | undefined;
  try {
    writeFileSync(join(dir, "policy.yaml"), o.policy);
    writeFileSync(join(dir, "pods.yaml"), o.pods);
    writeFileSync(join(dir, "agent-tokens"), `${AGENT_TOKEN} node-1\n`);
    writeFileSync(join(dir, "agent-token"), `${AGENT_TOKEN}\n`);
    service = new ControlService({
      policyApi: defaultPolicyApi, log: silentLogger(), grpcListen: "127.0.0.1:0", audit: { write: () => undefined },
      source: fileControlSource({ policyPaths: [join(dir, "policy.yaml")], podsFile: join(dir, "pods.yaml"), policyApi: defaultPolicyApi, log: silentLogger() }),
      metrics: createControlMetrics({ defaultMetrics: false }),
      agentAuth: new FileAgentAuthenticator(join(dir, "agent-tokens"), silentLogger()),
    });
    const { grpcPort } = await service.start();
    const started = service;
    return {
      service: started, grpcPort, dir, agentTokenFile: join(dir, "agent-token"),
      async stop() {
        await started.stop();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (e) {
    await service?.stop().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
}
