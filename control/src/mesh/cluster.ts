// A mesh cluster: the network (node, outside, pods) plus the outside world's running services and
// a scratch directory; torn down as one. Egret's own components are started by the runner.
import { mkdtempSync, rmSync, chmodSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MeshNetwork } from "./netns.js";
import { outsideAddresses, type World } from "./world.js";
import { startServices, stopServices, type RunningService } from "./services/index.js";

export interface MeshClusterOptions {
  prefix: string;
  world: World;
  /** Service names to start (default: all of the world's). DNS always starts. */
  services?: readonly string[];
  /** See MeshNetworkOptions.handleSignals. */
  handleSignals?: boolean;
}

export class MeshCluster {
  private constructor(
    readonly net: MeshNetwork,
    readonly world: World,
    readonly workDir: string,
    readonly services: RunningService[],
  ) {}

  static async start(opts: MeshClusterOptions): Promise<MeshCluster> {
    let net: MeshNetwork | undefined;
    let workDir: string | undefined;
    try {
      // Claim a prefix slot first (egG0, egG1, …): parallel runs with the same base prefix get
      // different slots, so each only ever cleans up what a dead earlier owner of its own slot left.
      net = await MeshNetwork.create({
        prefix: opts.prefix,
        outsideAddresses: outsideAddresses(opts.world),
        resolver: opts.world.resolver,
        handleSignals: opts.handleSignals,
      });
      // Scratch directories of an earlier run in this slot that was killed before teardown (its
      // namespaces were removed by MeshNetwork.create the same way).
      for (const d of readdirSync(tmpdir())) {
        if (d.startsWith(`egret-mesh-${net.prefix}-`)) rmSync(join(tmpdir(), d), { recursive: true, force: true });
      }
      workDir = mkdtempSync(join(tmpdir(), `egret-mesh-${net.prefix}-`));
      chmodSync(workDir, 0o755); // database servers run as their own users and need to reach their dirs
      const services = await startServices({ net, world: opts.world, workDir }, opts.world, opts.services);
      return new MeshCluster(net, opts.world, workDir, services);
    } catch (e) {
      await net?.destroy();
      if (workDir) rmSync(workDir, { recursive: true, force: true });
      throw e;
    }
  }

  service(name: string): RunningService | undefined {
    return this.services.find((s) => s.name === name);
  }

  /** Stops services, deletes every namespace and the scratch directory. Safe to call twice. */
  async destroy(opts: { keepWorkDir?: boolean } = {}): Promise<void> {
    await stopServices(this.services).catch(() => undefined);
    await this.net.destroy();
    if (!opts.keepWorkDir) rmSync(this.workDir, { recursive: true, force: true });
  }
}
