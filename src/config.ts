/**
 * Configuration from environment variables: the documented contract, its validation, and a masked view.
 *
 * @module
 */
import { createHash } from "node:crypto";
import type { MappingRefs } from "./core/manager.ts";

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
  };
  xmpp: {
    jid: string;
    password: string;
    /** `xmpp://host:port` (STARTTLS) or `xmpps://host:port` (direct TLS). */
    service: string;
    /** Domain of the JID; the name TLS certificates are checked against. */
    domain: string;
    resource: string;
    mucNick: string;
    tlsInsecureSkipVerify: boolean;
    caFile?: string;
    /** PEM text of `caFile`. */
    ca?: string;
  };
  bridge: {
    mappings: MappingRefs[];
    /** Whether a static mapping may create its XMPP room (`BRIDGE_CREATE_ROOMS`). */
    createRooms: boolean;
    kvPath: string;
    httpAddr: { hostname: string; port: number };
    publicUrl?: string;
    xmppNameFormat: string;
    mmNameFormat: string;
    mmDisplay: "override" | "prefix";
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
}

/** One documented environment variable. */
export interface EnvVar {
  name: string;
  meaning: string;
  default: string;
  secret?: boolean;
}

/** Every variable the bridge reads, in the order `--help` and the README show them. */
export const ENV_VARS: readonly EnvVar[] = [
  { name: "MM_URL", meaning: "Mattermost base URL, e.g. https://chat.example.org", default: "required" },
  { name: "MM_TOKEN", meaning: "bot or personal access token", default: "required", secret: true },
  { name: "MM_TOKEN_FILE", meaning: "file holding MM_TOKEN (instead of MM_TOKEN)", default: "none" },
  { name: "MM_TEAM", meaning: "team used to resolve channel names in mappings", default: "none" },
  {
    name: "MM_COMMAND_TOKEN",
    meaning: "token of a /xmppbridge command created by hand (not needed with BRIDGE_PUBLIC_URL)",
    default: "none",
    secret: true,
  },
  { name: "XMPP_JID", meaning: "the bridge's XMPP account, e.g. bridge@example.org", default: "required" },
  { name: "XMPP_PASSWORD", meaning: "its password", default: "required", secret: true },
  { name: "XMPP_PASSWORD_FILE", meaning: "file holding XMPP_PASSWORD", default: "none" },
  {
    name: "XMPP_SERVICE",
    meaning: "xmpp://host:port (STARTTLS) or xmpps://host:port (direct TLS)",
    default: "xmpp://<JID domain>:5222",
  },
  { name: "XMPP_RESOURCE", meaning: "resource", default: "mattermost-bridge" },
  { name: "XMPP_MUC_NICK", meaning: "the bridge's nick in rooms", default: "JID localpart" },
  {
    name: "XMPP_TLS_INSECURE_SKIP_VERIFY",
    meaning: "true skips certificate checks for the XMPP connection only (warns)",
    default: "false",
  },
  { name: "XMPP_CA_FILE", meaning: "extra CA certificate (PEM) to trust for XMPP", default: "none" },
  {
    name: "BRIDGE_MAPPINGS",
    meaning: "static mappings, comma-separated team/channel=room@service or channelId=room@service",
    default: "none",
  },
  {
    name: "BRIDGE_CREATE_ROOMS",
    meaning: "true: a static mapping may create its missing XMPP room (else the start reports it)",
    default: "false",
  },
  {
    name: "BRIDGE_KV_PATH",
    meaning: "Deno KV state file",
    default: "$STATE_DIRECTORY/mmxmpp.kv under systemd, else ./data/mmxmpp.kv",
  },
  { name: "BRIDGE_HTTP_ADDR", meaning: "listen address for the command callback", default: "127.0.0.1:8786" },
  {
    name: "BRIDGE_PUBLIC_URL",
    meaning: "URL Mattermost uses to reach that listener; when set, the bridge registers /xmppbridge itself",
    default: "none",
  },
  {
    name: "BRIDGE_XMPP_NAME_FORMAT",
    meaning: "how an XMPP user is named on Mattermost",
    default: "{nick} (xmpp)",
  },
  {
    name: "BRIDGE_MM_NAME_FORMAT",
    meaning: "prefix for Mattermost users' text on XMPP ({username}, {displayname})",
    default: "<{username}> ",
  },
  {
    name: "BRIDGE_MM_DISPLAY",
    meaning: "override (props.override_username) or prefix (bold name in the text)",
    default: "override",
  },
  {
    name: "BRIDGE_GHOST_MODE",
    meaning: "relay (the bridge speaks for everyone), ibr (an XMPP account per Mattermost user) or component",
    default: "relay",
  },
  { name: "BRIDGE_GHOST_PREFIX", meaning: "localpart prefix of ghost accounts (ibr)", default: "mm_" },
  {
    name: "BRIDGE_GHOST_DOMAIN",
    meaning: "domain ghost accounts are registered on (ibr)",
    default: "XMPP_JID's domain",
  },
  {
    name: "BRIDGE_GHOST_NICK_FORMAT",
    meaning: "a ghost's nick in rooms ({username}, {displayname})",
    default: "{username}",
  },
  {
    name: "BRIDGE_GHOST_IDLE_MINUTES",
    meaning: "disconnect an idle ghost after this many minutes (ibr)",
    default: "30",
  },
  {
    name: "BRIDGE_GHOST_CLEANUP",
    meaning: "cancel a ghost's registration when its Mattermost user is deactivated (ibr)",
    default: "true",
  },
  {
    name: "BRIDGE_NODE_ID",
    meaning: "instance id used in ghost resources",
    default: "derived from the host name",
  },
  {
    name: "BRIDGE_SECRET_KEY",
    meaning: "key that encrypts stored ghost passwords (AES-GCM); keep it with your backups",
    default: "none (stored unencrypted)",
    secret: true,
  },
  {
    name: "XMPP_COMPONENT_JID",
    meaning: "component domain for puppets, e.g. mattermost.example.org",
    default: "none",
  },
  { name: "XMPP_COMPONENT_SECRET", meaning: "the component's shared secret", default: "none", secret: true },
  {
    name: "XMPP_COMPONENT_SERVICE",
    meaning: "xmpp://host:port of the component port",
    default: "xmpp://<XMPP_SERVICE host>:5347",
  },
  { name: "LOG_LEVEL", meaning: "debug, info, warn or error", default: "info" },
  { name: "LOG_FORMAT", meaning: "json or pretty", default: "pretty on a TTY, else json" },
];

