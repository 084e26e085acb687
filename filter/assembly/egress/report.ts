// The Report batch: verdict events encoded straight into one ReportRequest buffer (field 1,
// repeated VerdictEvent), so deciding a connection only writes bytes and sending a batch is one
// grpc_send. When the buffer is full, new events are dropped and counted (dropped_events).
//
// Delivery is acknowledged: a sent batch stays at the front of the buffer (in flight) until
// control answers it; ack() then drops it, a failed send leaves it to go out again with the
// events decided meanwhile (at least once: a batch whose answer was lost may arrive twice).
import { PbWriter } from "../pb/writer";
import { REPORT_EVENTS, REPORT_DROPPED, REPORT_OPENED } from "../pb/egret";

/** Room kept at the end for the dropped_events field. */
const TRAILER_BYTES: u32 = 16;

export class ReportBatch {
  private buf: StaticArray<u8>;
  readonly w: PbWriter = new PbWriter(0, 0);
  count: i32 = 0;
  /** OpenedConnection entries buffered (not verdict events: never counted as sent or dropped events). */
  opened: i32 = 0;
  /** OpenedConnection entries that did not fit (for the metric). */
  openedDroppedTotal: u64 = 0;
  sentOpened: i32 = 0;
  /** Events dropped since the last sent batch. */
  dropped: u64 = 0;
  /** Events dropped in total (for the metric). */
  droppedTotal: u64 = 0;
  firstAtMs: i64 = 0;
  /** The batch in flight: its events (a prefix of the buffer), bytes and dropped count. */
  sentCount: i32 = 0;
  sentBytes: u32 = 0;
  sentDropped: u64 = 0;
  private eventStart: u32 = 0;
  private bodyEnd: u32 = 0;

  constructor(bytes: u32) {
    this.buf = new StaticArray<u8>(<i32>bytes);
    this.w.buf = changetype<usize>(this.buf);
    this.w.cap = bytes - TRAILER_BYTES;
  }

  ptr(): usize {
    return changetype<usize>(this.buf);
  }

  /** Starts an event; write its fields with `w`, then call endEvent(). */
  beginEvent(): PbWriter {
    this.eventStart = this.w.pos;
    this.w.begin(REPORT_EVENTS);
    return this.w;
  }

  /** Starts an OpenedConnection entry (field 3); finish it with endOpened(). */
  beginOpened(): PbWriter {
    this.eventStart = this.w.pos;
    this.w.begin(REPORT_OPENED);
    return this.w;
  }

  /** Commits the entry, or drops it when it did not fit (counted apart from events). */
  endOpened(now: i64): bool {
    this.w.end();
    if (!this.w.ok()) {
      this.w.rollback(this.eventStart);
      this.openedDroppedTotal++;
      return false;
    }
    if (this.entries() == 0) this.firstAtMs = now;
    this.opened++;
    return true;
  }

  /** Events and opened entries buffered. */
  entries(): i32 {
    return this.count + this.opened;
  }

  /** Commits the event, or drops it (counted) when it did not fit. Returns whether it was kept. */
  endEvent(now: i64): bool {
    this.w.end();
    if (!this.w.ok()) {
      this.w.rollback(this.eventStart);
      this.dropped++;
      this.droppedTotal++;
      return false;
    }
    if (this.entries() == 0) this.firstAtMs = now;
    this.count++;
    return true;
  }

  /** Appends dropped_events and returns the message length. */
  finish(): u32 {
    this.bodyEnd = this.w.pos;
    if (this.dropped > 0) {
      this.w.cap += TRAILER_BYTES;
      this.w.uint64(REPORT_DROPPED, this.dropped);
      this.w.cap -= TRAILER_BYTES;
    }
    return this.w.pos;
  }

  /** Undoes finish() (the host copied the message). */
  unfinish(): void {
    this.w.rollback(this.bodyEnd);
  }

  /** Marks every buffered event (and the dropped count) as the batch in flight. */
  markSent(): void {
    this.sentCount = this.count;
    this.sentOpened = this.opened;
    this.sentBytes = this.w.pos;
    this.sentDropped = this.dropped;
  }

  /** The batch in flight was not acknowledged: it stays, to be sent again. */
  unsent(): void {
    this.sentCount = 0;
    this.sentOpened = 0;
    this.sentBytes = 0;
    this.sentDropped = 0;
  }

  /** Control acknowledged the batch in flight: drop it, keep what was decided since. */
  ack(now: i64): void {
    const rest = this.w.pos - this.sentBytes;
    if (rest > 0) memory.copy(this.w.buf, this.w.buf + <usize>this.sentBytes, <usize>rest);
    this.w.rollback(rest);
    this.count -= this.sentCount;
    this.opened -= this.sentOpened;
    this.dropped -= this.sentDropped;
    if (this.entries() > 0) this.firstAtMs = now;
    this.unsent();
  }

  clear(): void {
    this.w.reset();
    this.count = 0;
    this.opened = 0;
    this.dropped = 0;
    this.unsent();
  }
}
