/**
 * Logging setup: LogTape with structured output and two layers of secret redaction.
 *
 * Fields whose names look secret (token, password, secret, …) are removed from every record, and the configured
 * secret values themselves are masked wherever they would appear in a formatted line, error messages included.
 *
 * @module
 */
import {
  ansiColorFormatter,
  configure,
  getStreamSink,
  jsonLinesFormatter,
  type LogLevel as TapeLevel,
  reset,
  type Sink,
  type TextFormatter,
} from "@logtape/logtape";
import { redactByField, redactByPattern } from "@logtape/redaction";
import { type LogLevel, secretSpellings } from "./config.ts";

/** Options for {@link setupLogging}. */
export interface LogOptions {
  level: LogLevel;
  format: "json" | "pretty";
  /** Exact values never to print (tokens, passwords). */
  secrets?: string[];
  /** Where lines go; stderr by default. Tests pass a collector. */
  sink?: Sink;
}

const levelMap: Record<LogLevel, TapeLevel> = {
  debug: "debug",
  info: "info",
  warn: "warning",
  error: "error",
};

/** Builds the formatter that masks `secrets` in finished lines. */
export function redactingFormatter(format: "json" | "pretty", secrets: string[]): TextFormatter {
  const base = format === "json" ? jsonLinesFormatter : ansiColorFormatter;
  // JSON lines hold a secret as JSON escapes it (`"` → `\"`) and URLs hold it encoded: mask every spelling.
  const patterns = secretSpellings(secrets).map((s) => ({
    pattern: new RegExp(escapeRegExp(s), "g"),
    replacement: "***",
  }));
  return patterns.length > 0 ? redactByPattern(base, patterns) : base;
}

/**
 * Configures LogTape for the whole process. Call once at start; call {@link stopLogging} at exit.
 *
 * @example
 * ```ts
 * await setupLogging({ level: "info", format: "json", secrets: [token] });
 * ```
 */
export async function setupLogging(opts: LogOptions): Promise<void> {
  const formatter = redactingFormatter(opts.format, opts.secrets ?? []);
  const sink = opts.sink ?? getStreamSink(Deno.stderr.writable, { formatter });
  const safe = redactByField(sink, {
    // Not LogTape's defaults: those also drop harmless fields such as `author`.
    fieldPatterns: [
      /token/i,
      /passw/i,
      /secret/i,
      /authorization/i,
      /cookie/i,
      /credential/i,
      /api[-_]?key/i,
    ],
  });
  await configure({
    reset: true,
    sinks: { main: safe },
    loggers: [
      { category: ["mmxmpp"], lowestLevel: levelMap[opts.level], sinks: ["main"] },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: ["main"] },
    ],
  });
}

/** Flushes and detaches every sink. */
export async function stopLogging(): Promise<void> {
  await reset();
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
