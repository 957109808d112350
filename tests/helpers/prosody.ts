/**
 * Starts a throwaway Prosody 0.12 on loopback for integration tests.
 *
 * The configuration comes from `scripts/prosody-setup.sh`; see that script for what the server offers
 * (`localhost`, MUC at `conference.localhost`, upload at `upload.localhost`, component `bridge.localhost`).
 * On top of it the MUC service loads a small test module that records join requests and can ignore a request
 * for no history, and {@linkcode ProsodyOptions} can turn off STARTTLS and SCRAM.
 *
 * @module
 */

import { freePort } from "./ports.ts";

/** Options for {@linkcode startProsody}. */
export interface ProsodyOptions {
  /** Seconds between two in-band registrations from one IP; 0 (default) means no limit. */
  registrationThrottleSeconds?: number;
  /** Whether XEP-0077 in-band registration is offered (default true). */
  allowRegistration?: boolean;
  /** Secret of the `bridge.localhost` component (default "component-secret"). */
  componentSecret?: string;
  /** Prosody log level (default: env `PROSODY_LOG_LEVEL`, else "info"). */
  logLevel?: "debug" | "info";
  /** Whether STARTTLS is offered on c2s (default true); false leaves every client stream unencrypted. */
  starttls?: boolean;
  /**
   * SASL mechanisms offered to clients: "default" (SCRAM and PLAIN) or "plain-only" (SCRAM disabled). PLAIN is
   * allowed on unencrypted streams in every case (`allow_unencrypted_plain_auth`).
   */
  saslMechanisms?: "default" | "plain-only";
  /**
   * Make the MUC service send history on join even when the joiner asks for none (`maxstanzas="0"`), as a
   * server that ignores the request would (default false).
   */
  mucIgnoresHistoryLimit?: boolean;
  /**
   * A MUC service as servers without XEP-0421 are (`muc_occupant_id = false`), whose new rooms reveal occupants'
   * real JIDs to everyone (`muc_room_default_public_jids`) (default false: occupant-ids, semi-anonymous rooms).
   */
  mucRealJidsOnly?: boolean;
}

/** A MUC join request as the MUC service received it, recorded by the test module (see {@linkcode Prosody}). */
export interface MucJoinRequest {
  /** Full JID of the joining client. */
  from: string;
  /** `room@service/nick`. */
  to: string;
  /** The request's `<x xmlns="http://jabber.org/protocol/muc">` element, serialized. */
  x: string;
}

/** A running (or killed) Prosody started by {@linkcode startProsody}. */
export interface Prosody {
  /** The virtual host users live on. */
  readonly domain: "localhost";
  /** The MUC service. */
  readonly mucDomain: "conference.localhost";
  /** The XEP-0363 HTTP upload service. */
  readonly uploadDomain: "upload.localhost";
  /** The XEP-0114 component domain the bridge connects as. */
  readonly componentDomain: "bridge.localhost";
  /** Shared secret of {@linkcode Prosody.componentDomain}. */
  readonly componentSecret: string;
  /** Client-to-server port on 127.0.0.1. */
  readonly c2sPort: number;
  /** Component (XEP-0114) port on 127.0.0.1. */
  readonly componentPort: number;
  /** HTTP port on 127.0.0.1 (upload URLs are `http://127.0.0.1:httpPort/…`). */
  readonly httpPort: number;
  /** Directory holding the config, certificate, data and log. Removed by {@linkcode Prosody.stop}. */
  readonly dir: string;
  /** Client service URL for xmpp.js, `xmpp://127.0.0.1:c2sPort`. */
  readonly service: string;
  /** Component service URL for xmpp.js, `xmpp://127.0.0.1:componentPort`. */
  readonly componentService: string;
  /** The self-signed certificate (PEM, valid for localhost, *.localhost names used here and 127.0.0.1). */
  readonly caFile: string;
  /** Creates the account `user@localhost` with prosodyctl. Works while the server runs or is stopped. */
  register(user: string, password: string): Promise<void>;
  /** Creates the account `user@host` on another virtual host of this server (`example.test`). */
  registerOn(host: "example.test", user: string, password: string): Promise<void>;
  /** Deletes the account `user@localhost` with prosodyctl. */
  unregister(user: string): Promise<void>;
  /** Stops the server gracefully (SIGKILL after a timeout) and removes {@linkcode Prosody.dir}. Idempotent. */
  stop(): Promise<void>;
  /** Kills the server's whole process group with SIGKILL, as in a crash. The directory is kept for restart. */
  kill(): Promise<void>;
  /**
   * Starts the server again on the same config, data and ports (stopping it first if it runs). Resolves when all
   * ports are served. Accounts survive; non-persistent rooms do not.
   */
  restart(): Promise<void>;
  /** The last lines of Prosody's log and console output, for error messages. */
  logTail(lines?: number): string;
  /** Every MUC join request (presence with `<x xmlns="…/muc">`) the MUC service received so far, in order. */
  mucJoinRequests(): MucJoinRequest[];
  /**
   * Kills the server's process group at once and without waiting, for an `unload` handler when the test that would
   * stop it did not run (a filtered run). Prefer {@linkcode Prosody.stop}.
   */
  killNow?(): void;
}

