// The agents streaming into this replica (authenticated Observe streams), for `egret status`:
// node, agent id, capture drops as of the last batch, observation counts. Bounded by the number
// of open Observe streams; a stream's row goes when the stream ends.
import type { AgentStatus } from "../proto/messages.js";

export class AgentStream {
  agentId = "";
  captureDrops = 0;
  lastBatchMs = 0;
  accepted = 0;
  rejected = 0;
  constructor(readonly node: string, readonly since: number) {}
}

export class AgentTracker {
  private readonly streams = new Set<AgentStream>();

  constructor(private readonly now: () => number = Date.now) {}

  open(node: string): AgentStream {
    const s = new AgentStream(node, this.now());
    this.streams.add(s);
    return s;
  }

  /** Records one applied batch. */
  batch(s: AgentStream, agentId: string, captureDrops: number, accepted: number, rejected: number): void {
    s.agentId = agentId;
    s.captureDrops = Math.max(s.captureDrops, captureDrops);
    s.lastBatchMs = this.now();
    s.accepted += accepted;
    s.rejected += rejected;
  }

  close(s: AgentStream): void {
    this.streams.delete(s);
  }

  rows(): AgentStatus[] {
    return [...this.streams]
      .map((s) => ({
        node: s.node,
        agent_id: s.agentId,
        capture_drops: s.captureDrops,
        connected_since_unix_ms: s.since,
        last_batch_unix_ms: s.lastBatchMs,
        accepted_observations: s.accepted,
        rejected_observations: s.rejected,
      }))
      .sort((a, b) => a.node.localeCompare(b.node) || a.agent_id.localeCompare(b.agent_id));
  }
}
