/**
 * The one schema of mmxmpp's environment variables: per variable its documentation, default, whether it is a
 * secret, and how its text becomes a value. `--help`, the README table, `scripts/mmxmpp.env.example`, the masked
 * `--check-config` output, log redaction and the doctor's masking are all derived from it.
 *
 * A secret `X` can also be given as a file named by `X_FILE`; either way its value is recorded as a secret.
 *
 * @module
 */

/** How a parser reports a bad value, and reads a file a value names. */
export interface ParseContext {
  /** Records one problem; the message names the variable and says what is expected. */
  problem(message: string): void;
  /** Records a warning: the value was accepted, but differs from what was given or is risky. */
  warn(message: string): void;
  readFile(path: string): string;
}

/** Where a variable is shown in the example environment file. */
export type Section = "Mattermost" | "XMPP" | "Bridge" | "Ghosts" | "Logging";

/** One environment variable. */
export interface Setting<T = unknown> {
  /** One line for `--help` and the README table. */
  doc: string;
  /** More text for the example environment file. */
  notes?: string;
  section: Section;
  /** Unset means a configuration error. */
  required?: boolean;
  /** The text used when the variable is unset or empty; parsed like a given value. */
  default?: string;
  /** How the default is described when it is computed from other settings (or absent: "none"). */
  defaultDoc?: string;
  /** A value shown in the example environment file. */
  example?: string;
  /** Never printed or logged; can be read from the file named by `${name}_FILE`. */
  secret?: boolean;
  /** Keep leading and trailing spaces (passwords, name templates); other values are trimmed. */
  keepSpaces?: boolean;
  /** Turns the (non-empty) text into a value; reports problems through `ctx` without quoting a secret. */
  parse(text: string, name: string, ctx: ParseContext): T;
}

