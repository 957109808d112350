/**
 * The command the user ran mmxmpp with, so that every "try … --help" names something they can type again.
 *
 * @module
 */
import { basename } from "node:path";

/** What tells a compiled binary from `deno run main.ts`. */
export interface Process {
  /** `Deno.execPath()`: the deno executable, or the compiled binary itself. */
  execPath: string;
  /** `Deno.mainModule`: a compiled binary's lives in its embedded file system, under `<tmp>/deno-compile-<name>/`. */
  mainModule: string;
}

/**
 * `mmxmpp` (the compiled binary, under whatever name it was installed) or `deno task start` (a checkout, where
 * `main.ts` runs under deno).
 *
 * @example
 * ```ts
 * console.error(`Try ${commandName()} --help.`);
 * ```
 */
export function commandName(
  process: Process = { execPath: Deno.execPath(), mainModule: Deno.mainModule },
): string {
  const exe = basename(process.execPath).replace(/\.exe$/i, "");
  const compiled = process.mainModule.includes("/deno-compile-") || exe !== "deno";
  return compiled ? exe : "deno task start";
}
