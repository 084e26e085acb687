// One JSON logger for every long-running egret process (control, agent, sidecar).
import { pino, type Logger } from "pino";

export type { Logger };

export function createLogger(component: string, level = process.env.EGRET_LOG_LEVEL ?? "info"): Logger {
  return pino({ level, base: { component }, timestamp: pino.stdTimeFunctions.isoTime });
}

/** A logger that discards everything (tests, offline commands). */
export function silentLogger(): Logger {
  return pino({ level: "silent" });
}
