import type { ParseArgsConfig } from "node:util";
import { KubeConfig } from "@kubernetes/client-node";
import { readFlags } from "../common/flags.js";
// The contract every `egret` subcommand module implements (see ./commands/).
export interface CliCommand {
  /** The word after `egret`, e.g. "detect". */
  name: string;
  /** One line shown in `egret --help`. */
  summary: string;
  /** Runs the command; resolves to the process exit code. Throw UsageError for bad flags. */
  run(argv: string[]): Promise<number>;
}

/** A mistake in how the command was called: printed without a stack, exit code 2. */
export class UsageError extends Error {
  readonly exitCode = 2;
}

/** The flags of a command (common/flags.ts, commander); a mistake is a UsageError followed by the usage text. */
export function parseFlags<T extends ParseArgsConfig>(config: T, usage: string): ReturnType<typeof readFlags<T>> {
  try {
    return readFlags(config);
  } catch (err) {
    throw new UsageError(`${(err as Error).message}\n\n${usage}`);
  }
}

/** The Kubernetes client configuration from --kubeconfig FILE, or the default chain (in-cluster, $KUBECONFIG, ~/.kube/config). */
export function loadKubeConfig(file: string | undefined): KubeConfig {
  const kc = new KubeConfig();
  try {
    if (file) kc.loadFromFile(file);
    else kc.loadFromDefault();
  } catch (err) {
    throw new UsageError(`cannot load the Kubernetes configuration: ${(err as Error).message}`);
  }
  return kc;
}