/** Result of {@link loadConfig}: either a config or one line per problem. */
export type ConfigResult =
  | { ok: true; config: Config; warnings: string[] }
  | { ok: false; errors: string[] };

/** How the loader reads `_FILE` secrets; tests substitute it. */
export type ReadFile = (path: string) => string;

/** Mattermost ids are 26 lowercase letters and digits. */
const MM_ID = /^[a-z0-9]{26}$/;
/** local@domain; a ':' in the domain would be a port, which belongs in XMPP_SERVICE. */
const BARE_JID = /^[^@/\s"&'<>:]+@[^@/\s:]+$/;

/**
 * Reads and validates the configuration from `env`. Collects every problem instead of stopping at the first, and
 * never puts a secret's value in a message.
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
  const errors: string[] = [];
  const warnings: string[] = [];
  const get = (name: string): string | undefined => {
    const v = env[name]?.trim();
    return v === undefined || v === "" ? undefined : v;
  };
  const secret = (name: string, required: boolean): string | undefined => {
    const direct = env[name]?.trim() ? env[name] : undefined;
    const file = get(`${name}_FILE`);
    if (direct && file) {
      errors.push(`${name} and ${name}_FILE are both set: set only one`);
      return undefined;
    }
    if (file) {
      try {
        // Editors and `echo` add a final newline. Tokens never hold spaces; passwords may, so only that goes.
        const raw = readFile(file);
        const value = name.endsWith("TOKEN") ? raw.trim() : raw.replace(/\r?\n$/, "");
        if (!value.trim()) {
          errors.push(`${name}_FILE: ${file} is empty`);
          return undefined;
        }
        return value;
      } catch (err) {
        errors.push(`${name}_FILE: cannot read ${file} (${err instanceof Error ? err.name : "error"})`);
        return undefined;
      }
    }
    if (direct) return direct;
    if (required) errors.push(`${name} is required (or ${name}_FILE naming a file that holds it)`);
    return undefined;
  };

  // Mattermost
  const mmUrl = parseHttpUrl("MM_URL", get("MM_URL"), errors, true);
  const mmToken = secret("MM_TOKEN", true);
  if (mmToken && /\s/.test(mmToken)) errors.push("MM_TOKEN contains whitespace: paste the token alone");
  const team = get("MM_TEAM");
  const commandToken = secret("MM_COMMAND_TOKEN", false);

  // XMPP
  const jid = get("XMPP_JID");
  let domain = "";
  let local = "";
  if (!jid) errors.push("XMPP_JID is required, e.g. bridge@example.org");
  else if (!BARE_JID.test(jid)) {
    errors.push(`XMPP_JID "${jid}" is not a bare JID: expected local@domain, e.g. bridge@example.org`);
  } else {
    [local, domain] = jid.split("@");
    domain = domain.toLowerCase();
  }
  const password = secret("XMPP_PASSWORD", true);
  let service = get("XMPP_SERVICE") ?? (domain ? `xmpp://${domain}:5222` : "");
  if (get("XMPP_SERVICE")) {
    try {
      const u = new URL(service);
      if (u.protocol !== "xmpp:" && u.protocol !== "xmpps:") throw new Error("scheme");
      if (!u.hostname) throw new Error("host");
      const port = u.port || (u.protocol === "xmpps:" ? "5223" : "5222");
      service = `${u.protocol}//${u.hostname}:${port}`;
    } catch {
      errors.push(
        `XMPP_SERVICE "${service}" is not valid: expected xmpp://host:port (STARTTLS) or xmpps://host:port (direct TLS)`,
      );
    }
  }
  const insecure = parseBool(
    "XMPP_TLS_INSECURE_SKIP_VERIFY",
    get("XMPP_TLS_INSECURE_SKIP_VERIFY"),
    false,
    errors,
  );
  if (insecure) {
    warnings.push("XMPP_TLS_INSECURE_SKIP_VERIFY=true: the XMPP server's certificate is not checked");
  }
  const caFile = get("XMPP_CA_FILE");
  let ca: string | undefined;
  if (caFile) {
    try {
      ca = readFile(caFile);
      if (!ca.includes("BEGIN CERTIFICATE")) {
        errors.push(`XMPP_CA_FILE: ${caFile} holds no PEM certificate ("-----BEGIN CERTIFICATE-----")`);
      }
    } catch (err) {
      errors.push(`XMPP_CA_FILE: cannot read ${caFile} (${err instanceof Error ? err.name : "error"})`);
    }
  }

  // Bridge
  const mappings = parseMappings(get("BRIDGE_MAPPINGS"), team, errors);
  const createRooms = parseBool("BRIDGE_CREATE_ROOMS", get("BRIDGE_CREATE_ROOMS"), false, errors);
  const stateDir = get("STATE_DIRECTORY")?.split(":")[0];
  const kvPath = get("BRIDGE_KV_PATH") ?? (stateDir ? `${stateDir}/mmxmpp.kv` : "./data/mmxmpp.kv");
  const httpAddr = parseAddr(get("BRIDGE_HTTP_ADDR") ?? "127.0.0.1:8786", errors);
  const publicUrl = parseHttpUrl("BRIDGE_PUBLIC_URL", get("BRIDGE_PUBLIC_URL"), errors, false);
  if (publicUrl && !team) {
    errors.push("BRIDGE_PUBLIC_URL needs MM_TEAM: the slash command is registered in a team");
  }
  const mmDisplay = oneOf(
    "BRIDGE_MM_DISPLAY",
    get("BRIDGE_MM_DISPLAY") ?? "override",
    ["override", "prefix"],
    errors,
  );
  const level = oneOf("LOG_LEVEL", get("LOG_LEVEL")?.toLowerCase() ?? "info", [
    "debug",
    "info",
    "warn",
    "error",
  ], errors);
  const format = oneOf("LOG_FORMAT", get("LOG_FORMAT")?.toLowerCase() ?? (isTty ? "pretty" : "json"), [
    "json",
    "pretty",
  ], errors);

  // Ghosts
  const ghostMode = oneOf("BRIDGE_GHOST_MODE", get("BRIDGE_GHOST_MODE")?.toLowerCase() ?? "relay", [
    "relay",
    "ibr",
    "component",
  ], errors) as Config["ghosts"]["mode"];
  const idleText = get("BRIDGE_GHOST_IDLE_MINUTES") ?? "30";
  const idleMinutes = Number(idleText);
  if (!Number.isFinite(idleMinutes) || idleMinutes <= 0) {
    errors.push(
      `BRIDGE_GHOST_IDLE_MINUTES "${idleText}" is not valid: expected a positive number of minutes`,
    );
  }
  const cleanup = parseBool("BRIDGE_GHOST_CLEANUP", get("BRIDGE_GHOST_CLEANUP"), true, errors);
  const ghostPrefix = env.BRIDGE_GHOST_PREFIX ?? "mm_";
  if (/[\s"&'/:<>@]/.test(ghostPrefix)) {
    errors.push(`BRIDGE_GHOST_PREFIX "${ghostPrefix}" has a character a JID localpart cannot hold`);
  }
  const ghostDomain = get("BRIDGE_GHOST_DOMAIN")?.toLowerCase() ?? domain;
  const nodeId = get("BRIDGE_NODE_ID") ?? defaultNodeId(kvPath);
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(nodeId)) {
    errors.push(
      `BRIDGE_NODE_ID "${nodeId}" is not valid: expected up to 64 letters, digits, '.', '_' or '-'`,
    );
  }
  const secretKey = secret("BRIDGE_SECRET_KEY", false);
  if (secretKey !== undefined && secretKey.length < 16) {
    errors.push("BRIDGE_SECRET_KEY is too short: use at least 16 characters (e.g. openssl rand -base64 32)");
  }
  let component: Config["ghosts"]["component"];
  if (ghostMode === "component") {
    const componentJid = get("XMPP_COMPONENT_JID")?.toLowerCase();
    const componentSecret = secret("XMPP_COMPONENT_SECRET", true);
    if (!componentJid) errors.push("XMPP_COMPONENT_JID is required with BRIDGE_GHOST_MODE=component");
    else if (!/^[^@/\s:]+\.[^@/\s:]+$|^[^@/\s:.]+$/.test(componentJid)) {
      errors.push(`XMPP_COMPONENT_JID "${componentJid}" is not a domain like mattermost.example.org`);
    }
    let componentService = get("XMPP_COMPONENT_SERVICE") ?? "";
    if (!componentService && service) {
      try {
        componentService = `xmpp://${new URL(service).hostname}:5347`;
      } catch { /* XMPP_SERVICE is already reported */ }
    }
    try {
      const u = new URL(componentService);
      if (u.protocol !== "xmpp:" || !u.hostname || !u.port) throw new Error("shape");
    } catch {
      errors.push(`XMPP_COMPONENT_SERVICE "${componentService}" is not valid: expected xmpp://host:port`);
    }
    if (componentJid && componentSecret) {
      component = { jid: componentJid, secret: componentSecret, service: componentService };
    }
  }

  if (errors.length > 0) return { ok: false, errors };
  return {
    ok: true,
    warnings,
    config: {
      mattermost: { url: mmUrl!, token: mmToken!, team, commandToken },
      xmpp: {
        jid: jid!,
        password: password!,
        service,
        domain,
        resource: get("XMPP_RESOURCE") ?? "mattermost-bridge",
        mucNick: get("XMPP_MUC_NICK") ?? local,
        tlsInsecureSkipVerify: insecure,
        caFile,
        ca,
      },
      bridge: {
        mappings,
        createRooms,
        kvPath,
        httpAddr,
        publicUrl,
        xmppNameFormat: env.BRIDGE_XMPP_NAME_FORMAT || "{nick} (xmpp)",
        mmNameFormat: env.BRIDGE_MM_NAME_FORMAT ?? "<{username}> ",
        mmDisplay: mmDisplay as Config["bridge"]["mmDisplay"],
      },
      ghosts: {
        mode: ghostMode,
        prefix: ghostPrefix,
        domain: ghostDomain,
        nickFormat: get("BRIDGE_GHOST_NICK_FORMAT") ?? "{username}",
        idleMinutes,
        cleanup,
        nodeId,
        secretKey,
        component,
      },
      log: { level: level as LogLevel, format: format as Config["log"]["format"] },
    },
  };
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

