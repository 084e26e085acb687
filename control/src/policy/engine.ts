// The bridge to the one policy engine: the compiled AssemblyScript in egret.wasm, driven through
// its tool exports (filter/assembly/tools/engine.ts). No evaluation logic lives on this side.
import { instantiateTools, type ToolModule } from "../wasm/tools.js";
import { halves, parseAddress } from "./network.js";

export const VERDICTS = ["pending", "allow", "deny", "alert", "would-deny"] as const;
export type VerdictName = (typeof VERDICTS)[number];
export const REASONS: Record<number, string> = {
  0: "", 1: "allowed", 2: "denied-by-rule", 3: "alert-by-rule", 4: "default-deny", 5: "protocol-mismatch",
  6: "sni-unverified", 7: "host-unverified", 8: "unattributed", 11: "not-selected", 14: "cluster-unverified",
};
export const TRACE_OUTCOMES: Record<number, string> = {
  1: "matched", 2: "destination not in cidrs", 3: "destination in an except block", 4: "destination is not external",
  5: "port not listed", 6: "no candidate name matches domains", 7: "claimed name (SNI/Host) not among the pod's resolutions",
  8: "protocol not listed", 9: "protocol not detected yet", 10: "the pod's resolutions expired (beyond this policy's grace)",
  11: "matched a Pass rule: the rest of this tier is skipped",
};
export const DECODE_ERRORS: Record<number, string> = {
  1: "too short", 2: "bad magic", 3: "unsupported format version", 4: "length mismatch", 5: "checksum mismatch",
  6: "count over limit", 7: "sections do not add up", 8: "bad string reference", 9: "unknown protocol label",
  10: "bad policy entry", 11: "bad rule entry", 12: "bad pattern entry", 13: "bad CIDR entry", 14: "bad port range", 15: "too large",
};
export const FLAG_DEPENDS_ON_NAMES = 1;
export const FLAG_DEPENDS_ON_PROTOCOL = 2;
export const FLAG_DEPENDS_ON_CLAIM = 4;
export const PROTOCOL_PENDING = -1;

export interface Candidate {
  name: string;
  /** Seconds since the resolution's TTL expired (≤ 0 while fresh). Default 0. */
  staleSeconds?: number;
  /** The name's only evidence is mesh configuration (a ServiceEntry address), not pod DNS. */
  meshConfig?: boolean;
}

/** Bytes per candidate in the engine's layout (filter/assembly/policy/engine.ts CANDIDATE_SIZE). */
const CANDIDATE_SIZE = 16;

export interface EvalRequest {
  /** Destination IPv4 or IPv6 address. */
  ip: string;
  port: number;
  /** Names this pod resolved to `ip` (strings or candidates with staleness). */
  names?: (string | Candidate)[];
  /** Detected protocol label ("tls", …, "unknown"); omitted = not detected yet (pending). */
  protocol?: string;
  /** A claim made by the connection: TLS SNI or HTTP Host. */
  claim?: { kind: "sni" | "host"; name: string };
  trace?: boolean;
}

export interface TraceStep {
  policy: number;
  rule: number;
  outcome: number;
  outcomeText: string;
  detail: number;
}

export interface EvalResponse {
  verdict: VerdictName;
  reason: string;
  /** Index in the snapshot's policies (evaluation order), -1 when none. */
  policy: number;
  /** Global rule index, -1 when none. */
  rule: number;
  matchedName?: string;
  flags: number;
  dependsOnNames: boolean;
  dependsOnProtocol: boolean;
  dependsOnClaim: boolean;
  trace: TraceStep[];
}

export class SnapshotRejected extends Error {
  constructor(readonly code: number, readonly offset: number) {
    super(`the engine rejected the snapshot: ${DECODE_ERRORS[code] ?? `error ${code}`} at byte ${offset}`);
  }
}

type Fn<A extends unknown[], R> = (...a: A) => R;

