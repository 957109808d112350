/**
 * The doctor's steps and report: running a step with its time, skipping what depends on a failure, and printing
 * one line per step (or JSON) with every secret masked.
 *
 * @module
 */
import { errorMessage } from "../core/errors.ts";
import { secretSpellings } from "../config.ts";

/** How a step ended. */
export type StepStatus = "pass" | "fail" | "skip";

/** One step's outcome, as printed and as JSON. */
export interface StepResult {
  /** Stable identifier, e.g. `xmpp.tls`. */
  id: string;
  /** What a person reads, e.g. "XMPP TLS". */
  name: string;
  status: StepStatus;
  /** Time the step took, in milliseconds (0 when skipped). */
  ms: number;
  detail: string;
  /** For a failure: one line saying what to do. */
  fix?: string;
  /** A list shown with `--verbose` (e.g. the server's features). */
  items?: string[];
}

/** What a passing step reports. */
export interface StepPass {
  detail: string;
  items?: string[];
  /** The time to report, when it is not the step's wall time (e.g. only the SASL exchange of a login). */
  ms?: number;
}

/**
 * A failure whose message and fix are written for the person running the doctor. Any other error thrown by a step
 * becomes a failure with the step's default fix.
 *
 * @example
 * ```ts
 * throw new StepFailure("the server refused the password", "check XMPP_PASSWORD");
 * ```
 */
export class StepFailure extends Error {
  constructor(message: string, readonly fix?: string) {
    super(message);
    this.name = "StepFailure";
  }
}

/** One step to run. */
export interface StepSpec {
  id: string;
  name: string;
  /** What to do when the step fails with an error that does not say it itself. */
  fix: string;
  /** Ids of steps that must have passed; otherwise this one is skipped. */
  needs?: string[];
  /** When set, the step is not run and is reported as skipped for this reason. */
  skip?: string;
  run(): Promise<StepPass>;
}

/**
 * Runs steps in order and keeps their results; hands each result to `onResult` as soon as it is known.
 *
 * @example
 * ```ts
 * const checkup = new Checkup((r) => console.log(formatStep(r)));
 * await checkup.run({ id: "a", name: "A", fix: "…", run: async () => ({ detail: "fine" }) });
 * ```
 */
export class Checkup {
  readonly results: StepResult[] = [];

  constructor(private readonly onResult: (result: StepResult) => void = () => {}) {}

  /** Runs `spec` unless it is skipped; resolves true when it passed. */
  async run(spec: StepSpec): Promise<boolean> {
    const base = { id: spec.id, name: spec.name };
    const unmet = (spec.needs ?? []).map((id) => this.results.find((r) => r.id === id))
      .find((r) => !r || r.status !== "pass");
    if (spec.skip !== undefined || unmet) {
      const detail = spec.skip ??
        `needs ${unmet!.name}, which ${unmet!.status === "fail" ? "failed" : "was skipped"}`;
      return this.record({ ...base, status: "skip", ms: 0, detail });
    }
    const t0 = performance.now();
    try {
      const pass = await spec.run();
      return this.record({
        ...base,
        status: "pass",
        ms: pass.ms ?? performance.now() - t0,
        detail: pass.detail,
        items: pass.items,
      });
    } catch (err) {
      const fix = err instanceof StepFailure && err.fix ? err.fix : spec.fix;
      return this.record({
        ...base,
        status: "fail",
        ms: performance.now() - t0,
        detail: errorMessage(err),
        fix,
      });
    }
  }

  /** Counts by status. */
  summary(): { passed: number; failed: number; skipped: number } {
    const count = (s: StepStatus) => this.results.filter((r) => r.status === s).length;
    return { passed: count("pass"), failed: count("fail"), skipped: count("skip") };
  }

  private record(result: StepResult): boolean {
    this.results.push(result);
    this.onResult(result);
    return result.status === "pass";
  }
}

const MARKS: Record<StepStatus, string> = { pass: "✓", fail: "✗", skip: "–" };

/** The text lines of one step: the mark line, then the fix (for a failure) and the items (when given). */
export function formatStep(r: StepResult): string[] {
  const time = r.status === "skip" ? "" : ` (${Math.round(r.ms)} ms)`;
  const head = r.status === "skip" ? `${r.name}: skipped, ${r.detail}` : `${r.name}${time}: ${r.detail}`;
  const lines = [`${MARKS[r.status]} ${head}`];
  if (r.status === "fail" && r.fix) lines.push(`  → what to do: ${r.fix}`);
  for (const item of r.items ?? []) lines.push(`    ${item}`);
  return lines;
}

/** The summary line, e.g. `12 passed, 1 failed, 2 skipped`. */
export function formatSummary(s: { passed: number; failed: number; skipped: number }): string {
  return `${s.passed} passed, ${s.failed} failed, ${s.skipped} skipped`;
}

/** The whole report as JSON-able data. */
export function reportJson(checkup: Checkup): unknown {
  const s = checkup.summary();
  return {
    ok: s.failed === 0,
    ...s,
    steps: checkup.results.map((r) => ({ ...r, ms: Math.round(r.ms) })),
  };
}

/**
 * Returns a function that replaces every occurrence of each secret with `***`. The doctor passes everything it
 * prints through it, so a secret an error message happens to quote never reaches the terminal.
 *
 * @example
 * ```ts
 * const mask = masker(["hunter2"]);
 * mask("password hunter2 refused"); // "password *** refused"
 * ```
 */
export function masker(secrets: Array<string | undefined>): (text: string) => string {
  // Every spelling: --json output holds a secret JSON-escaped.
  const spellings = secretSpellings(secrets.filter((s): s is string => !!s));
  return (text) => spellings.reduce((out, spelling) => out.replaceAll(spelling, "***"), text);
}