/** The secret values of a config, for log redaction. */
export function secretsOf(config: Config): string[] {
  return [config.mattermost.token, config.xmpp.password, config.mattermost.commandToken].filter((
    s,
  ): s is string => !!s);
}

/** The config as JSON-able data with every secret replaced by `"***"`. */
export function maskedConfig(config: Config): unknown {
  return {
    ...config,
    mattermost: { ...config.mattermost, token: "***", commandToken: config.mattermost.commandToken && "***" },
    xmpp: {
      ...config.xmpp,
      password: "***",
      ca: config.xmpp.ca && `(${config.xmpp.ca.length} bytes of PEM)`,
    },
  };
}

function parseHttpUrl(name: string, value: string | undefined, errors: string[], required: boolean) {
  if (!value) {
    if (required) errors.push(`${name} is required, e.g. https://chat.example.org`);
    return undefined;
  }
  try {
    const u = new URL(value);
    if (u.protocol !== "http:" && u.protocol !== "https:") throw new Error("scheme");
    if (u.search || u.hash) throw new Error("query");
    if (u.username || u.password) throw new Error("credentials");
    return u.toString().replace(/\/+$/, "");
  } catch {
    errors.push(
      `${name} "${value}" is not an http(s) URL: expected e.g. https://chat.example.org (with the scheme)`,
    );
    return undefined;
  }
}