/** One engine instance (its own wasm instance) with one loaded snapshot at a time. */
export class PolicyEngine {
  readonly tools: ToolModule;
  private lastLayout?: { base: number; count: number; protocol: number; claimKind: number; claimPtr: number; claimLen: number };
  private readonly f: {
    input: Fn<[number], number>; load: Fn<[number, number], number>; errorOffset: Fn<[], number>;
    eval: Fn<[bigint, bigint, number, number, number, number, number, number, number, number], number>;
    trace: Fn<[], number>; protocolId: Fn<[number, number], number>; text: Fn<[], number>;
    policyRef: Fn<[number], number>; ruleName: Fn<[number], number>; ruleIndex: Fn<[number], number>;
    rulePolicy: Fn<[number], number>; protocolCount: Fn<[], number>; protocolLabel: Fn<[number], number>;
    heapProbe: Fn<[], number>;
  };

  constructor(wasmPath?: string) {
    this.tools = instantiateTools(wasmPath);
    const t = this.tools;
    this.f = {
      input: t.fn("engine_input"), load: t.fn("engine_load"), errorOffset: t.fn("engine_error_offset"),
      eval: t.fn("engine_eval"), trace: t.fn("engine_trace"), protocolId: t.fn("engine_protocol_id"),
      text: t.fn("engine_text"), policyRef: t.fn("engine_policy_ref"), ruleName: t.fn("engine_rule_name"),
      ruleIndex: t.fn("engine_rule_index"), rulePolicy: t.fn("engine_rule_policy"),
      protocolCount: t.fn("engine_protocol_count"), protocolLabel: t.fn("engine_protocol_label"),
      heapProbe: t.fn("engine_heap_probe"),
    };
  }

  /** Decodes a snapshot in the engine; throws SnapshotRejected when the engine refuses it. */
  load(bytes: Uint8Array): void {
    const ptr = this.f.input(bytes.length);
    this.tools.u8().set(bytes, ptr);
    const code = this.f.load(ptr, bytes.length);
    if (code !== 0) throw new SnapshotRejected(code, this.f.errorOffset());
  }

  /** Tries to load; returns the engine's error code (0 = accepted). */
  tryLoad(bytes: Uint8Array): number {
    try { this.load(bytes); return 0; } catch (e) { if (e instanceof SnapshotRejected) return e.code; throw e; }
  }

  private text(len: number): string {
    if (len <= 0) return "";
    const at = this.f.text();
    return Buffer.from(this.tools.u8().subarray(at, at + len)).toString("latin1");
  }

  policyRef(i: number): string { return this.text(this.f.policyRef(i)); }
  /** A rule's name, or "#N" (index in its policy) when unnamed — as verdicts report it. */
  ruleLabel(r: number): string { return this.text(this.f.ruleName(r)) || `#${this.f.ruleIndex(r)}`; }
  ruleIndexInPolicy(r: number): number { return this.f.ruleIndex(r); }
  rulePolicy(r: number): number { return this.f.rulePolicy(r); }
  protocolLabels(): string[] {
    const out: string[] = [];
    for (let i = 0; i < this.f.protocolCount(); i++) out.push(this.text(this.f.protocolLabel(i)));
    return out;
  }
  /** The detector id of a protocol label, -1 when unknown. */
  protocolId(label: string): number {
    const b = Buffer.from(label, "latin1");
    const ptr = this.f.input(b.length);
    this.tools.u8().set(b, ptr);
    return this.f.protocolId(ptr, b.length);
  }
  heapProbe(): number { return this.f.heapProbe(); }

