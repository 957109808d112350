/**
 * mmxmpp's entry point: flags, configuration, logging, and a clean shutdown on SIGINT/SIGTERM.
 *
 * Exit codes: 0 clean stop, 1 runtime failure, 2 bad configuration, 3 credentials refused (see `EXIT` in app.ts).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { getLogger } from "@logtape/logtape";
import { helpText, loadConfig, maskedConfig, maskText, secretsOf } from "./src/config.ts";
import { setupLogging, stopLogging } from "./src/log.ts";
import { EXIT, exitCodeOf, startBridge } from "./src/app.ts";
import { errorMessage } from "./src/core/errors.ts";
import { VERSION } from "./src/version.ts";
import { commandName } from "./src/cli/command.ts";
import { httpAddrProblem, kvPathProblem } from "./src/preflight.ts";

/** The bridge's own flags; anything else may be the doctor's. */
const MAIN_FLAGS = ["--help", "-h", "--version", "-V", "--check-config"];

/** Runs the command line; returns the process exit code. */
export async function main(args: string[]): Promise<number> {
  const command = commandName();
  if (args[0] === "mappings") {
    const { runMappings } = await import("./src/cli/mappings.ts");
    return await runMappings(args.slice(1), Deno.env.toObject());
  }
  // `--doctor` may come anywhere among its flags; everything after a `--` is an argument, never a flag.
  const end = args.includes("--") ? args.indexOf("--") : args.length;
  const doctorAt = args.slice(0, end).indexOf("--doctor");
  if (doctorAt >= 0) {
    const rest = args.toSpliced(doctorAt, 1);
    if (rest.slice(0, end - 1).includes("--check-config")) {
      console.error(
        `mmxmpp: --check-config and --doctor are separate checks: run \`${command} --check-config\` (the ` +
          `settings only) or \`${command} --doctor\` (settings and servers), one at a time`,
      );
      return EXIT.configuration;
    }
    const { runDoctor } = await import("./doctor.ts");
    return await runDoctor(rest, Deno.env.toObject());
  }
  let flags;
  try {
    flags = parseArgs({
      args,
      options: {
        help: { type: "boolean", short: "h" },
        version: { type: "boolean", short: "V" },
        "check-config": { type: "boolean" },
      },
      strict: true,
    }).values;
  } catch (err) {
    // Flags the doctor would take, given without --doctor: say so instead of "unknown option".
    const rest = args.filter((a) => !MAIN_FLAGS.includes(a));
    const { parseDoctorFlags } = await import("./src/doctor/options.ts");
    const forDoctor = (() => {
      try {
        parseDoctorFlags(rest);
        return true;
      } catch {
        return false;
      }
    })();
    console.error(
      forDoctor
        ? `mmxmpp: ${rest.join(" ")}: flags of --doctor, which is not given: run ` +
          `\`${command} --doctor ${rest.join(" ")}\`. Try ${command} --doctor --help.`
        : `mmxmpp: ${errorMessage(err)}. Try ${command} --help.`,
    );
    return EXIT.configuration;
  }
  if (flags.help) {
    console.log(helpText(VERSION, command));
    return EXIT.ok;
  }
  if (flags.version) {
    console.log(`mmxmpp ${VERSION}`);
    return EXIT.ok;
  }
  const loaded = loadConfig(Deno.env.toObject(), undefined, Deno.stderr.isTerminal());
  if (!loaded.ok) {
    for (const e of loaded.errors) {
      console.error(maskText(`mmxmpp: configuration error: ${e}`, loaded.secrets));
    }
    // A misspelt name is often why a variable is "required": say so next to the error.
    for (const w of loaded.warnings) console.error(maskText(`mmxmpp: warning: ${w}`, loaded.secrets));
    console.error(`mmxmpp: see ${command} --help for every variable`);
    return EXIT.configuration;
  }
  const { config } = loaded;
  if (flags["check-config"]) {
    for (const w of loaded.warnings) console.error(maskText(`mmxmpp: warning: ${w}`, config.secrets));
    // What only this machine can tell: where the state goes and where the listener binds.
    const problems = [kvPathProblem(config.bridge.kvPath), httpAddrProblem(config.bridge.httpAddr)]
      .filter((p) => p !== undefined);
    if (problems.length > 0) {
      for (const p of problems) console.error(maskText(`mmxmpp: configuration error: ${p}`, config.secrets));
      return EXIT.configuration;
    }
    console.log(JSON.stringify(maskedConfig(config), null, 2));
    return EXIT.ok;
  }

  await setupLogging({ level: config.log.level, format: config.log.format, secrets: secretsOf(config) });
  const log = getLogger(["mmxmpp"]);
  routeLibraryConsole();
  log.info("mmxmpp {version} starting", { version: VERSION });
  for (const warning of loaded.warnings) log.warn("Configuration: {warning}", { warning });
  // Listening from the start: a server that is down at start is retried, and SIGTERM must end that wait too.
  const stopping = new AbortController();
  const signal = new Promise<string>((resolve) => {
    for (const sig of ["SIGINT", "SIGTERM"] as const) {
      Deno.addSignalListener(sig, () => {
        stopping.abort(new Error(`received ${sig}`));
        resolve(sig);
      });
    }
  });
  let bridge;
  try {
    bridge = await startBridge(config, { signal: stopping.signal });
  } catch (err) {
    if (stopping.signal.aborted) {
      log.info("Received {signal} while starting; stopped", { signal: await signal });
      await stopLogging();
      return EXIT.ok;
    }
    // The command is part of the text, not a placeholder: a placeholder's value is shown quoted.
    log.fatal(`Could not start: {error}. Run \`${command} --doctor\` for a full check`, {
      error: errorMessage(err),
    });
    await stopLogging();
    return exitCodeOf(err);
  }
  log.info("mmxmpp is running");
  log.info("Received {signal}; shutting down", { signal: await signal });
  // Whatever happens, exit within 5 seconds.
  const deadline = setTimeout(() => {
    log.error("Shutdown took longer than 5 s; exiting anyway");
    Deno.exit(0);
  }, 5_000);
  await bridge.stop().catch((err) =>
    log.error("Error while stopping: {error}", { error: errorMessage(err) })
  );
  clearTimeout(deadline);
  log.info("Stopped");
  await stopLogging();
  return EXIT.ok;
}

/** Libraries (the Mattermost websocket client) print to the console; send that to the debug log instead. */
function routeLibraryConsole(): void {
  const lib = getLogger(["mmxmpp", "lib"]);
  const forward = (...args: unknown[]) => lib.debug("{text}", { text: args.map(String).join(" ") });
  console.log = forward;
  console.info = forward;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
