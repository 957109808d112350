/**
 * The bridge's configuration, built from the environment through the settings schema (settings.ts): the checks
 * that involve more than one variable, computed defaults, `--help`, and the masked views of secrets.
 *
 * @module
 */
import { createHash } from "node:crypto";
import type { MappingRefs } from "./core/manager.ts";
import { BARE_JID, documentedVariables, MM_ID, readSettings, requiredMessage } from "./settings.ts";

/** Log verbosity. */
export type LogLevel = "debug" | "info" | "warn" | "error";

/** The bridge's effective configuration. */
export interface Config {
  mattermost: {
    url: string;
    token: string;
    team?: string;
    /** Token of a slash command created by hand, when the bridge does not register it itself. */
    commandToken?: string;
    /** XMPP users as Mattermost users of their own (`BRIDGE_MM_PUPPETS`); absent when off. */
    puppets?: { adminToken: string; prefix: string };
  };
  xmpp: {
    jid: string;
    password: string;
    /** `xmpp://host:port` (STARTTLS) or `xmpps://host:port` (direct TLS). */
    service: string;
    /**
     * XMPP_SERVICE was not set: the service is found by DNS SRV at start ({@link service} is then the fallback,
     * the JID's domain on port 5222).
     */
    discoverService: boolean;
    /** Domain of the JID; the name TLS certificates are checked against. */
    domain: string;
    resource: string;
    mucNick: string;
    tlsInsecureSkipVerify: boolean;
    /** Log in even over a stream without TLS (`XMPP_ALLOW_UNENCRYPTED`); never with PLAIN. */
    allowUnencrypted: boolean;
    caFile?: string;
    /** PEM text of `caFile`. */
    ca?: string;
  };
  bridge: {
    mappings: MappingRefs[];
    /** Whether a static mapping may create its XMPP room (`BRIDGE_CREATE_ROOMS`). */
    createRooms: boolean;
    /** How far back the catch-up at start reaches (`BRIDGE_CATCHUP_MAX_AGE`), in ms. */
    catchUpMaxAgeMs: number;
    kvPath: string;
    httpAddr: { hostname: string; port: number };
    publicUrl?: string;
    xmppNameFormat: string;
    mmNameFormat: string;
    mmDisplay: "override" | "prefix";
    /** `@channel`, `@all` and `@here` from XMPP notify the Mattermost channel (else they are defused). */
    allowChannelMentions: boolean;
    /** Hosts files may be downloaded from over http (`BRIDGE_FILE_FETCH_HOSTS`); unset: the upload service's. */
    fileFetchHosts?: string[];
  };
  ghosts: {
    /** `relay`: the bridge speaks for everyone; `ibr`: an account per user; `component`: XEP-0114 puppets. */
    mode: "relay" | "ibr" | "component";
    prefix: string;
    /** Domain ghost accounts are registered on (`ibr`). */
    domain: string;
    nickFormat: string;
    idleMinutes: number;
    cleanup: boolean;
    /** Distinguishes instances in ghost resources. */
    nodeId: string;
    /** Encrypts stored ghost passwords when set. */
    secretKey?: string;
    component?: { jid: string; secret: string; service: string };
  };
  log: { level: LogLevel; format: "json" | "pretty" };
  /** Every secret value read (see settings.ts), for masking; {@link maskedConfig} leaves it out. */
  secrets: readonly string[];
}

/** Result of {@link loadConfig}: either a config or one line per problem. */
export type ConfigResult =
  | { ok: true; config: Config; warnings: string[] }
  | {
    ok: false;
    errors: string[];
    /** Warnings found as well (e.g. a misspelt variable, often the cause of a "required" error). */
    warnings: string[];
    /** The secret values that were read, so that whoever prints the errors can still mask them. */
    secrets: string[];
  };

/** How the loader reads `_FILE` secrets; tests substitute it. */
export type ReadFile = (path: string) => string;

/**
 * Reads and validates the configuration from `env` (the schema is in settings.ts). Collects every problem instead
 * of stopping at the first, and never puts a secret's value in a message.
 *
 * @example
 * ```ts
 * const res = loadConfig(Deno.env.toObject());
 * if (!res.ok) { for (const e of res.errors) console.error(e); Deno.exit(2); }
 * ```
 */
