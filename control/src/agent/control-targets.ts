// Which control replicas to stream to: a fixed list of "host:port" addresses, and/or a DNS name
// (a headless Service: one A/AAAA record per ready replica) re-resolved periodically.
import { lookup } from "node:dns/promises";
import type { Logger } from "../common/log.js";
import { parseHostPort, formatHostPort } from "../common/host-port.js";

export interface ControlTargetsOptions {
  /** "host:port" or "[v6]:port" addresses streamed to as given. */
  addresses: readonly string[];
  /** "name:port" of a headless Service, resolved to every replica address. */
  service?: string;
  resolveEveryMs: number;
  log: Logger;
  /** Called with the full set whenever it changes. */
  onChange(addresses: string[]): void;
  /** Injected for tests; defaults to the system resolver (all addresses). */
  resolve?(name: string): Promise<string[]>;
}


export class ControlTargets {
  private current = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private readonly service: { host: string; port: number } | undefined;

  constructor(private readonly opts: ControlTargetsOptions) {
    for (const a of opts.addresses) parseHostPort(a, "control address");
    this.service = opts.service ? parseHostPort(opts.service, "control service") : undefined;
    if (!this.service && opts.addresses.length === 0) throw new Error("no control replica: give --control HOST:PORT or --control-service NAME:PORT");
  }

  async start(): Promise<void> {
    await this.refresh();
    if (this.service) {
      this.timer = setInterval(() => void this.refresh(), this.opts.resolveEveryMs);
      this.timer.unref();
    }
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  async refresh(): Promise<void> {
    const next = new Set(this.opts.addresses);
    if (this.service) {
      try {
        const resolve = this.opts.resolve ?? (async (name: string) => (await lookup(name, { all: true })).map((a) => a.address));
        for (const ip of await resolve(this.service.host)) next.add(formatHostPort(ip, this.service.port));
      } catch (err) {
        // Keep the replicas we know: a resolver hiccup must not disconnect the agent.
        this.opts.log.warn({ service: this.opts.service, err: (err as Error).message }, "cannot resolve control service; keeping current replicas");
        for (const a of this.current) next.add(a);
      }
    }
    const changed = next.size !== this.current.size || [...next].some((a) => !this.current.has(a));
    this.current = next;
    if (changed) this.opts.onChange([...next].sort());
  }
}
