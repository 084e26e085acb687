// A reference-counted string intern table: each distinct string is stored once and named by a
// small integer id, so the resolution store keeps u32 ids in typed arrays instead of strings.
// Ids are reused after their last reference is released (a pod that resolves millions of random
// names cannot grow this table beyond what the store's bounds allow to be alive at once).

export class InternTable {
  private readonly ids = new Map<string, number>();
  private strings: (string | undefined)[] = [undefined]; // id 0 is reserved for "none"
  private refs = new Uint32Array(1024);
  private readonly free: number[] = [];

  /** Id of `s`, adding a reference (create it if new). */
  acquire(s: string): number {
    let id = this.ids.get(s);
    if (id === undefined) {
      id = this.free.pop() ?? this.strings.length;
      if (id === this.strings.length) this.strings.push(s);
      else this.strings[id] = s;
      if (id >= this.refs.length) {
        const grown = new Uint32Array(this.refs.length * 2);
        grown.set(this.refs);
        this.refs = grown;
      }
      this.ids.set(s, id);
    }
    this.refs[id]++;
    return id;
  }

  /** Drops one reference to `id`; the string is forgotten when none remain. Id 0 is ignored. */
  release(id: number): void {
    if (id === 0) return;
    if (this.refs[id] === 0) throw new Error(`intern table: release of unreferenced id ${id}`);
    if (--this.refs[id] === 0) {
      this.ids.delete(this.strings[id]!);
      this.strings[id] = undefined;
      this.free.push(id);
    }
  }

  /** The string for a live id. */
  get(id: number): string {
    const s = this.strings[id];
    if (s === undefined) throw new Error(`intern table: unknown id ${id}`);
    return s;
  }

  /** Id of `s` without adding a reference, or 0 when absent. */
  peek(s: string): number {
    return this.ids.get(s) ?? 0;
  }

  get size(): number {
    return this.ids.size;
  }
}