export function loadConfig(
  env: Record<string, string | undefined>,
  readFile: ReadFile = (p) => Deno.readTextFileSync(p),
  isTty = false,
): ConfigResult {
  const { values: v, errors, warnings, secrets } = readSettings(env, readFile);

  // Defaults computed from other settings, and checks that involve more than one variable.
  const domain = v.XMPP_JID?.domain ?? "";
  const service = v.XMPP_SERVICE ?? (domain ? `xmpp://${domain}:5222` : "");
  if (v.XMPP_TLS_INSECURE_SKIP_VERIFY) {
    warnings.unshift("XMPP_TLS_INSECURE_SKIP_VERIFY=true: the XMPP server's certificate is not checked");
  }
  const mappings = parseMappings(v.BRIDGE_MAPPINGS, v.MM_TEAM, errors);
  const kvPath = v.BRIDGE_KV_PATH ?? defaultKvPath(env);
  if (v.BRIDGE_PUBLIC_URL && !v.MM_TEAM) {
    errors.push("BRIDGE_PUBLIC_URL needs MM_TEAM: the slash command is registered in a team");
  }
  let component: Config["ghosts"]["component"];
  if (v.BRIDGE_GHOST_MODE === "component") {
    // Optional in the other modes, required in this one (unless already reported as invalid).
    const reported = (name: string) => errors.some((e) => e.startsWith(name));
    if (v.XMPP_COMPONENT_JID === undefined && !reported("XMPP_COMPONENT_JID")) {
      errors.push("XMPP_COMPONENT_JID is required with BRIDGE_GHOST_MODE=component");
    }
    if (v.XMPP_COMPONENT_SECRET === undefined && !reported("XMPP_COMPONENT_SECRET")) {
      errors.push(requiredMessage("XMPP_COMPONENT_SECRET"));
    }
    const componentService = v.XMPP_COMPONENT_SERVICE ?? componentServiceOf(service);
    if (v.XMPP_COMPONENT_JID && v.XMPP_COMPONENT_SECRET && componentService) {
      component = { jid: v.XMPP_COMPONENT_JID, secret: v.XMPP_COMPONENT_SECRET, service: componentService };
    }
  }

  if (
    v.BRIDGE_MM_PUPPETS && v.MM_ADMIN_TOKEN === undefined &&
    !errors.some((e) => e.startsWith("MM_ADMIN_TOKEN"))
  ) {
    errors.push(
      "BRIDGE_MM_PUPPETS=true needs MM_ADMIN_TOKEN: a personal access token of a system admin, which creates " +
        "the puppet users (or MM_ADMIN_TOKEN_FILE naming a file that holds it)",
    );
  }

  if (errors.length > 0) return { ok: false, errors, warnings, secrets: unique(secrets) };
  return {
    ok: true,
    warnings,
    config: {
      mattermost: {
        url: v.MM_URL!,
        token: v.MM_TOKEN!,
        team: v.MM_TEAM,
        commandToken: v.MM_COMMAND_TOKEN,
        puppets: v.BRIDGE_MM_PUPPETS
          ? { adminToken: v.MM_ADMIN_TOKEN!, prefix: v.BRIDGE_MM_PUPPET_PREFIX! }
          : undefined,
      },
      xmpp: {
        jid: v.XMPP_JID!.jid,
        password: v.XMPP_PASSWORD!,
        service,
        discoverService: v.XMPP_SERVICE === undefined,
        domain,
        resource: v.XMPP_RESOURCE!,
        mucNick: v.XMPP_MUC_NICK ?? v.XMPP_JID!.local,
        tlsInsecureSkipVerify: v.XMPP_TLS_INSECURE_SKIP_VERIFY!,
        allowUnencrypted: v.XMPP_ALLOW_UNENCRYPTED!,
        caFile: v.XMPP_CA_FILE?.path,
        ca: v.XMPP_CA_FILE?.pem,
      },
      bridge: {
        mappings,
        createRooms: v.BRIDGE_CREATE_ROOMS!,
        catchUpMaxAgeMs: v.BRIDGE_CATCHUP_MAX_AGE!,
        kvPath,
        httpAddr: v.BRIDGE_HTTP_ADDR!,
        publicUrl: v.BRIDGE_PUBLIC_URL,
        xmppNameFormat: v.BRIDGE_XMPP_NAME_FORMAT!,
        mmNameFormat: v.BRIDGE_MM_NAME_FORMAT!,
        mmDisplay: v.BRIDGE_MM_DISPLAY!,
        allowChannelMentions: v.BRIDGE_ALLOW_CHANNEL_MENTIONS!,
        fileFetchHosts: v.BRIDGE_FILE_FETCH_HOSTS,
      },
      ghosts: {
        mode: v.BRIDGE_GHOST_MODE!,
        prefix: v.BRIDGE_GHOST_PREFIX!,
        domain: v.BRIDGE_GHOST_DOMAIN ?? domain,
        nickFormat: v.BRIDGE_GHOST_NICK_FORMAT!,
        idleMinutes: v.BRIDGE_GHOST_IDLE_MINUTES!,
        cleanup: v.BRIDGE_GHOST_CLEANUP!,
        nodeId: v.BRIDGE_NODE_ID ?? defaultNodeId(kvPath),
        secretKey: v.BRIDGE_SECRET_KEY,
        component,
      },
      log: { level: v.LOG_LEVEL!, format: v.LOG_FORMAT ?? (isTty ? "pretty" : "json") },
      secrets: unique(secrets),
    },
  };
}

