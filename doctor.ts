/**
 * `mmxmpp --doctor`: checks the XMPP server and Mattermost the bridge is configured for, one step per line.
 *
 * Each step prints a mark (✓ passed, ✗ failed, – skipped) and its time, and a "what to do" line when it fails;
 * a summary follows. `--json` prints the same as JSON. Steps that need a failed step are skipped. Secrets are
 * masked in everything printed.
 *
 * Exit code 0 when no step failed, 1 otherwise, 2 for bad flags or configuration.
 *
 * @module
 */
import { errorMessage } from "./src/core/errors.ts";
import { commandName } from "./src/cli/command.ts";
import { secretsOf } from "./src/config.ts";
import { secretsIn } from "./src/settings.ts";
import { DOCTOR_HELP, doctorSettings, parseDoctorFlags } from "./src/doctor/options.ts";
import { Checkup, formatStep, formatSummary, masker, reportJson } from "./src/doctor/report.ts";
import { xmppSteps } from "./src/doctor/xmpp_steps.ts";
import { chooseService } from "./src/xmpp/session/srv.ts";
import { mattermostSteps } from "./src/doctor/mattermost_steps.ts";

/** Where the doctor writes; tests substitute it. */
export interface DoctorOutput {
  out(line: string): void;
  err(line: string): void;
}

const consoleOutput: DoctorOutput = { out: (l) => console.log(l), err: (l) => console.error(l) };

/**
 * Runs the doctor with `args` and `env`; returns the exit code.
 *
 * @example
 * ```ts
 * Deno.exit(await runDoctor(["--skip-mattermost"], Deno.env.toObject()));
 * ```
 */
export async function runDoctor(
  args: string[],
  env: Record<string, string | undefined>,
  output: DoctorOutput = consoleOutput,
): Promise<number> {
  let flags;
  try {
    flags = parseDoctorFlags(args);
  } catch (err) {
    output.err(`mmxmpp --doctor: ${errorMessage(err)}. Try ${commandName()} --doctor --help.`);
    return 2;
  }
  if (flags.help) {
    output.out(DOCTOR_HELP.replace(/^Usage: mmxmpp /, `Usage: ${commandName()} `));
    return 0;
  }
  const resolved = doctorSettings(flags, env);
  // Every secret of the schema: as given (even those --skip-mattermost sets aside) and as read from _FILE.
  const given = [...secretsIn(env), flags.password];
  const mask = masker([...given, ...(resolved.ok ? secretsOf(resolved.settings.config) : resolved.secrets)]);
  if (!resolved.ok) {
    for (const e of resolved.errors) output.err(mask(`mmxmpp --doctor: ${e}`));
    if (flags.json) output.out(JSON.stringify({ ok: false, errors: resolved.errors.map(mask) }, null, 2));
    return 2;
  }
  const s = resolved.settings;
  let how = "";
  if (s.config.xmpp.discoverService) {
    // As the bridge does at start: XMPP_SERVICE unset means DNS SRV, then the JID's domain on 5222.
    const found = await chooseService(s.config.xmpp.domain);
    s.config = { ...s.config, xmpp: { ...s.config.xmpp, service: found.service } };
    how = found.source === "srv" ? " (found by DNS SRV)" : " (no DNS SRV records: the JID's domain)";
  }
  const { config } = s;
  const show = (line: string) => output.out(mask(line));
  for (const w of s.warnings) output.err(mask(`mmxmpp --doctor: warning: ${w}`));

  const checkup = new Checkup((r) => {
    if (!flags.json) { for (const line of formatStep(r)) show(line); }
  });
  if (!flags.json) {
    show(
      `mmxmpp doctor: XMPP ${config.xmpp.jid} via ${config.xmpp.service}${how}` +
        (s.skipMattermost ? "; Mattermost skipped" : `; Mattermost ${config.mattermost.url}`),
    );
  }

  const xmpp = xmppSteps(s);
  try {
    for (const step of xmpp.steps) await checkup.run(step);
  } finally {
    await xmpp.close();
  }
  if (!s.skipMattermost) {
    for (const step of mattermostSteps(s)) await checkup.run(step);
  }

  const summary = checkup.summary();
  if (flags.json) show(JSON.stringify(reportJson(checkup), null, 2));
  else show(formatSummary(summary));
  return summary.failed === 0 ? 0 : 1;
}

if (import.meta.main) Deno.exit(await runDoctor(Deno.args, Deno.env.toObject()));
