// The demo's live table: one row per connection an app made, what the app saw, and the verdict
// Egret reported for it (from control's audit log). Redrawn in place on a terminal; printed a
// row at a time otherwise (pipes, CI logs).
import type { AuditEntry } from "../mesh/audit.js";

export interface DemoRow {
  time: Date;
  pod: string;
  what: string;
  /** "200 OK" or the error the app got. */
  appSaw: string;
  entry?: AuditEntry;
}

const COLUMNS = [
  { title: "time", width: 8 },
  { title: "pod", width: 13 },
  { title: "the app did", width: 44 },
  { title: "app saw", width: 14 },
  { title: "verdict", width: 10 },
  { title: "reason", width: 17 },
  { title: "policy#rule", width: 32 },
];

const COLOR: Record<string, string> = { allow: "\x1b[32m", deny: "\x1b[31m", alert: "\x1b[33m", "would-deny": "\x1b[33m" };
const RESET = "\x1b[0m";

function cell(text: string, width: number): string {
  return text.length > width ? `${text.slice(0, width - 1)}…` : text.padEnd(width);
}

export function formatRow(r: DemoRow, color: boolean): string {
  const verdict = r.entry?.verdict ?? "(none)";
  const cells = [
    r.time.toISOString().slice(11, 19),
    r.pod,
    r.what,
    r.appSaw,
    verdict,
    r.entry?.reason ?? "",
    r.entry?.policy ? `${r.entry.policy}${r.entry.rule ? `#${r.entry.rule}` : ""}` : "",
  ].map((t, i) => cell(t, COLUMNS[i]!.width));
  if (color && COLOR[verdict]) cells[4] = `${COLOR[verdict]}${cells[4]}${RESET}`;
  return cells.join(" ");
}

export function header(): string {
  const line = COLUMNS.map((c) => cell(c.title, c.width)).join(" ");
  return `${line}\n${"─".repeat(line.length)}`;
}

export class LiveTable {
  private readonly rows: DemoRow[] = [];
  private printedHeader = false;

  constructor(private readonly out: NodeJS.WriteStream, private readonly intro: string, private readonly maxRows = 16) {}

  private get tty(): boolean {
    return this.out.isTTY === true;
  }

  add(row: DemoRow, footer: string): void {
    this.rows.push(row);
    if (this.tty) {
      const shown = this.rows.slice(-this.maxRows);
      this.out.write(`\x1b[2J\x1b[H${this.intro}\n\n${header()}\n${shown.map((r) => formatRow(r, true)).join("\n")}\n\n${footer}\n`);
    } else {
      if (!this.printedHeader) { this.out.write(`${this.intro}\n\n${header()}\n`); this.printedHeader = true; }
      this.out.write(`${formatRow(row, false)}\n`);
    }
  }

  counts(): Record<string, number> {
    const c: Record<string, number> = {};
    for (const r of this.rows) { const v = r.entry?.verdict ?? "(none)"; c[v] = (c[v] ?? 0) + 1; }
    return c;
  }
}
