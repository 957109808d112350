/**
 * Captures the bridge's log records (every level) while `fn` runs, for assertions on what was logged.
 *
 * @module
 */
import { configure, type LogRecord, reset } from "@logtape/logtape";

/** Runs `fn` with every `mmxmpp` log record collected into the array it is given; restores logging after. */
export async function captureLogs(fn: (records: LogRecord[]) => Promise<void>): Promise<void> {
  const records: LogRecord[] = [];
  await configure({
    reset: true,
    sinks: { buffer: (record: LogRecord) => records.push(record) },
    loggers: [
      { category: ["mmxmpp"], lowestLevel: "debug", sinks: ["buffer"] },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: [] },
    ],
  });
  try {
    await fn(records);
  } finally {
    await reset();
  }
}