/**
 * A Prosody module for the MUC service: it logs each join request as one line (read by `mucJoinRequests`), and
 * with `mmxmpp_test_ignore_history_limit` it turns a request for no history into one for the default history.
 */
const MUC_TEST_MODULE =
  `-- Written by mmxmpp's tests/helpers/prosody.ts: observes and bends MUC joins for tests.
local ignore_history_limit = module:get_option_boolean("mmxmpp_test_ignore_history_limit", false);

module:hook("presence/full", function(event)
	local stanza = event.stanza;
	local x = stanza:get_child("x", "http://jabber.org/protocol/muc");
	if x and stanza.attr.type == nil then
		module:log("info", "mmxmpp-test-join from=%s to=%s x=%s", stanza.attr.from, stanza.attr.to, tostring(x));
	end
end, 1000);

module:hook("muc-get-history", function(event)
	if ignore_history_limit and event.maxstanzas == 0 then event.maxstanzas = 20; end
end, 1000);
`;

const SETUP_SCRIPT = new URL("../../scripts/prosody-setup.sh", import.meta.url).pathname;
const START_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 5_000;
const START_ATTEMPTS = 3;
const OUTPUT_LIMIT = 16_384;

const isRoot = Deno.uid() === 0;

/**
 * Writes a config into a new temp directory and starts Prosody on three free loopback ports.
 *
 * Runs `prosody -F` as the `prosody` user when the test runs as root (Prosody refuses root), in its own process
 * group so that {@linkcode Prosody.stop} and {@linkcode Prosody.kill} reach the Lua process behind `runuser`.
 * Always call `stop()`, also when the test fails.
 *
 * @example
 * ```ts
 * const prosody = await startProsody();
 * try {
 *   await prosody.register("alice", "secret");
 * } finally {
 *   await prosody.stop();
 * }
 * ```
 */
export async function startProsody(opts: ProsodyOptions = {}): Promise<Prosody> {
  const dir = await Deno.makeTempDir({ prefix: "mmxmpp-prosody-" });
  await Deno.chmod(dir, 0o755);
  const componentSecret = opts.componentSecret ?? "component-secret";
  const config = `${dir}/prosody.cfg.lua`;
  let lastError: Error | undefined;
  for (let attempt = 1; attempt <= START_ATTEMPTS; attempt++) {
    const ports = distinctFreePorts(3);
    const [c2sPort, componentPort, httpPort] = ports;
    try {
      await writeConfig(dir, ports, opts, componentSecret);
      const server = new ProsodyServer(dir, config, {
        c2s: c2sPort,
        component: componentPort,
        http: httpPort,
      });
      const failure = await server.start();
      if (failure === undefined) return server.handle(componentSecret);
      await server.kill();
      lastError = new Error(failure.message);
      if (!failure.portTaken) break; // else another process took a port between freePort() and Prosody's bind
    } catch (error) {
      lastError = error instanceof Error ? error : new Error(String(error));
      break;
    }
  }
  await Deno.remove(dir, { recursive: true }).catch(() => {});
  throw lastError;
}

