/**
 * The doctor's flags, and its settings: the bridge's own environment configuration with the flags on top.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { jid as parseJid } from "@xmpp/client-core";
import { type Config, loadConfig, secretsOf } from "../config.ts";
import { normalizeRoomJid } from "../xmpp/protocol/jid.ts";
import { errorMessage } from "../core/errors.ts";

/** The doctor's flags as given. */
export interface DoctorFlags {
  server?: string;
  username?: string;
  password?: string;
  resource?: string;
  testRoom?: string;
  testMuc: boolean;
  testDm?: string;
  testXep0077: boolean;
  testRoomExists?: string;
  verbose: boolean;
  insecureSkipVerify: boolean;
  json: boolean;
  skipMattermost: boolean;
  help: boolean;
}

/** What the doctor checks, and with which settings. */
export interface DoctorSettings extends
  Pick<
    DoctorFlags,
    "testMuc" | "testDm" | "testXep0077" | "testRoomExists" | "verbose" | "skipMattermost"
  > {
  config: Config;
  /** The resource the doctor binds; random by default so that it never replaces another session. */
  resource: string;
  /** Room for the MUC and XEP-0077 steps, when `--test-room` names one; else each uses a throwaway room. */
  testRoom?: string;
  /** True when {@link DoctorSettings.testRoom} is mapped in BRIDGE_MAPPINGS: probe messages get bridged there. */
  testRoomMapped: boolean;
  /** The MUC service of the first mapped room, where throwaway rooms go; else the server's is discovered. */
  mucService?: string;
  /** Warnings for stderr (e.g. a password on the command line). */
  warnings: string[];
}

/** Usage of `mmxmpp --doctor`. */
export const DOCTOR_HELP = `Usage: mmxmpp --doctor [flags]

Checks the XMPP server and Mattermost configured in the environment (the same variables as the bridge), one
step per line. Flags override the environment.

  --server HOST:PORT|URL     XMPP server to connect to [XMPP_SERVICE]. HOST:PORT or xmpp://HOST:PORT means
                             plain XMPP upgraded with STARTTLS (usually port 5222); xmpps://HOST:PORT means
                             direct TLS from the first byte (usually port 5223)
  --username JID|LOCAL       account to log in as; a bare localpart takes XMPP_JID's domain [XMPP_JID]
  --password PASSWORD        its password [XMPP_PASSWORD]. Visible to other users of this machine (ps): prefer
                             XMPP_PASSWORD or XMPP_PASSWORD_FILE
  --resource RESOURCE        resource to bind [XMPP_RESOURCE-doctor-RANDOM: never replaces another session]
  --test-room ROOM@SERVICE   room for --test-muc and --test-xep0077 [a throwaway room mmxmpp-doctor-RANDOM on
                             the MUC service of the first mapped room (or the server's MUC service), created
                             for the test and destroyed after it]. A mapped room gets the test messages
                             bridged to Mattermost
  --test-muc                 join the test room, send a message and time its reflection
  --test-dm JID              send a chat message to JID; passes when no error comes back within 2 s
  --test-xep0077             register a temporary account in-band, log in, join the test room, send a message,
                             cancel the registration and check that the account is gone
  --test-room-exists ROOM    check that ROOM exists and that a random room at the same service does not
  --verbose                  show lists (the server's features, the certificate's fingerprint)
  --insecure-skip-verify     do not check the XMPP server's certificate [XMPP_TLS_INSECURE_SKIP_VERIFY]
  --json                     print the report as JSON
  --skip-mattermost          check XMPP only (MM_* need not be set)
  --help                     show this text

Exit codes: 0 every step passed (skipped steps do not count), 1 a step failed, 2 bad flags or configuration.`;