/** The default component service: port 5347 on the XMPP server's host (none when there is no valid host). */
function componentServiceOf(service: string): string | undefined {
  try {
    const host = new URL(service).hostname;
    return host ? `xmpp://${host}:5347` : undefined;
  } catch {
    return undefined; // XMPP_SERVICE or XMPP_JID is already reported
  }
}

function unique(values: string[]): string[] {
  return [...new Set(values)];
}

/** systemd's `$STATE_DIRECTORY` (its first entry), where the unit lets the bridge write; unset outside systemd. */
export function stateDirectory(env: Record<string, string | undefined>): string | undefined {
  return env.STATE_DIRECTORY?.trim().split(":")[0] || undefined;
}

/** The state file when BRIDGE_KV_PATH is unset: `mmxmpp.kv` in {@link stateDirectory}, else `./data/mmxmpp.kv`. */
export function defaultKvPath(env: Record<string, string | undefined>): string {
  const dir = stateDirectory(env);
  return dir ? `${dir}/mmxmpp.kv` : "./data/mmxmpp.kv";
}

/**
 * A stable id for this instance: the host name plus a short hash of the state file, so that two instances on one
 * host (each with its own state) never share a ghost resource.
 */
function defaultNodeId(kvPath: string): string {
  let host = "node";
  try {
    host = Deno.hostname();
  } catch { /* no --allow-sys: keep the fallback */ }
  const safe = host.replace(/[^A-Za-z0-9._-]/g, "-").slice(0, 48) || "node";
  return `${safe}-${createHash("sha256").update(kvPath).digest("hex").slice(0, 6)}`;
}

/**
 * The secret values of a config, for log redaction and the doctor's masking: every variable the schema flags as
 * secret, as given and as read from its `_FILE`.
 */
export function secretsOf(config: Config): string[] {
  return [...config.secrets];
}

/**
 * The config as JSON-able data for `--check-config`: every secret value (wherever it ended up) replaced by
 * `"***"`, the CA certificate summarised, and the list of secrets left out.
 */
export function maskedConfig(config: Config): unknown {
  const { secrets, ...shown } = config;
  const masked = JSON.parse(
    JSON.stringify({
      ...shown,
      xmpp: { ...shown.xmpp, ca: shown.xmpp.ca && `(${shown.xmpp.ca.length} bytes of PEM)` },
    }),
    (_key, value) => typeof value === "string" ? maskText(value, secrets) : value,
  );
  return masked;
}

/**
 * `text` with every spelling of each secret (see {@link secretSpellings}) replaced by `***`. A text that is a
 * secret is masked whatever its length.
 */
export function maskText(text: string, secrets: readonly string[]): string {
  if (secrets.includes(text)) return "***";
  return secretSpellings(secrets).reduce((out, spelling) => out.replaceAll(spelling, "***"), text);
}

/** How text escapes a string it quotes: JSON (log lines, --json), and Deno.inspect (the pretty log format). */
const ESCAPES = [
  (s: string) => JSON.stringify(s).slice(1, -1),
  (s: string) => Deno.inspect(s).slice(1, -1),
];

/**
 * The ways each secret can appear in printed text, longest first: as is, URL-encoded, and escaped as a quoted
 * string up to three levels deep (a JSON log line quoting an error that quotes a JSON body). Secrets under 4
 * characters are left out, so that a very short one does not mask ordinary words.
 *
 * @example
 * ```ts
 * secretSpellings(["pa\"ss word"]); // [..., "pa\\\"ss word", "pa%22ss%20word", "pa\"ss word"]
 * ```
 */