function distinctFreePorts(count: number): number[] {
  const ports = new Set<number>();
  while (ports.size < count) ports.add(freePort());
  return [...ports];
}

async function writeConfig(
  dir: string,
  [c2sPort, componentPort, httpPort]: number[],
  opts: ProsodyOptions,
  componentSecret: string,
): Promise<void> {
  const logLevel = opts.logLevel ?? (Deno.env.get("PROSODY_LOG_LEVEL") === "debug" ? "debug" : "info");
  const { code, stderr } = await new Deno.Command("bash", {
    args: [SETUP_SCRIPT, dir, String(c2sPort), String(componentPort), String(httpPort)],
    env: {
      PROSODY_COMPONENT_SECRET: componentSecret,
      PROSODY_LOG_LEVEL: logLevel,
      PROSODY_ALLOW_REGISTRATION: String(opts.allowRegistration ?? true),
      PROSODY_REGISTRATION_THROTTLE: String(opts.registrationThrottleSeconds ?? 0),
    },
    stdout: "null",
    stderr: "piped",
  }).output();
  if (code !== 0) {
    throw new Error(`prosody-setup.sh failed (exit ${code}): ${new TextDecoder().decode(stderr).trim()}`);
  }
  await addTestOptions(dir, opts);
  if (isRoot) {
    const readable = await new Deno.Command("runuser", {
      args: ["-u", "prosody", "--", "test", "-r", `${dir}/prosody.cfg.lua`],
      stdout: "null",
      stderr: "null",
    }).output();
    if (!readable.success) {
      throw new Error(
        `the prosody user cannot read ${dir}; set TMPDIR to a directory every user can traverse (e.g. /tmp)`,
      );
    }
  }
}

/** Adds what the setup script does not offer: the MUC test module and the options that turn off TLS or SCRAM. */
async function addTestOptions(dir: string, opts: ProsodyOptions): Promise<void> {
  const plugins = `${dir}/plugins`;
  await Deno.mkdir(plugins, { recursive: true });
  await Deno.writeTextFile(`${plugins}/mod_mmxmpp_test_muc.lua`, MUC_TEST_MODULE);
  const file = `${dir}/prosody.cfg.lua`;
  let config = await Deno.readTextFile(file);
  const mucModules = `\tmodules_enabled = { "muc_mam" }\n`;
  if (!config.includes(mucModules)) throw new Error(`${file} has no line ${JSON.stringify(mucModules)}`);
  config = config.replace(
    mucModules,
    `\tmodules_enabled = { "muc_mam"; "mmxmpp_test_muc" }\n` +
      `\tmmxmpp_test_ignore_history_limit = ${opts.mucIgnoresHistoryLimit ?? false}\n` +
      (opts.mucRealJidsOnly ? `\tmuc_occupant_id = false\n\tmuc_room_default_public_jids = true\n` : ""),
  );
  // Global options go before the first host section.
  const global = [`plugin_paths = { ${JSON.stringify(plugins)} }`];
  if (opts.starttls === false) global.push(`modules_disabled = { "tls" }`);
  if (opts.saslMechanisms === "plain-only") {
    global.push(
      `disable_sasl_mechanisms = { "DIGEST-MD5"; "SCRAM-SHA-1"; "SCRAM-SHA-1-PLUS"; "SCRAM-SHA-256"; "SCRAM-SHA-256-PLUS" }`,
    );
  }
  await Deno.writeTextFile(file, `${global.join("\n")}\n\n${config}`);
}

/** The command line running Prosody in the foreground; as root through runuser, since Prosody refuses root. */
function prosodyCommand(config: string): string[] {
  const prosody = ["prosody", "--config", config, "-F"];
  return isRoot ? ["runuser", "-u", "prosody", "--", ...prosody] : prosody;
}

/** Why a start did not complete; `portTaken` when another process holds one of the ports. */
interface StartFailure {
  message: string;
  portTaken: boolean;
}

/** One Prosody installation in a directory, and the process currently running it (if any). */
class ProsodyServer {
  #process: Deno.ChildProcess | undefined;
  #exited: Promise<Deno.CommandStatus> | undefined;
  #drained: Promise<void> | undefined;
  #output = "";
  #removed = false;

