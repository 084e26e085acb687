// A credentials file that is re-read when it changes (checked on use, which is once per stream or
// request): a broken edit, or the file missing for a moment (a Secret swap), keeps the previous
// content in force. Shared by the agent and operator token files.
import { createHash } from "node:crypto";
import { statSync } from "node:fs";

export type ReloadOutcome<T> = { value: T } | { error: Error };

export class ReloadingFile<T> {
  private stamp: string;
  private current: T;

  /** Reads the file now; whatever `read` throws propagates, so a bad file fails at start. */
  constructor(
    private readonly file: string,
    private readonly read: (file: string) => T,
    private readonly onReload: (outcome: ReloadOutcome<T>) => void = () => undefined,
  ) {
    this.stamp = stampOf(file);
    this.current = read(file);
  }

  /** The content, re-read first when the file changed since the last look. */
  get value(): T {
    const stamp = stampOf(this.file);
    if (stamp === this.stamp) return this.current;
    this.stamp = stamp;
    try {
      this.current = this.read(this.file);
      this.onReload({ value: this.current });
    } catch (err) {
      this.onReload({ error: err as Error });
    }
    return this.current;
  }
}

function stampOf(file: string): string {
  try {
    const s = statSync(file);
    return `${s.mtimeMs}/${s.size}/${s.ino}`;
  } catch {
    return "missing";
  }
}

/** Tokens are kept and compared by SHA-256 digest: a Map lookup on a digest reveals nothing about the token. */
export function tokenDigest(token: string): string {
  return createHash("sha256").update(token, "utf8").digest("hex");
}
