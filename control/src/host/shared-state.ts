// Process-wide shared data and shared queues (reference/proxy-wasm.md §6.3, §6.4), keyed by vm_id.
import { Status } from "./abi.js";

interface Entry { value: Buffer; cas: number }

export class SharedData {
  private readonly byVm = new Map<string, Map<string, Entry>>();
  private nextCas = 1;

  get(vmId: string, key: string): Entry | undefined { return this.byVm.get(vmId)?.get(key); }

  /** cas 0 always writes; a new key is created whatever cas says; otherwise cas must match. */
  set(vmId: string, key: string, value: Uint8Array, cas: number): number {
    let m = this.byVm.get(vmId);
    if (!m) { m = new Map(); this.byVm.set(vmId, m); }
    const cur = m.get(key);
    if (cur && cas !== 0 && cas !== cur.cas) return Status.CasMismatch;
    const next = this.nextCas++;
    if (this.nextCas > 0xffffffff) this.nextCas = 1; // 0 is never a valid cas
    m.set(key, { value: Buffer.from(value), cas: next });
    return Status.Ok;
  }
}

/** Where a queue's readiness is delivered: the last VM/root that registered it. */
export interface QueueTarget { deliver(token: number): void; alive(): boolean }

interface Queue { vmId: string; name: string; items: Buffer[]; target?: QueueTarget }

export class SharedQueues {
  private readonly byKey = new Map<string, number>();
  private readonly byToken = new Map<number, Queue>();
  private nextToken = 1;

  register(vmId: string, name: string, target: QueueTarget): number {
    const key = `${vmId}\0${name}`;
    let token = this.byKey.get(key);
    if (token === undefined) {
      token = this.nextToken++;
      this.byKey.set(key, token);
      this.byToken.set(token, { vmId, name, items: [] });
    }
    this.byToken.get(token)!.target = target; // last registrant wins (§6.4)
    return token;
  }

  resolve(vmId: string, name: string): number | undefined { return this.byKey.get(`${vmId}\0${name}`); }

  enqueue(token: number, data: Uint8Array): number {
    const q = this.byToken.get(token);
    if (!q) return Status.NotFound;
    q.items.push(Buffer.from(data));
    const target = q.target;
    // Delivery is posted to the registrant's thread, never run inline (§6.4).
    if (target) setImmediate(() => { if (target.alive()) target.deliver(token); });
    return Status.Ok;
  }

  dequeue(token: number): { status: number; data?: Buffer } {
    const q = this.byToken.get(token);
    if (!q) return { status: Status.NotFound };
    const item = q.items.shift();
    return item ? { status: Status.Ok, data: item } : { status: Status.Empty };
  }
}