  constructor(
    readonly dir: string,
    readonly config: string,
    readonly ports: { c2s: number; component: number; http: number },
  ) {}

  get #logFile(): string {
    return `${this.dir}/prosody.log`;
  }

  /** Spawns Prosody and waits until it serves every port; returns why it did not, or undefined. */
  async start(): Promise<StartFailure | undefined> {
    if (this.#process) throw new Error("Prosody is already running");
    const logOffset = fileSize(this.#logFile);
    const [command, ...args] = prosodyCommand(this.config);
    // detached: Deno calls setsid(), so the child leads a new process group that also holds the Lua process.
    const process = new Deno.Command(command, {
      args,
      detached: true,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#process = process;
    this.#exited = process.status;
    this.#drained = Promise.all([this.#drain(process.stdout), this.#drain(process.stderr)]).then(() => {});
    const failure = await this.#waitReady(logOffset);
    return failure && { ...failure, message: `${failure.message}\n${this.logTail()}` };
  }

  async #drain(stream: ReadableStream<Uint8Array>): Promise<void> {
    const decoder = new TextDecoder();
    for await (const chunk of stream) {
      this.#output = (this.#output + decoder.decode(chunk, { stream: true })).slice(-OUTPUT_LIMIT);
    }
  }

  async #waitReady(logOffset: number): Promise<StartFailure | undefined> {
    const expected = [
      `Activated service 'c2s' on [127.0.0.1]:${this.ports.c2s}`,
      `Activated service 'component' on [127.0.0.1]:${this.ports.component}`,
      `Activated service 'http' on [127.0.0.1]:${this.ports.http}`,
    ];
    let exited = false;
    this.#exited!.then(() => exited = true);
    const deadline = Date.now() + START_TIMEOUT_MS;
    while (Date.now() < deadline) {
      const log = readFrom(this.#logFile, logOffset);
      // Prosody keeps running when a bind fails, so the log is the only sign.
      if (log.includes("Failed to open server port")) {
        return { message: "Prosody could not listen on its ports", portTaken: true };
      }
      if (expected.every((line) => log.includes(line)) && await accepts(this.ports.c2s)) return undefined;
      if (exited) {
        return {
          message: `Prosody exited during startup (${JSON.stringify(await this.#exited)})`,
          portTaken: false,
        };
      }
      await sleep(50);
    }
    const ports = Object.values(this.ports).join(", ");
    return {
      message: `Prosody did not serve ports ${ports} within ${START_TIMEOUT_MS} ms`,
      portTaken: false,
    };
  }

  /** Sends a signal to the process group and waits until no process of it is left. */
  async #signal(signal: "SIGTERM" | "SIGKILL", timeoutMs: number): Promise<boolean> {
    const process = this.#process;
    if (!process) return true;
    // runuser answers SIGTERM by forwarding it and then sleeping 2 s before a SIGKILL, so a graceful stop signals
    // only the processes below it and lets runuser exit when Prosody has.
    const below = groupMembers(process.pid).filter((pid) => pid !== process.pid);
    const targets = signal === "SIGTERM" && isRoot && below.length > 0 ? below : [-process.pid];
    for (const pid of targets) {
      try {
        Deno.kill(pid, signal);
      } catch (error) {
        if (!(error instanceof Deno.errors.NotFound)) throw error;
      }
    }
    const deadline = Date.now() + timeoutMs;
    await raceTimeout(this.#exited!, timeoutMs);
    while (groupMembers(process.pid).length > 0) {
      if (Date.now() > deadline) return false;
      await sleep(20);
    }
    await this.#exited;
    await this.#drained;
    this.#process = undefined;
    return true;
  }

  async stop(): Promise<void> {
    if (!await this.#signal("SIGTERM", STOP_TIMEOUT_MS)) await this.kill();
  }

  async kill(): Promise<void> {
    if (!await this.#signal("SIGKILL", STOP_TIMEOUT_MS)) {
      throw new Error(`Prosody process group ${this.#process?.pid} survived SIGKILL`);
    }
  }

  async restart(): Promise<void> {
    if (this.#removed) throw new Error("Prosody was stopped and its directory removed; start a new one");
    await this.stop();
    const failure = await this.start();
    if (failure !== undefined) {
      await this.kill();
      throw new Error(failure.message);
    }
  }

  async remove(): Promise<void> {
    await this.stop();
    if (this.#removed) return;
    this.#removed = true;
    await Deno.remove(this.dir, { recursive: true });
  }

  logTail(lines = 40): string {
    const log = readFrom(this.#logFile, 0).trimEnd().split("\n").slice(-lines).join("\n");
    const output = this.#output.trim();
    return `--- ${this.#logFile} (tail) ---\n${log}` + (output ? `\n--- console ---\n${output}` : "");
  }

  mucJoinRequests(): MucJoinRequest[] {
    const found = [];
    for (
      const match of readFrom(this.#logFile, 0).matchAll(/mmxmpp-test-join from=(\S+) to=(\S+) x=(.*)$/gm)
    ) {
      found.push({ from: match[1], to: match[2], x: match[3] });
    }
    return found;
  }

  async prosodyctl(...args: string[]): Promise<void> {
    const command = isRoot
      ? ["runuser", "-u", "prosody", "--", "prosodyctl", "--config", this.config, ...args]
      : ["prosodyctl", "--config", this.config, ...args];
    const { code, stdout, stderr } = await new Deno.Command(command[0], {
      args: command.slice(1),
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (code !== 0) {
      const text = new TextDecoder().decode(stderr).trim() || new TextDecoder().decode(stdout).trim();
      throw new Error(`prosodyctl ${args[0]} failed (exit ${code}): ${text}`);
    }
  }

  handle(componentSecret: string): Prosody {
    const { dir, ports } = this;
    return {
      domain: "localhost",
      mucDomain: "conference.localhost",
      uploadDomain: "upload.localhost",
      componentDomain: "bridge.localhost",
      componentSecret,
      c2sPort: ports.c2s,
      componentPort: ports.component,
      httpPort: ports.http,
      dir,
      service: `xmpp://127.0.0.1:${ports.c2s}`,
      componentService: `xmpp://127.0.0.1:${ports.component}`,
      caFile: `${dir}/localhost.crt`,
      register: (user, password) => this.prosodyctl("register", user, "localhost", password),
      registerOn: (host, user, password) => this.prosodyctl("register", user, host, password),
      unregister: (user) => this.prosodyctl("deluser", `${user}@localhost`),
      stop: () => this.remove(),
      kill: () => this.kill(),
      restart: () => this.restart(),
      logTail: (lines) => this.logTail(lines),
      mucJoinRequests: () => this.mucJoinRequests(),
      killNow: () => {
        if (!this.#process) return;
        try {
          Deno.kill(-this.#process.pid, "SIGKILL");
        } catch { /* already gone */ }
      },
    };
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Waits for the promise or the timeout, whichever comes first, without leaving the timer behind. */
async function raceTimeout(promise: Promise<unknown>, ms: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    await Promise.race([promise, new Promise((resolve) => timer = setTimeout(resolve, ms))]);
  } finally {
    clearTimeout(timer);
  }
}

function fileSize(path: string): number {
  try {
    return Deno.statSync(path).size;
  } catch {
    return 0;
  }
}

function readFrom(path: string, offset: number): string {
  try {
    return new TextDecoder().decode(Deno.readFileSync(path).subarray(offset));
  } catch {
    return "";
  }
}

async function accepts(port: number): Promise<boolean> {
  try {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    conn.close();
    return true;
  } catch {
    return false;
  }
}

/** The live (not zombie) processes in a process group; orphans may stay unreaped in containers. */
function groupMembers(pgid: number): number[] {
  const members: number[] = [];
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    let stat: string;
    try {
      stat = Deno.readTextFileSync(`/proc/${entry.name}/stat`);
    } catch {
      continue; // exited while we looked
    }
    // Fields after "(comm)": state ppid pgrp …; comm may contain spaces and parentheses.
    const [state, , pgrp] = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    if (Number(pgrp) === pgid && state !== "Z" && state !== "X") members.push(Number(entry.name));
  }
  return members;
}