  /**
   * Lays out names and a claim in wasm memory once; returns a function that evaluates repeatedly
   * without touching JS-side allocation in the engine (used by the allocation tests).
   */
  prepare(req: EvalRequest): () => number {
    const addr = parseAddress(req.ip);
    if (!addr) throw new Error(`not an IP address: ${req.ip}`);
    const [hi, lo] = halves(addr.address);
    // Resolve the protocol first: protocolId() uses the same input area as the layout below.
    let protocol = PROTOCOL_PENDING;
    if (req.protocol !== undefined) {
      protocol = this.protocolId(req.protocol);
      if (protocol < 0) throw new Error(`unknown protocol "${req.protocol}"`);
    }
    const cands = (req.names ?? []).map((c) => (typeof c === "string" ? { name: c } : c));
    const nameBytes = cands.map((c) => Buffer.from(c.name, "latin1"));
    const claimBytes = req.claim ? Buffer.from(req.claim.name, "latin1") : Buffer.alloc(0);
    const size = cands.length * CANDIDATE_SIZE + nameBytes.reduce((n, b) => n + b.length, 0) + claimBytes.length + 16;
    const base = this.f.input(size);
    const mem = this.tools.u8();
    const view = new DataView(mem.buffer);
    let cursor = base + cands.length * CANDIDATE_SIZE;
    cands.forEach((c, i) => {
      const at = base + i * CANDIDATE_SIZE;
      mem.set(nameBytes[i]!, cursor);
      view.setUint32(at, cursor, true);
      view.setUint32(at + 4, nameBytes[i]!.length, true);
      view.setInt32(at + 8, c.staleSeconds ?? 0, true);
      view.setUint32(at + 12, c.meshConfig ? 1 : 0, true);
      cursor += nameBytes[i]!.length;
    });
    const claimPtr = cursor;
    mem.set(claimBytes, claimPtr);
    const claimKind = req.claim ? (req.claim.kind === "sni" ? 1 : 2) : 0;
    const trace = req.trace ? 1 : 0;
    this.lastLayout = { base, count: cands.length, protocol, claimKind, claimPtr, claimLen: claimBytes.length };
    return () => this.f.eval(hi, lo, req.port, base, cands.length, protocol, claimKind, claimPtr, claimBytes.length, trace);
  }

  /**
   * Runs one prepared evaluation `times` times inside wasm (benchmarks: no JS boundary per
   * evaluation). Returns the last verdict/reason as names.
   */
  repeat(req: EvalRequest, times: number): { verdict: VerdictName; reason: string } {
    const run = this.prepare({ ...req, trace: false });
    run();
    const many = this.tools.fn<(...a: (number | bigint)[]) => number>("engine_eval_many");
    const addr = parseAddress(req.ip)!;
    const [hi, lo] = halves(addr.address);
    // prepare() laid the candidates out in the input area; reuse that layout.
    const layout = this.lastLayout!;
    const code = many(times, hi, lo, req.port, layout.base, layout.count, layout.protocol, layout.claimKind, layout.claimPtr, layout.claimLen);
    return { verdict: VERDICTS[code >> 8] ?? "pending", reason: REASONS[code & 255] ?? "" };
  }

  evaluate(req: EvalRequest): EvalResponse {
    const cands = (req.names ?? []).map((c) => (typeof c === "string" ? { name: c } : c));
    const run = this.prepare(req);
    const block = run();
    if (block === 0) throw new Error("no snapshot loaded in the engine");
    const v = new DataView(this.tools.u8().buffer);
    const [verdict, reason, policy, rule, matched, flags, traced] = [0, 4, 8, 12, 16, 20, 24].map((o) => v.getInt32(block + o, true)) as [number, number, number, number, number, number, number];
    const trace: TraceStep[] = [];
    const t = this.f.trace();
    for (let i = 0; i < traced; i++) {
      const [p, r, o, d] = [0, 4, 8, 12].map((x) => v.getInt32(t + i * 16 + x, true)) as [number, number, number, number];
      trace.push({ policy: p, rule: r, outcome: o, outcomeText: TRACE_OUTCOMES[o] ?? `outcome ${o}`, detail: d });
    }
    return {
      verdict: VERDICTS[verdict] ?? "pending", reason: REASONS[reason] ?? `reason-${reason}`, policy, rule,
      ...(matched >= 0 && cands[matched] ? { matchedName: cands[matched].name } : {}),
      flags, dependsOnNames: (flags & FLAG_DEPENDS_ON_NAMES) !== 0, dependsOnProtocol: (flags & FLAG_DEPENDS_ON_PROTOCOL) !== 0,
      dependsOnClaim: (flags & FLAG_DEPENDS_ON_CLAIM) !== 0, trace,
    };
  }
}