/** Parses the doctor's arguments; throws an Error saying what is wrong. */
export function parseDoctorFlags(args: string[]): DoctorFlags {
  const { values } = parseArgs({
    args,
    options: {
      server: { type: "string" },
      username: { type: "string" },
      password: { type: "string" },
      resource: { type: "string" },
      "test-room": { type: "string" },
      "test-muc": { type: "boolean" },
      "test-dm": { type: "string" },
      "test-xep0077": { type: "boolean" },
      "test-room-exists": { type: "string" },
      verbose: { type: "boolean", short: "v" },
      "insecure-skip-verify": { type: "boolean" },
      json: { type: "boolean" },
      "skip-mattermost": { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
    strict: true,
    allowPositionals: false,
  });
  return {
    server: values.server,
    username: values.username,
    password: values.password,
    resource: values.resource,
    testRoom: values["test-room"],
    testMuc: values["test-muc"] ?? false,
    testDm: values["test-dm"],
    testXep0077: values["test-xep0077"] ?? false,
    testRoomExists: values["test-room-exists"],
    verbose: values.verbose ?? false,
    insecureSkipVerify: values["insecure-skip-verify"] ?? false,
    json: values.json ?? false,
    skipMattermost: values["skip-mattermost"] ?? false,
    help: values.help ?? false,
  };
}

/** Settings, or one line per problem (bad flag values or configuration). */
export type SettingsResult =
  | { ok: true; settings: DoctorSettings }
  | {
    ok: false;
    errors: string[];
    /** Secret values that were read (see settings.ts), to mask in what is printed. */
    secrets: string[];
  };

/** Mattermost variables that play no part when Mattermost is skipped. */
const MATTERMOST_ONLY = [
  "MM_URL",
  "MM_TOKEN",
  "MM_TOKEN_FILE",
  "MM_COMMAND_TOKEN",
  "MM_COMMAND_TOKEN_FILE",
  "BRIDGE_PUBLIC_URL",
];

/**
 * Builds the settings from the environment and the flags. With `--skip-mattermost` the Mattermost variables are
 * neither required nor checked.
 *
 * @example
 * ```ts
 * const res = doctorSettings(parseDoctorFlags(["--test-muc"]), Deno.env.toObject());
 * ```
 */
export function doctorSettings(flags: DoctorFlags, env: Record<string, string | undefined>): SettingsResult {
  const errors: string[] = [];
  const warnings: string[] = [];
  const patched: Record<string, string | undefined> = { ...env };
  if (flags.skipMattermost) {
    for (const name of MATTERMOST_ONLY) delete patched[name];
    // Placeholders only satisfy the loader; nothing connects to them.
    Object.assign(patched, { MM_URL: "http://mattermost.invalid", MM_TOKEN: "unused" });
  }
  if (flags.server !== undefined) patched.XMPP_SERVICE = serviceUrl(flags.server);
  if (flags.username !== undefined) {
    const domain = env.XMPP_JID?.split("@")[1];
    patched.XMPP_JID = flags.username.includes("@") || !domain
      ? flags.username
      : `${flags.username}@${domain}`;
  }
  if (flags.password !== undefined) {
    patched.XMPP_PASSWORD = flags.password;
    delete patched.XMPP_PASSWORD_FILE;
    warnings.push(
      "--password is visible to other users of this machine (ps, shell history); prefer XMPP_PASSWORD or XMPP_PASSWORD_FILE",
    );
  }
  if (flags.insecureSkipVerify) patched.XMPP_TLS_INSECURE_SKIP_VERIFY = "true";

  const loaded = loadConfig(patched);
  if (!loaded.ok) errors.push(...loaded.errors.map((e) => `configuration error: ${e}`));
  else warnings.push(...loaded.warnings);

  const room = (flag: string, value: string | undefined) => {
    if (value === undefined) return undefined;
    try {
      return normalizeRoomJid(value);
    } catch (err) {
      errors.push(`${flag}: ${errorMessage(err)}`);
      return undefined;
    }
  };
  const testRoom = room("--test-room", flags.testRoom);
  const mappedRooms = loaded.ok ? loaded.config.bridge.mappings.map((m) => m.xmpp.toLowerCase()) : [];
  const testRoomMapped = testRoom !== undefined && mappedRooms.includes(testRoom.toLowerCase());
  if (testRoomMapped && (flags.testMuc || flags.testXep0077)) {
    warnings.push(
      `--test-room ${testRoom} is mapped in BRIDGE_MAPPINGS: the probe messages will be bridged to Mattermost ` +
        "(leave --test-room out for a throwaway room)",
    );
  }
  const testRoomExists = room("--test-room-exists", flags.testRoomExists);
  if (flags.testDm !== undefined && !isUserJid(flags.testDm)) {
    errors.push(`--test-dm: "${flags.testDm}" is not a JID like user@example.org`);
  }
  if (errors.length > 0 || !loaded.ok) {
    return { ok: false, errors, secrets: loaded.ok ? secretsOf(loaded.config) : loaded.secrets };
  }
  const config = loaded.config;
  return {
    ok: true,
    settings: {
      config,
      resource: flags.resource ?? `${config.xmpp.resource}-doctor-${crypto.randomUUID().slice(0, 8)}`,
      testRoom,
      testRoomMapped,
      mucService: mappedRooms[0]?.split("@")[1],
      testMuc: flags.testMuc,
      testDm: flags.testDm,
      testXep0077: flags.testXep0077,
      testRoomExists,
      verbose: flags.verbose,
      skipMattermost: flags.skipMattermost,
      warnings,
    },
  };
}

/** `host`, `host:port` or a URL → an XMPP_SERVICE value. */
function serviceUrl(server: string): string {
  return /^[a-z]+:\/\//i.test(server) ? server : `xmpp://${server}`;
}

function isUserJid(value: string): boolean {
  try {
    const parsed = parseJid(value);
    return !!parsed.local && !!parsed.domain;
  } catch {
    return false;
  }
}
