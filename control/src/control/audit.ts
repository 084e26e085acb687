// Audit writers: stdout, or a file opened for append (reopened on SIGHUP-free rotation is left
// to the log shipper; lines are written whole, so `tail -F` and copytruncate both work).
import { createWriteStream, type WriteStream } from "node:fs";
import type { AuditWriter } from "./reports.js";

export interface ClosableAuditWriter extends AuditWriter {
  close(): Promise<void>;
}

/** "stdout" / "-" → process.stdout; anything else → that file, appended. */
export function openAuditWriter(target: string): ClosableAuditWriter {
  if (target === "stdout" || target === "-") {
    return { write: (line) => void process.stdout.write(line), close: async () => undefined };
  }
  const stream: WriteStream = createWriteStream(target, { flags: "a" });
  stream.on("error", (err) => process.stderr.write(`egret control: audit log ${target}: ${err.message}\n`));
  return {
    write: (line) => void stream.write(line),
    close: () => new Promise((resolve) => stream.end(() => resolve())),
  };
}
