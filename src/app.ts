/**
 * Assembles a running bridge from a config: store, HTTP listener, both connectors and the manager; finds the XMPP
 * server by SRV when XMPP_SERVICE is unset, and maps a failed start to the process exit code ({@link exitCodeOf}).
 *
 * What only some configurations use (SRV discovery, IBR or component ghosts) is imported when it is used, so that
 * a relay bridge does not keep it in memory (tests/e2e/start_path_test.ts checks this).
 *
 * @module
 */
import { dirname } from "node:path";
import { getLogger } from "@logtape/logtape";
import type { Config } from "./config.ts";
import { BridgeManager } from "./core/manager.ts";
import type { RetryPolicy } from "./core/bus.ts";
import { Store } from "./core/store.ts";
import { HttpServer } from "./http.ts";
import { renderMetrics } from "./metrics.ts";
import { MattermostBridge } from "./mattermost/connector.ts";
import { type DirectOptions, XmppBridge } from "./xmpp/connector.ts";
import type { TlsOptions } from "./xmpp/session/client.ts";
import type { GhostProvider } from "./xmpp/intents/ghosts.ts";
import type { MattermostPuppets } from "./mattermost/puppets.ts";
import { BridgeError, errorMessage } from "./core/errors.ts";
import { kvPathProblem } from "./preflight.ts";
import { statusOf } from "./mattermost/api.ts";

const log = getLogger(["mmxmpp"]);

/** A started bridge. */
export interface RunningBridge {
  manager: BridgeManager;
  http: HttpServer;
  store: Store;
  xmpp: XmppBridge;
  mattermost: MattermostBridge;
  /** Leaves rooms, closes the websocket, the listener and the store. */
  stop(): Promise<void>;
}

/** Knobs tests turn; production uses the defaults. */
export interface StartOptions {
  retry?: RetryPolicy;
  /** Waits between attempts to reach a server that is down at start (default 1 s doubling to 30 s). */
  startRetry?: RetryPolicy;
  /** Gives up a start that is still waiting for a server (SIGTERM): `startBridge` then rejects with its reason. */
  signal?: AbortSignal;
  /** First wait before retrying a rate-limited ghost registration. */
  ghostRegistrationRetryMs?: number;
  /** How long after a Mattermost user's last typing event their typing ends (default 6 s; tests shorten it). */
  typingTimeoutMs?: number;
  /** The DNS server for SRV discovery when XMPP_SERVICE is unset (tests run their own); the system's by default. */
  dnsNameServer?: { ipAddr: string; port: number };
}

/**
 * Starts everything `config` describes. The HTTP listener comes first, so `/healthz` answers (503) while a server
 * that cannot be reached yet is retried. On a permanent failure, whatever was started is stopped again before the
 * error is rethrown; {@link exitCodeOf} tells the exit code.
 */
export async function startBridge(config: Config, opts: StartOptions = {}): Promise<RunningBridge> {
  if (config.xmpp.tlsInsecureSkipVerify) {
    log.warn("XMPP_TLS_INSECURE_SKIP_VERIFY is on: the XMPP server's certificate is not checked");
  }
  if (config.xmpp.discoverService) {
    const { chooseService } = await import("./xmpp/session/srv.ts");
    const { service } = await chooseService(config.xmpp.domain, { nameServer: opts.dnsNameServer });
    config = { ...config, xmpp: { ...config.xmpp, service } };
  }
  const store = await openStore(config.bridge.kvPath);
  const http = new HttpServer();
  const mattermost = new MattermostBridge({
    url: config.mattermost.url,
    token: config.mattermost.token,
    team: config.mattermost.team,
    display: {
      mode: config.bridge.mmDisplay,
      nameFormat: config.bridge.xmppNameFormat,
      allowChannelMentions: config.bridge.allowChannelMentions,
    },
    publicUrl: config.bridge.publicUrl,
    commandToken: config.mattermost.commandToken,
    catchUpMaxAgeMs: config.bridge.catchUpMaxAgeMs,
    typingTimeoutMs: opts.typingTimeoutMs,
    // Only ghosts show a status: in relay mode there is no one to poll for.
    statusPollMs: config.ghosts.mode === "relay" ? 0 : config.bridge.statusPollMs,
    // An ibr ghost disconnects after this long without activity; component puppets stay in their rooms.
    statusWatchMs: config.ghosts.mode === "ibr" ? config.ghosts.idleMinutes * 60_000 : undefined,
    route: (method, path, handler) => http.route(method, path, handler),
    puppets: await createPuppets(config, store),
    avatarStore: store,
  });
  const ghosts = await createGhosts(config, store, opts);
  const xmpp = new XmppBridge({
    jid: config.xmpp.jid,
    password: config.xmpp.password,
    service: config.xmpp.service,
    resource: config.xmpp.resource,
    mucNick: config.xmpp.mucNick,
    tls: xmppTls(config),
    nameFormat: config.bridge.mmNameFormat,
    ghosts,
    catchUpMaxAgeMs: config.bridge.catchUpMaxAgeMs,
    fileFetchHosts: config.bridge.fileFetchHosts,
    direct: directOptions(config),
  });
  const manager = new BridgeManager(store, [mattermost, xmpp], {
    staticMappings: config.bridge.mappings,
    createMissingChannels: config.bridge.createRooms,
    retry: opts.retry,
    startRetry: opts.startRetry,
  });
  http.route("GET", "/healthz", () => {
    const health = manager.health();
    const ready = manager.isReady();
    const failedMappings = manager.mappingFailures();
    const ok = ready && health.every((h) => h.connected) && failedMappings.length === 0;
    return Response.json({ ok, ready, bridges: health, failedMappings }, { status: ok ? 200 : 503 });
  });
  http.route("GET", "/metrics", async () =>
    new Response(await renderMetrics(manager), {
      headers: { "Content-Type": "text/plain; version=0.0.4; charset=utf-8" },
    }));
  const stop = async () => {
    await manager.stop();
    await http.stop();
    store.close();
  };
  try {
    await http.start(config.bridge.httpAddr);
    await manager.start(opts.signal);
  } catch (err) {
    await stop().catch(() => {});
    throw err;
  }
  return { manager, http, store, xmpp, mattermost, stop };
}

