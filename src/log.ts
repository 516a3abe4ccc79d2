/**
 * Structured logs: one JSON object per line, which Workers Logs and most collectors index. Log
 * fields carry ids (email_id, key_id), never tokens, passwords or message content.
 */
export interface Logger {
  info(event: string, fields?: Record<string, unknown>): void;
  warn(event: string, fields?: Record<string, unknown>): void;
  error(event: string, fields?: Record<string, unknown>): void;
}

export type LogLevel = "info" | "warn" | "error";
const RANK: Record<LogLevel, number> = { info: 0, warn: 1, error: 2 };

export function jsonLogger(
  minLevel: LogLevel = "info",
  write: (line: string) => void = console.log,
): Logger {
  const emit =
    (level: LogLevel) =>
    (event: string, fields: Record<string, unknown> = {}) => {
      if (RANK[level] >= RANK[minLevel]) write(JSON.stringify({ level, event, ...fields }));
    };
  return { info: emit("info"), warn: emit("warn"), error: emit("error") };
}

export const silentLogger: Logger = { info() {}, warn() {}, error() {} };