export function secretSpellings(secrets: readonly string[]): string[] {
  const spellings = new Set<string>();
  for (const secret of secrets.filter((s) => s.length >= 4)) {
    spellings.add(secret).add(encodeURIComponent(secret));
    let level = [secret];
    for (let depth = 0; depth < 3; depth++) {
      level = [...new Set(level.flatMap((s) => ESCAPES.map((escape) => escape(s))))];
      for (const s of level) spellings.add(s);
    }
  }
  return [...spellings].sort((a, b) => b.length - a.length);
}

/**
 * Parses `BRIDGE_MAPPINGS`: comma-separated `team/channel=room@service` or `channelId=room@service`. An entry that
 * maps a channel or a room an earlier entry already maps is an error.
 */
export function parseMappings(
  value: string | undefined,
  team: string | undefined,
  errors: string[],
): MappingRefs[] {
  if (!value) return [];
  const out: MappingRefs[] = [];
  /** "network channel" → the entry that maps it. */
  const seen = new Map<string, string>();
  for (const raw of value.split(",").map((s) => s.trim()).filter((s) => s !== "")) {
    const parts = raw.split("=");
    const left = parts[0]?.trim() ?? "";
    const right = parts[1]?.trim().toLowerCase() ?? "";
    const problem = parts.length !== 2
      ? "expected one '='"
      : !(MM_ID.test(left) || /^[^/\s]+\/[^/\s]+$/.test(left) || (team && /^[^/\s]+$/.test(left)))
      ? `"${left}" is neither team/channel nor a 26-character channel id${team ? " nor a channel name" : ""}`
      : !BARE_JID.test(right)
      ? `"${right}" is not a room JID like room@conference.example.org`
      : undefined;
    if (problem) {
      errors.push(
        `BRIDGE_MAPPINGS entry "${raw}" does not parse: ${problem}. ` +
          "Use team/channel=room@service or channelId=room@service, comma-separated",
      );
      continue;
    }
    // The same channel or room twice would fight over it: each side of a mapping belongs to one mapping only.
    const channel = (left.includes("/") || MM_ID.test(left) ? left : `${team}/${left}`).toLowerCase();
    const clash = seen.get(`mattermost ${channel}`) ?? seen.get(`xmpp ${right}`);
    if (clash) {
      const what = seen.get(`mattermost ${channel}`) ? `channel ${channel}` : `room ${right}`;
      errors.push(
        `BRIDGE_MAPPINGS entries "${clash}" and "${raw}" both map ${what}: a channel and a room can each be in ` +
          "one mapping only; keep one of the entries",
      );
      continue;
    }
    seen.set(`mattermost ${channel}`, raw);
    seen.set(`xmpp ${right}`, raw);
    out.push({ mattermost: left, xmpp: right });
  }
  return out;
}

/**
 * `--help` text listing every variable of the schema, and the `_FILE` form of each secret. `command` is how the
 * user runs mmxmpp (see cli/command.ts).
 */
export function helpText(version: string, command = "mmxmpp"): string {
  const vars = documentedVariables();
  const width = Math.max(...vars.map((v) => v.name.length));
  return [
    `mmxmpp ${version}: a bridge between Mattermost channels and XMPP multi-user chat rooms`,
    "",
    `Usage: ${command} [--help] [--version] [--check-config] [--doctor [doctor flags]]`,
    `       ${command} mappings list|unmap CHANNEL_OR_ROOM [--kv PATH]`,
    "",
    "  --help           show this text",
    "  --version        print the version",
    "  --check-config   validate the environment, print the effective config (secrets masked) and exit",
    `  --doctor         diagnose the deployment (${command} --doctor --help for its flags)`,
    `  mappings         list or remove mappings in the state file, offline (${command} mappings --help)`,
    "",
    "Environment (an empty variable takes its default; each secret X may instead be read from the file named by",
    "X_FILE):",
    ...vars.map((v) => `  ${v.name.padEnd(width)}  ${v.doc} [default: ${v.default}]`),
    "",
    "Exit codes: 0 clean stop, 1 runtime failure, 2 bad configuration, 3 credentials refused (MM_TOKEN, " +
    "XMPP_PASSWORD). A server that cannot be reached at start is retried, not an exit.",
  ].join("\n");
}