/** Mattermost ids are 26 lowercase letters and digits. */
export const MM_ID = /^[a-z0-9]{26}$/;
/** local@domain; a ':' in the domain would be a port, which belongs in XMPP_SERVICE. */
export const BARE_JID = /^[^@/\s"&'<>:]+@[^@/\s:]+$/;

const text = (value: string) => value;

/**
 * An http(s) base URL. Each way it can be wrong gets its own message; a Mattermost URL given with its API path
 * (`…/api/v4`) is cut back to the base URL with a warning: nothing else can be meant, and the bridge adds the path.
 */
function httpUrl(value: string, name: string, ctx: ParseContext): string | undefined {
  let u: URL;
  try {
    u = new URL(value);
  } catch {
    ctx.problem(
      URL.canParse(`https://${value}`)
        ? `${name} "${value}" has no scheme: use https://${value} (or http:// for a server without TLS)`
        : `${name} "${value}" is not a URL: expected e.g. https://chat.example.org`,
    );
    return undefined;
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") {
    // "host:port" parses as a URL whose scheme is the host.
    ctx.problem(
      /^[a-z0-9.-]+:\d+(\/|$)/i.test(value)
        ? `${name} "${value}" has no scheme: use https://${value} (or http:// for a server without TLS)`
        : `${name} "${value}" is not an http(s) URL: expected e.g. https://chat.example.org`,
    );
    return undefined;
  }
  if (u.username || u.password) {
    // Not quoted: the credentials may be a secret.
    ctx.problem(
      `${name} must not contain credentials (user:password@): ` +
        (name === "MM_URL" ? "put the token in MM_TOKEN" : "remove them"),
    );
    return undefined;
  }
  if (u.search || u.hash || /[?#]/.test(value)) {
    // The query is not quoted: it may hold a token.
    const cut = `${u.origin}${u.pathname}`.replace(/\/+$/, "");
    ctx.problem(
      `${name} must not carry a query string or fragment: remove ${value.includes("?") ? "?…" : "#…"} ` +
        `(use ${cut})`,
    );
    return undefined;
  }
  const base = u.toString().replace(/\/+$/, "");
  if (name === "MM_URL" && /\/api\/v4$/i.test(base)) {
    const cut = base.replace(/\/api\/v4$/i, "");
    ctx.warn(
      `${name} "${value}" ends in /api/v4: using ${cut}; set ${name}=${cut} (the bridge adds /api/v4 itself)`,
    );
    return cut;
  }
  return base;
}

/**
 * A comma-separated list of HTTP hosts (`name` or `name:port`, IPv6 in brackets), lowercased; each is checked by
 * parsing it as the host of a URL.
 */
function hostList(value: string, name: string, ctx: ParseContext): string[] | undefined {
  const hosts: string[] = [];
  for (const given of value.split(",").map((h) => h.trim().toLowerCase()).filter((h) => h !== "")) {
    // As URL.host gives it, which is what a download's address is compared with (":80" dropped).
    const host = URL.canParse(`http://${given}/`) ? new URL(`http://${given}/`).host : "";
    if (host === "" || host !== given.replace(/:80$/, "")) {
      ctx.problem(
        `${name}: "${given}" is not a host: expected a host name or address, with a port if not 80, e.g. ` +
          "files.example.org or 127.0.0.1:5280",
      );
      return undefined;
    }
    hosts.push(host);
  }
  return hosts;
}

/** A duration such as `90s`, `30m`, `24h` or `2d` (a number alone is seconds), in milliseconds. */
function duration(value: string, name: string, ctx: ParseContext): number | undefined {
  const m = /^(\d+(?:\.\d+)?)\s*(s|m|h|d)?$/i.exec(value);
  const ms = m
    ? Number(m[1]) * { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 }[
      (m[2] ?? "s").toLowerCase() as "s" | "m" | "h" | "d"
    ]
    : NaN;
  if (!Number.isFinite(ms) || ms <= 0) {
    ctx.problem(
      `${name} "${value}" is not a duration: expected e.g. 90m, 24h or 2d (a number alone is seconds)`,
    );
    return undefined;
  }
  return ms;
}

function bool(value: string, name: string, ctx: ParseContext): boolean | undefined {
  const v = value.toLowerCase();
  if (["true", "1", "yes", "on"].includes(v)) return true;
  if (["false", "0", "no", "off"].includes(v)) return false;
  ctx.problem(`${name} "${value}" is not a boolean: expected true or false`);
  return undefined;
}

/** A parser accepting one of `allowed` (any case), and `aliases` for some of them. */
function oneOf<T extends string>(allowed: readonly T[], aliases: Record<string, NoInfer<T>> = {}) {
  return (value: string, name: string, ctx: ParseContext): T | undefined => {
    const v = value.toLowerCase();
    if ((allowed as readonly string[]).includes(v)) return v as T;
    if (Object.hasOwn(aliases, v)) return aliases[v];
    ctx.problem(`${name} "${value}" is not valid: expected one of ${allowed.join(", ")}`);
    return undefined;
  };
}

function xmppServiceUrl(value: string, name: string, ctx: ParseContext): string | undefined {
  try {
    const u = new URL(value);
    if (u.protocol !== "xmpp:" && u.protocol !== "xmpps:") throw new Error("scheme");
    if (!u.hostname) throw new Error("host");
    const port = u.port || (u.protocol === "xmpps:" ? "5223" : "5222");
    return `${u.protocol}//${u.hostname}:${port}`;
  } catch {
    ctx.problem(
      `${name} "${value}" is not valid: expected xmpp://host:port (STARTTLS) or xmpps://host:port (direct TLS)`,
    );
    return undefined;
  }
}

/** Checks an `xmpp://host:port` URL (the component port; no TLS, no default port). */
function componentServiceUrl(value: string, name: string, ctx: ParseContext): string | undefined {
  try {
    const u = new URL(value);
    if (u.protocol !== "xmpp:" || !u.hostname || !u.port) throw new Error("shape");
    return value;
  } catch {
    ctx.problem(`${name} "${value}" is not valid: expected xmpp://host:port`);
    return undefined;
  }
}

function bareJid(value: string, name: string, ctx: ParseContext) {
  if (!BARE_JID.test(value)) {
    ctx.problem(`${name} "${value}" is not a bare JID: expected local@domain, e.g. bridge@example.org`);
    return undefined;
  }
  const [local, domain] = value.split("@");
  return { jid: value, local, domain: domain.toLowerCase() };
}

function httpAddr(value: string, name: string, ctx: ParseContext) {
  const m = /^(?:\[([^\]]+)\]|([^:\s]+)):(\d{1,5})$/.exec(value);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) {
    ctx.problem(`${name} "${value}" is not valid: expected host:port, e.g. 127.0.0.1:8786 or [::1]:8786`);
    return undefined;
  }
  return { hostname: m[1] ?? m[2], port };
}