/** Exit codes of `main.ts`; `--help` and the README list them. */
export const EXIT = { ok: 0, failure: 1, configuration: 2, credentials: 3 } as const;

/**
 * The exit code for an error `startBridge` threw: a refused account (MM_TOKEN, XMPP_PASSWORD) is
 * {@link EXIT}.credentials, settings a server rejects (not a Mattermost at MM_URL, an untrusted certificate) are
 * {@link EXIT}.configuration, anything else is a runtime failure. A server that cannot be reached never ends here:
 * it is retried.
 */
export function exitCodeOf(err: unknown): number {
  if (!(err instanceof BridgeError)) return EXIT.failure;
  if (err.kind === "credentials" || statusOf(err) === 401) return EXIT.credentials;
  return err.transient ? EXIT.failure : EXIT.configuration;
}

/** Opens the state file, creating its directory; a failure names BRIDGE_KV_PATH and what to do. */
async function openStore(path: string): Promise<Store> {
  const problem = kvPathProblem(path);
  if (problem) throw new BridgeError(problem, { kind: "configuration" });
  try {
    if (path !== ":memory:") await Deno.mkdir(dirname(path), { recursive: true });
    return await Store.open(path);
  } catch (err) {
    throw new BridgeError(`BRIDGE_KV_PATH ${path}: cannot open the state file: ${errorMessage(err)}`, {
      kind: "configuration",
      cause: err,
    });
  }
}

/** The TLS settings of every XMPP session: the bridge's, and its ghosts'. */
function xmppTls(config: Config): TlsOptions {
  return {
    ca: config.xmpp.ca,
    insecureSkipVerify: config.xmpp.tlsInsecureSkipVerify,
    allowUnencrypted: config.xmpp.allowUnencrypted,
  };
}

/** The Mattermost puppets of XMPP users, when `BRIDGE_MM_PUPPETS` is on. */
async function createPuppets(config: Config, store: Store): Promise<MattermostPuppets | undefined> {
  const puppets = config.mattermost.puppets;
  if (!puppets) return undefined;
  const [{ MattermostPuppets }, { SecretBox }] = await Promise.all([
    import("./mattermost/puppets.ts"),
    import("./core/secretbox.ts"),
  ]);
  const box = await SecretBox.create(config.ghosts.secretKey);
  if (!box.encrypting) {
    log.warn("BRIDGE_SECRET_KEY is not set: the Mattermost puppets' access tokens are stored unencrypted");
  }
  return new MattermostPuppets({
    url: config.mattermost.url,
    adminToken: puppets.adminToken,
    prefix: puppets.prefix,
    store,
    box,
  });
}

/**
 * Direct messages on XMPP: who may send them, why every one is refused while Mattermost puppets are off (a DM
 * arrives there as a puppet's), and what a ghost's address looks like, for whoever writes to the bridge's own.
 */
function directOptions(config: Config): DirectOptions {
  const g = config.ghosts;
  return {
    allowedDomains: g.dmAllowedDomains,
    refusal: config.mattermost.puppets
      ? undefined
      : "Mattermost users cannot be written to directly through this bridge (its Mattermost puppets are off)",
    addressHint: g.mode === "ibr"
      ? `${g.prefix}{username}@${g.domain}`
      : g.mode === "component" && g.component
      ? `{username}@${g.component.jid}`
      : undefined,
  };
}

/** The ghost provider `config.ghosts.mode` asks for; none in relay mode. */
async function createGhosts(
  config: Config,
  store: Store,
  opts: StartOptions,
): Promise<GhostProvider | undefined> {
  const tls = xmppTls(config);
  const g = config.ghosts;
  if (g.mode === "ibr") {
    const [{ IbrGhosts, xep0077Registrar }, { SecretBox }] = await Promise.all([
      import("./xmpp/intents/ibr_ghosts.ts"),
      import("./core/secretbox.ts"),
    ]);
    const box = await SecretBox.create(g.secretKey);
    if (!box.encrypting) log.warn("BRIDGE_SECRET_KEY is not set: ghost passwords are stored unencrypted");
    return new IbrGhosts({
      store,
      box,
      registrar: xep0077Registrar({ service: config.xmpp.service, domain: g.domain, tls }, config.xmpp.jid),
      service: config.xmpp.service,
      domain: g.domain,
      prefix: g.prefix,
      nickFormat: g.nickFormat,
      resource: `${config.xmpp.resource}-${g.nodeId}`,
      tls,
      idleMs: g.idleMinutes * 60_000,
      cleanup: g.cleanup,
      registrationRetryMs: opts.ghostRegistrationRetryMs,
    });
  }
  if (g.mode === "component" && g.component) {
    const { ComponentPuppets } = await import("./xmpp/intents/puppets.ts");
    return new ComponentPuppets({
      service: g.component.service,
      domain: g.component.jid,
      secret: g.component.secret,
      nickFormat: g.nickFormat,
      resource: `${config.xmpp.resource}-${g.nodeId}`,
    });
  }
  return undefined;
}