function parseBool(name: string, value: string | undefined, fallback: boolean, errors: string[]): boolean {
  if (value === undefined) return fallback;
  const v = value.toLowerCase();
  if (["true", "1", "yes", "on"].includes(v)) return true;
  if (["false", "0", "no", "off"].includes(v)) return false;
  errors.push(`${name} "${value}" is not a boolean: expected true or false`);
  return fallback;
}

function oneOf(name: string, value: string, allowed: string[], errors: string[]): string {
  if (!allowed.includes(value)) {
    errors.push(`${name} "${value}" is not valid: expected one of ${allowed.join(", ")}`);
  }
  return value;
}

function parseAddr(value: string, errors: string[]): { hostname: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:\s]+)):(\d{1,5})$/.exec(value);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) {
    errors.push(
      `BRIDGE_HTTP_ADDR "${value}" is not valid: expected host:port, e.g. 127.0.0.1:8786 or [::1]:8786`,
    );
    return { hostname: "127.0.0.1", port: 8786 };
  }
  return { hostname: m[1] ?? m[2], port };
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

/** `--help` text listing every variable. */
export function helpText(version: string): string {
  const width = Math.max(...ENV_VARS.map((v) => v.name.length));
  return [
    `mmxmpp ${version}: a bridge between Mattermost channels and XMPP multi-user chat rooms`,
    "",
    "Usage: mmxmpp [--help] [--version] [--check-config] [--doctor [doctor flags]]",
    "",
    "  --help           show this text",
    "  --version        print the version",
    "  --check-config   validate the environment, print the effective config (secrets masked) and exit",
    "  --doctor         diagnose the deployment (mmxmpp --doctor --help for its flags)",
    "",
    "Environment (each secret X may instead be read from the file named by X_FILE):",
    ...ENV_VARS.map((v) => `  ${v.name.padEnd(width)}  ${v.meaning} [default: ${v.default}]`),
    "",
    "Exit codes: 0 clean stop, 1 runtime failure, 2 bad configuration, 3 credentials refused (MM_TOKEN, " +
    "XMPP_PASSWORD). A server that cannot be reached at start is retried, not an exit.",
  ].join("\n");
}