function caFile(path: string, name: string, ctx: ParseContext) {
  let pem: string;
  try {
    pem = ctx.readFile(path);
  } catch (err) {
    ctx.problem(`${name}: cannot read ${path} (${err instanceof Error ? err.name : "error"})`);
    return undefined;
  }
  if (!pem.includes("BEGIN CERTIFICATE")) {
    ctx.problem(`${name}: ${path} holds no PEM certificate ("-----BEGIN CERTIFICATE-----")`);
    return undefined;
  }
  return { path, pem };
}

function token(value: string, name: string, ctx: ParseContext): string | undefined {
  if (!/\s/.test(value)) return value;
  ctx.problem(`${name} contains whitespace: paste the token alone`);
  return undefined;
}

/** Builds a typed setting (keeps each parser's result type for {@link SettingValues}). */
function setting<T>(s: Setting<T>): Setting<T> {
  return s;
}

/** Every variable the bridge reads, in the order `--help`, the README and the example file show them. */
export const SETTINGS = {
  MM_URL: setting({
    section: "Mattermost",
    doc: "Mattermost base URL, e.g. https://chat.example.org",
    notes:
      "With the scheme; no query, no credentials. A trailing /api/v4 is cut (with a warning). Behind a private " +
      "CA, point DENO_CERT at its PEM file.",
    required: true,
    example: "https://chat.example.org",
    parse: httpUrl,
  }),
  MM_TOKEN: setting({
    section: "Mattermost",
    doc: "bot or personal access token",
    required: true,
    secret: true,
    parse: token,
  }),
  MM_TEAM: setting({
    section: "Mattermost",
    doc: "team used to resolve channel names in mappings",
    notes:
      "A bare `channel=room@service` in BRIDGE_MAPPINGS is looked up in it. Required with BRIDGE_PUBLIC_URL, since " +
      "the slash command is registered in a team.",
    example: "myteam",
    parse: text,
  }),
  MM_COMMAND_TOKEN: setting({
    section: "Mattermost",
    doc: "token of a /xmppbridge command created by hand (not needed with BRIDGE_PUBLIC_URL)",
    secret: true,
    parse: token,
  }),
  MM_ADMIN_TOKEN: setting({
    section: "Mattermost",
    doc: "a system admin's personal access token, which BRIDGE_MM_PUPPETS needs to make the puppets",
    notes:
      "Creates the puppets, their access tokens and their team and channel memberships, and deactivates them " +
      "(/xmppbridge puppet-cleanup). Not used for anything else.",
    secret: true,
    parse: token,
  }),
  XMPP_JID: setting({
    section: "XMPP",
    doc: "the bridge's XMPP account, e.g. bridge@example.org",
    notes: "A bare JID, local@domain.",
    required: true,
    example: "bridge@example.org",
    parse: bareJid,
  }),
  XMPP_PASSWORD: setting({
    section: "XMPP",
    doc: "its password",
    required: true,
    secret: true,
    keepSpaces: true,
    parse: text,
  }),
  XMPP_SERVICE: setting({
    section: "XMPP",
    doc: "xmpp://host:port (STARTTLS) or xmpps://host:port (direct TLS)",
    defaultDoc: "found by DNS SRV for the JID's domain, else xmpp://<JID domain>:5222",
    notes:
      "Unset, the bridge looks up _xmpps-client._tcp and _xmpp-client._tcp SRV records at start (RFC 6120).",
    example: "xmpp://xmpp.example.org:5222",
    parse: xmppServiceUrl,
  }),
  XMPP_RESOURCE: setting({
    section: "XMPP",
    doc: "resource",
    default: "mattermost-bridge",
    parse: text,
  }),
  XMPP_MUC_NICK: setting({
    section: "XMPP",
    doc: "the bridge's nick in rooms",
    notes: "Another is chosen on a conflict.",
    defaultDoc: "JID localpart",
    example: "mattermost",
    parse: text,
  }),
  XMPP_TLS_INSECURE_SKIP_VERIFY: setting({
    section: "XMPP",
    doc: "true skips certificate checks for the XMPP connection only (warns)",
    notes: "Prefer XMPP_CA_FILE.",
    default: "false",
    parse: bool,
  }),
  XMPP_ALLOW_UNENCRYPTED: setting({
    section: "XMPP",
    doc: "true lets the bridge log in over a stream the server offers no TLS for (SCRAM only, never PLAIN)",
    notes:
      "Only for a server on a trusted network (e.g. loopback): anyone on the path can read every message.",
    default: "false",
    parse: bool,
  }),
  XMPP_CA_FILE: setting({
    section: "XMPP",
    doc: "extra CA certificate (PEM) to trust for XMPP",
    notes:
      "E.g. for a private CA. It must be readable by the service: /etc is readable, the home directories are not " +
      "(ProtectHome).",
    example: "/etc/mmxmpp/xmpp-ca.pem",
    parse: caFile,
  }),
  BRIDGE_MAPPINGS: setting({
    section: "Bridge",
    doc: "static mappings, comma-separated team/channel=room@service or channelId=room@service",
    notes:
      "Applied at every start; channel=room@service works with MM_TEAM. Mappings made with /xmppbridge map are " +
      "stored in the KV file and need no entry here.",
    example: "myteam/town-square=lobby@conference.example.org,myteam/dev=dev@conference.example.org",
    // Checked in loadConfig, where MM_TEAM is known.
    parse: text,
  }),
  BRIDGE_CREATE_ROOMS: setting({
    section: "Bridge",
    doc: "true: a static mapping may create its missing XMPP room (else the start reports it)",
    notes: "Off by default, so that a typo in BRIDGE_MAPPINGS is reported instead of creating a room.",
    default: "false",
    parse: bool,
  }),
  BRIDGE_CATCHUP_MAX_AGE: setting({
    section: "Bridge",
    doc: "how far back posts made while the bridge was down are caught up at start (e.g. 90m, 24h, 2d)",
    notes: "Older ones are counted in a warning, not bridged. A number alone is seconds.",
    default: "24h",
    parse: duration,
  }),
  BRIDGE_FILE_FETCH_HOSTS: setting({
    section: "Bridge",
    doc: "hosts (name or name:port, comma-separated) files may be downloaded from over plain http",
    notes:
      "https downloads are always allowed. Unset: the hosts of the XMPP server's upload service (XEP-0363).",
    defaultDoc: "the XMPP upload service's hosts",
    example: "files.example.org,127.0.0.1:5280",
    parse: hostList,
  }),
  BRIDGE_KV_PATH: setting({
    section: "Bridge",
    doc: "Deno KV state file (created 0600, with its -wal and -shm)",
    notes: "With the systemd unit, $STATE_DIRECTORY is /var/lib/mmxmpp, the only writable place it has.",
    defaultDoc: "$STATE_DIRECTORY/mmxmpp.kv under systemd, else ./data/mmxmpp.kv",
    example: "/var/lib/mmxmpp/mmxmpp.kv",
    parse: text,
  }),
  BRIDGE_HTTP_ADDR: setting({
    section: "Bridge",
    doc: "listen address for the command callback",
    notes: "Also serves /healthz and /metrics.",
    default: "127.0.0.1:8786",
    parse: httpAddr,
  }),
  BRIDGE_PUBLIC_URL: setting({
    section: "Bridge",
    doc: "URL Mattermost uses to reach that listener; when set, the bridge registers /xmppbridge itself",
    notes:
      "Needs MM_TEAM. For a private address, list it in Mattermost's AllowedUntrustedInternalConnections. " +
      "Without it no command is registered.",
    example: "http://127.0.0.1:8786",
    parse: httpUrl,
  }),
  BRIDGE_XMPP_NAME_FORMAT: setting({
    section: "Bridge",
    doc: "how an XMPP user is named on Mattermost",
    notes: "{nick} is the room nickname.",
    default: "{nick} (xmpp)",
    keepSpaces: true,
    parse: text,
  }),
  BRIDGE_MM_NAME_FORMAT: setting({
    section: "Bridge",
    doc: "prefix for Mattermost users' text on XMPP ({username}, {displayname})",
    notes: "Keep the quotes to keep the trailing space.",
    default: "<{username}> ",
    keepSpaces: true,
    parse: text,
  }),
  BRIDGE_MM_DISPLAY: setting({
    section: "Bridge",
    doc: "override (props.override_username) or prefix (bold name in the text)",
    notes:
      'override needs "Enable integrations to override usernames"; prefix is for servers that forbid overrides.',
    default: "override",
    parse: oneOf(["override", "prefix"] as const),
  }),
  BRIDGE_ALLOW_CHANNEL_MENTIONS: setting({
    section: "Bridge",
    doc: "true lets @channel, @all and @here from XMPP notify the whole Mattermost channel",
    notes: "By default an invisible word joiner after the @ keeps them readable but not notifying.",
    default: "false",
    parse: bool,
  }),
  BRIDGE_GHOST_MODE: setting({
    section: "Ghosts",
    doc: "relay (the bridge speaks for everyone), ibr (an XMPP account per Mattermost user) or component",
    notes: "ibr registers the accounts in-band (XEP-0077); component uses XMPP_COMPONENT_* (XEP-0114).",
    default: "relay",
    parse: oneOf(["relay", "ibr", "component"] as const),
  }),
  BRIDGE_GHOST_PREFIX: setting({
    section: "Ghosts",
    doc: "localpart prefix of ghost accounts (ibr)",
    notes: "Ghost JIDs are {BRIDGE_GHOST_PREFIX}{username}@{BRIDGE_GHOST_DOMAIN}.",
    default: "mm_",
    parse: (value, name, ctx) => {
      if (!/[\s"&'/:<>@]/.test(value)) return value;
      ctx.problem(`${name} "${value}" has a character a JID localpart cannot hold`);
      return undefined;
    },
  }),
  BRIDGE_GHOST_DOMAIN: setting({
    section: "Ghosts",
    doc: "domain ghost accounts are registered on (ibr)",
    defaultDoc: "XMPP_JID's domain",
    example: "example.org",
    parse: (value) => value.toLowerCase(),
  }),
  BRIDGE_GHOST_NICK_FORMAT: setting({
    section: "Ghosts",
    doc: "a ghost's nick in rooms ({username}, {displayname})",
    default: "{username}",
    parse: text,
  }),
  BRIDGE_GHOST_IDLE_MINUTES: setting({
    section: "Ghosts",
    doc: "disconnect an idle ghost after this many minutes (ibr)",
    default: "30",
    parse: (value, name, ctx) => {
      const minutes = Number(value);
      if (Number.isFinite(minutes) && minutes > 0) return minutes;
      ctx.problem(`${name} "${value}" is not valid: expected a positive number of minutes`);
      return undefined;
    },
  }),
  BRIDGE_GHOST_CLEANUP: setting({
    section: "Ghosts",
    doc: "cancel a ghost's registration when its Mattermost user is deactivated (ibr)",
    default: "true",
    parse: bool,
  }),
  BRIDGE_MM_PUPPETS: setting({
    section: "Ghosts",
    doc: "true: each XMPP user in a mapped room becomes a Mattermost user (a puppet; needs MM_ADMIN_TOKEN)",
    notes:
      "The puppets post, edit, delete and react as themselves with a personal access token each. Where the " +
      "server has personal access tokens off (EnableUserAccessTokens), the bridge says so and posts as the bot.",
    default: "false",
    parse: bool,
  }),
  BRIDGE_MM_PUPPET_PREFIX: setting({
    section: "Ghosts",
    doc: "username prefix of the Mattermost puppets of XMPP users",
    notes: "Puppet usernames are {BRIDGE_MM_PUPPET_PREFIX}{localpart or nick}, made valid for Mattermost.",
    default: "xmpp-",
    parse: (value, name, ctx) => {
      const prefix = value.toLowerCase();
      if (/^[a-z][a-z0-9._-]{0,31}$/.test(prefix)) return prefix;
      ctx.problem(
        `${name} "${value}" is not valid: expected up to 32 of a-z, 0-9, '.', '-' and '_', starting with a ` +
          "letter (Mattermost usernames)",
      );
      return undefined;
    },
  }),
  BRIDGE_NODE_ID: setting({
    section: "Ghosts",
    doc: "instance id used in ghost resources",
    notes: "Set it when several instances share a host name and a state path.",
    defaultDoc: "derived from the host name",
    example: "bridge-1",
    parse: (value, name, ctx) => {
      if (/^[A-Za-z0-9._-]{1,64}$/.test(value)) return value;
      ctx.problem(`${name} "${value}" is not valid: expected up to 64 letters, digits, '.', '_' or '-'`);
      return undefined;
    },
  }),
  BRIDGE_SECRET_KEY: setting({
    section: "Ghosts",
    doc: "key that encrypts stored ghost passwords (AES-GCM); keep it with your backups",
    defaultDoc: "none (stored unencrypted)",
    secret: true,
    keepSpaces: true,
    parse: (value, name, ctx) => {
      if (value.length >= 16) return value;
      ctx.problem(`${name} is too short: use at least 16 characters (e.g. openssl rand -base64 32)`);
      return undefined;
    },
  }),
  XMPP_COMPONENT_JID: setting({
    section: "Ghosts",
    doc: "component domain for puppets, e.g. mattermost.example.org",
    example: "mattermost.example.org",
    parse: (value, name, ctx) => {
      const domain = value.toLowerCase();
      if (/^[^@/\s:]+\.[^@/\s:]+$|^[^@/\s:.]+$/.test(domain)) return domain;
      ctx.problem(`${name} "${domain}" is not a domain like mattermost.example.org`);
      return undefined;
    },
  }),
  XMPP_COMPONENT_SECRET: setting({
    section: "Ghosts",
    doc: "the component's shared secret",
    secret: true,
    keepSpaces: true,
    parse: text,
  }),
  XMPP_COMPONENT_SERVICE: setting({
    section: "Ghosts",
    doc: "xmpp://host:port of the component port",
    defaultDoc: "xmpp://<XMPP_SERVICE host>:5347",
    example: "xmpp://xmpp.example.org:5347",
    parse: componentServiceUrl,
  }),
  LOG_LEVEL: setting({
    section: "Logging",
    doc: "debug, info, warn (or warning) or error",
    notes: "Message text is logged only at debug.",
    default: "info",
    parse: oneOf(["debug", "info", "warn", "error"] as const, { warning: "warn" }),
  }),
  LOG_FORMAT: setting({
    section: "Logging",
    doc: "json or pretty",
    notes: "json under systemd; read it with journalctl -u mmxmpp.",
    defaultDoc: "pretty on a TTY, else json",
    example: "json",
    parse: oneOf(["json", "pretty"] as const),
  }),
} as const;

/** The name of a variable in {@link SETTINGS}. */
export type SettingName = keyof typeof SETTINGS;

/** Each variable's parsed value; undefined when it is unset (and has no default) or invalid. */
export type SettingValues = {
  [K in SettingName]: ReturnType<(typeof SETTINGS)[K]["parse"]> | undefined;
};

/** A variable as documented: every setting, and after each secret its `_FILE` form. */
export interface DocumentedVariable {
  name: string;
  doc: string;
  /** The default as people read it: "required", the default text, or a description. */
  default: string;
}

/** Every setting with its name, in schema order. */
export function settingList(): Array<Setting & { name: SettingName }> {
  return (Object.keys(SETTINGS) as SettingName[]).map((name) => ({ name, ...SETTINGS[name] as Setting }));
}

/** The names of the secret settings (not their `_FILE` forms). */
export function secretNames(): SettingName[] {
  return settingList().filter((s) => s.secret).map((s) => s.name);
}

/** Every variable to document, in order: settings, each secret followed by its `_FILE` form. */
export function documentedVariables(): DocumentedVariable[] {
  return settingList().flatMap((s) => {
    const own: DocumentedVariable = {
      name: s.name,
      doc: s.doc,
      default: s.required ? "required" : s.default ?? s.defaultDoc ?? "none",
    };
    if (!s.secret) return [own];
    return [own, {
      name: `${s.name}_FILE`,
      doc: `file holding ${s.name} (instead of ${s.name})`,
      default: "none",
    }];
  });
}

/** The values of the secret variables given directly in `env` (not read from files), for masking. */
export function secretsIn(env: Record<string, string | undefined>): string[] {
  return secretNames().flatMap((name) => {
    const value = env[name];
    return value === undefined || value.trim() === "" ? [] : [value, value.trim()];
  });
}

/** What {@link readSettings} found. */
export interface SettingsRead {
  values: SettingValues;
  errors: string[];
  warnings: string[];
  /** The values of every secret read, from the variable or from its file, even when invalid. */
  secrets: string[];
}

/** Prefixes of the variables mmxmpp owns: an unknown one of these is most likely a typo. */
const OWN_PREFIXES = ["MM_", "XMPP_", "BRIDGE_"];

/**
 * Reads every setting from `env`. An unset, empty or blank variable takes its default. A secret may come from the
 * file named by `X_FILE` (not both); its value is recorded in `secrets` before any check, so that whatever is
 * read can be masked. No message quotes a secret.
 *
 * @example
 * ```ts
 * const { values, errors } = readSettings({ LOG_LEVEL: "warning" }, Deno.readTextFileSync);
 * values.LOG_LEVEL; // "warn"
 * ```
 */
export function readSettings(
  env: Record<string, string | undefined>,
  readFile: (path: string) => string,
): SettingsRead {
  const errors: string[] = [];
  const warnings: string[] = [];
  const secrets: string[] = [];
  const ctx: ParseContext = { problem: (m) => errors.push(m), warn: (m) => warnings.push(m), readFile };
  const values: Record<string, unknown> = {};
  for (const s of settingList()) {
    const raw = s.secret ? readSecret(env, s, readFile, errors, secrets) : given(env[s.name], s.keepSpaces);
    if (raw === null) continue; // already reported
    const value = raw ?? s.default;
    if (value === undefined) {
      if (s.required) errors.push(requiredMessage(s.name));
      continue;
    }
    values[s.name] = s.parse(value, s.name, ctx);
  }
  warnings.push(...unknownVariables(env));
  return { values: values as SettingValues, errors, warnings, secrets };
}

/** The error for a required variable that is missing. */
export function requiredMessage(name: SettingName): string {
  const s = SETTINGS[name] as Setting;
  if (s.secret) return `${name} is required (or ${name}_FILE naming a file that holds it)`;
  return s.example ? `${name} is required, e.g. ${s.example}` : `${name} is required`;
}

/** The text of a variable, or undefined when it is unset, empty or blank. */
function given(value: string | undefined, keepSpaces?: boolean): string | undefined {
  if (value === undefined || value.trim() === "") return undefined;
  return keepSpaces ? value : value.trim();
}

/** A secret's text from `X` or `X_FILE`; null when that failed (and was reported). */
function readSecret(
  env: Record<string, string | undefined>,
  s: Setting & { name: string },
  readFile: (path: string) => string,
  errors: string[],
  secrets: string[],
): string | undefined | null {
  const direct = given(env[s.name], s.keepSpaces);
  const file = given(env[`${s.name}_FILE`]);
  if (direct !== undefined) secrets.push(direct, env[s.name]!);
  if (direct !== undefined && file !== undefined) {
    errors.push(`${s.name} and ${s.name}_FILE are both set: set only one`);
    return null;
  }
  if (file === undefined) return direct;
  let raw: string;
  try {
    raw = readFile(file);
  } catch (err) {
    errors.push(`${s.name}_FILE: cannot read ${file} (${err instanceof Error ? err.name : "error"})`);
    return null;
  }
  // Editors and `echo` add a final newline. Tokens never hold spaces; passwords may, so only that newline goes.
  const value = s.keepSpaces ? raw.replace(/\r?\n$/, "") : raw.trim();
  secrets.push(raw, value);
  if (value.trim() === "") {
    errors.push(`${s.name}_FILE: ${file} is empty`);
    return null;
  }
  return value;
}

/** Warnings for variables with one of mmxmpp's prefixes that it does not know, each naming the closest known one. */
function unknownVariables(env: Record<string, string | undefined>): string[] {
  const known = documentedVariables().map((v) => v.name);
  return Object.keys(env)
    .filter((name) => OWN_PREFIXES.some((p) => name.startsWith(p)) && !known.includes(name))
    .sort()
    .map((name) => {
      const closest = known.reduce((best, k) => distance(name, k) < distance(name, best) ? k : best);
      return `${name} is not a variable mmxmpp knows (ignored); did you mean ${closest}?`;
    });
}

/** Levenshtein distance between two names. */
function distance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = row;
  }
  return prev[b.length];
}
