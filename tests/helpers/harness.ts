/**
 * End-to-end test world: a real Prosody, the Mattermost stand-in, a human on each side, and the bridge started
 * in-process from environment variables exactly as `main.ts` reads them.
 *
 * @module
 */
import { loadConfig } from "../../src/config.ts";
import { deadline } from "../../src/core/deadline.ts";
import { type RunningBridge, startBridge, type StartOptions } from "../../src/app.ts";
import { type Prosody, type ProsodyOptions, startProsody } from "./prosody.ts";
import { connectXmppUser, type XmppUser } from "./xmpp_user.ts";
import {
  type MattermostStandIn,
  type Post,
  type StandInOptions,
  startMattermostStandIn,
  type TestUser,
} from "../mm_server/server.ts";

/** Everything an end-to-end test needs. */
export interface World {
  prosody: Prosody;
  mm: MattermostStandIn;
  /** A human Mattermost user who posts in `channel`. */
  bob: TestUser;
  /** A mapped pair: Mattermost channel and XMPP room. */
  channel: { id: string; name: string };
  room: string;
  /** A human XMPP user, joined to `room` as "alice". */
  alice: XmppUser;
  kvPath: string;
  httpPort: number;
  /** The bridge's environment, with `extra` on top. */
  env(extra?: Record<string, string>): Record<string, string>;
  /** Starts the bridge from `env(extra)`; remembered so that `stop` stops it. */
  startBridge(extra?: Record<string, string>, start?: StartOptions): Promise<RunningBridge>;
  /** Stops the bridge, the users and the servers, and removes temp files. */
  stop(): Promise<void>;
}

/** Password of every test account. */
export const PASSWORD = "s3cret-Pa55word!";

/** Options for {@linkcode startWorld}. */
export interface WorldOptions {
  /** Whether BRIDGE_MAPPINGS maps the channel/room pair (default true). */
  mapped?: boolean;
  mattermost?: StandInOptions;
  prosody?: ProsodyOptions;
  /**
   * A running Prosody to use instead of starting one (`prosody` is then ignored), so that the tests of a file can
   * share one; the world does not stop it. Give each world its own `room` then: archives outlive a room.
   */
  sharedProsody?: Prosody;
  /** Local part of the mapped room at the MUC service (default "hall"). */
  room?: string;
}

/** The environment of a bridge whose ghosts are puppets of `prosody`'s XEP-0114 component. */
export function componentEnv(prosody: Prosody): Record<string, string> {
  return {
    BRIDGE_GHOST_MODE: "component",
    XMPP_COMPONENT_JID: prosody.componentDomain,
    XMPP_COMPONENT_SECRET: prosody.componentSecret,
    XMPP_COMPONENT_SERVICE: prosody.componentService,
  };
}

/** Starts a world: the servers, a human on each side, and the bridge's environment (see {@linkcode World}). */
export async function startWorld(opts: WorldOptions = {}): Promise<World> {
  const prosody = opts.sharedProsody ?? await startProsody(opts.prosody);
  const stopProsody = () => opts.sharedProsody ? Promise.resolve() : prosody.stop();
  // What is started before the world is complete is stopped again when a later step fails.
  const started: Array<() => Promise<void>> = [stopProsody];
  let mm: MattermostStandIn, dir: string, alice: XmppUser;
  const room = `${opts.room ?? "hall"}@conference.localhost`;
  try {
    mm = await startMattermostStandIn(opts.mattermost);
    started.push(() => mm.close());
    dir = await Deno.makeTempDir({ prefix: "mmxmpp-e2e-" });
    started.push(() => Deno.remove(dir, { recursive: true }));
    await registerOnce(prosody, "bridge", PASSWORD);
    await registerOnce(prosody, "alice", PASSWORD);
    alice = await connectXmppUser(prosody, "alice", PASSWORD, "phone");
    started.push(() => alice.stop());
    await alice.joinRoom(room, "alice");
  } catch (err) {
    for (const stop of started.reverse()) await stop().catch(() => {});
    throw err;
  }
  const bob = mm.createUser("bob");
  const channel = mm.createChannel("town-hall", { displayName: "Town Hall" });
  mm.addMember(channel.id, bob.id);
  // Held until the bridge's address is asked for: a port found free and left unbound until the bridge starts, seconds
  // later, can be taken meanwhile by a server of a test file running in parallel.
  let reserved: Deno.Listener | undefined = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const httpPort = (reserved.addr as Deno.NetAddr).port;
  const release = () => {
    reserved?.close();
    reserved = undefined;
  };
  const kvPath = `${dir}/state.kv`;
  const bridges: RunningBridge[] = [];

  const env = (extra: Record<string, string> = {}) => (release(), {
    MM_URL: mm.url,
    MM_TOKEN: mm.bot.token,
    MM_TEAM: mm.team.name,
    XMPP_JID: "bridge@localhost",
    XMPP_PASSWORD: PASSWORD,
    XMPP_SERVICE: prosody.service,
    XMPP_CA_FILE: prosody.caFile,
    XMPP_MUC_NICK: "bridge",
    BRIDGE_KV_PATH: kvPath,
    BRIDGE_HTTP_ADDR: `127.0.0.1:${httpPort}`,
    BRIDGE_PUBLIC_URL: `http://127.0.0.1:${httpPort}`,
    ...(opts.mapped === false ? {} : { BRIDGE_MAPPINGS: `${mm.team.name}/${channel.name}=${room}` }),
    ...extra,
  });

  return {
    prosody,
    mm,
    bob,
    channel,
    room,
    alice,
    kvPath,
    httpPort,
    env,
    async startBridge(extra, start) {
      const loaded = loadConfig(env(extra));
      if (!loaded.ok) throw new Error(`bad test config: ${loaded.errors.join("; ")}`);
      const bridge = await startBridge(loaded.config, { retry: { initialMs: 100, maxMs: 1_000 }, ...start });
      bridges.push(bridge);
      const stop = bridge.stop;
      // Stopping twice (a test, then the world) must be harmless.
      let stopped: Promise<void> | undefined;
      bridge.stop = () => stopped ??= stop();
      return bridge;
    },
    async stop() {
      // Each step runs even when an earlier one fails, so no server outlives the test.
      const steps = [
        ...bridges.map((b) => () =>
          deadline(b.stop(), 10_000, () => new Error("timed out waiting for the bridge to stop"))
        ),
        () => alice.stop(),
        () => mm.close(),
        stopProsody,
        () => Promise.resolve(release()),
        () => Deno.remove(dir, { recursive: true }),
      ];
      const errors: unknown[] = [];
      for (const step of steps) await step().catch((err) => errors.push(err));
      if (errors.length > 0) throw new AggregateError(errors, "the test world did not stop cleanly");
    },
  };
}

/** `text` as the source of a regular expression that matches it literally (a room's JID, a URL). */
export function literal(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** Accounts registered by {@linkcode registerOnce}, per Prosody. */
const registered = new WeakMap<Prosody, Map<string, string>>();

/**
 * Registers `user` with `password` on `prosody` unless this process already did (prosodyctl is a process of its own
 * each time): worlds that share a Prosody register their accounts once.
 */
export async function registerOnce(prosody: Prosody, user: string, password: string): Promise<void> {
  let users = registered.get(prosody);
  if (!users) registered.set(prosody, users = new Map());
  if (users.get(user) === password) return;
  await prosody.register(user, password);
  users.set(user, password);
}

/** Waits until `predicate` holds, polling every 20 ms; throws `what` after `timeoutMs`. */
export async function waitFor(predicate: () => boolean | Promise<boolean>, what: string, timeoutMs = 5_000) {
  const end = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * The id of the Mattermost user `username` (e.g. a puppet the bridge makes), once it exists, as an admin reads it
 * through the API (`GET /users/username/{username}`).
 */
export async function userIdOf(mm: MattermostStandIn, username: string, timeoutMs = 5_000): Promise<string> {
  let id = "";
  await waitFor(
    async () => {
      const res = await fetch(`${mm.url}/api/v4/users/username/${username}`, {
        headers: { Authorization: `Bearer ${mm.admin.token}` },
      });
      id = res.ok ? (await res.json()).id : (await res.body?.cancel(), "");
      return id !== "";
    },
    `the user ${username}`,
    timeoutMs,
  );
  return id;
}

/** Waits until `channelId` has at least `count` posts matching `match`; returns those, in order. */
export async function postsMatching(
  mm: MattermostStandIn,
  channelId: string,
  match: (p: Post) => boolean,
  count: number,
  timeoutMs = 10_000,
): Promise<Post[]> {
  let found: Post[] = [];
  await waitFor(
    () => (found = mm.posts(channelId).filter(match)).length >= count,
    `${count} matching post(s)`,
    timeoutMs,
  )
    .catch((err) => {
      throw new Error(
        `${err.message}; have: ${JSON.stringify(mm.posts(channelId).map((p) => p.message.slice(0, 80)))}`,
      );
    });
  return found;
}

/** What a run of `main.ts` as its own process printed. */
export interface MainRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `main.ts` with `args` as its own process, with exactly `env` (plus NO_COLOR). */
export async function runMain(args: string[], env: Record<string, string>): Promise<MainRun> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", new URL("../../main.ts", import.meta.url).pathname, ...args],
    env: { NO_COLOR: "1", ...env },
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** One Prosody for the tests of a file: see {@linkcode fileProsody}. */
export interface FileProsody {
  /** The file's Prosody, started on first use. */
  get(): Promise<Prosody>;
  /** Registers the test that stops it: call once, after the file's other tests, so that it runs last. */
  stopAfterAll(): void;
  /** Registers `user` on it, once (see {@linkcode registerOnce}). */
  register(user: string, password: string): Promise<void>;
}

/**
 * One Prosody shared by the tests of a file (each test then uses rooms of its own: archives outlive a room), started
 * by the first test that asks for it and stopped by a last test, `label: stop the shared Prosody`.
 *
 * @example
 * ```ts
 * const shared = fileProsody("connector");
 * Deno.test("…", async () => { const prosody = await shared.get(); … });
 * shared.stopAfterAll();
 * ```
 */
export function fileProsody(label: string, opts?: ProsodyOptions): FileProsody {
  let started: Promise<Prosody> | undefined;
  const get = () => {
    started ??= startProsody(opts).then((prosody) => {
      // A filtered run may leave out the test that stops it: it must not outlive the test process.
      globalThis.addEventListener("unload", () => prosody.killNow?.());
      return prosody;
    }, (err) => {
      started = undefined;
      throw err;
    });
    return started;
  };
  return {
    get,
    stopAfterAll() {
      Deno.test({
        name: `${label}: stop the shared Prosody`,
        sanitizeOps: false,
        sanitizeResources: false,
        async fn() {
          const running = started;
          started = undefined;
          if (running) await (await running).stop();
        },
      });
    },
    async register(user, password) {
      await registerOnce(await get(), user, password);
    },
  };
}

/** Worlds on one Prosody for the tests of a file: see {@linkcode sharedWorlds}. */
export interface SharedWorlds {
  /** The file's Prosody (started on first use), for what a world does not cover. */
  prosody: FileProsody;
  /** Starts a world on the file's Prosody, with a room of its own unless `opts.room` names one. */
  start(opts?: Omit<WorldOptions, "sharedProsody" | "prosody">): Promise<World>;
  /** Runs `body` in a world of {@linkcode SharedWorlds.start}, and stops the world after it, also on failure. */
  run(
    body: (w: World) => Promise<void>,
    opts?: Omit<WorldOptions, "sharedProsody" | "prosody">,
  ): Promise<void>;
  /** Registers the test that stops the Prosody: call once, after the file's other tests. */
  stopAfterAll(): void;
}

/**
 * Worlds that share one Prosody, each with its own room (`{label}1`, `{label}2` …), stand-in and store: a Prosody
 * and its accounts are made once per file instead of once per test. Not for tests that stop, kill or reconfigure
 * Prosody, or leave accounts behind that the next world would meet (IBR ghosts).
 *
 * @example
 * ```ts
 * const worlds = sharedWorlds("bridge");
 * Deno.test("…", async () => { const w = await worlds.start(); try { … } finally { await w.stop(); } });
 * worlds.stopAfterAll();
 * ```
 */
export function sharedWorlds(label: string, opts?: ProsodyOptions): SharedWorlds {
  const prosody = fileProsody(label, opts);
  let rooms = 0;
  const start = async (world: Omit<WorldOptions, "sharedProsody" | "prosody"> = {}) => {
    const room = world.room ?? `${label.replace(/[^a-z0-9]/gi, "").toLowerCase()}${++rooms}`;
    return await startWorld({ ...world, room, sharedProsody: await prosody.get() });
  };
  return {
    prosody,
    start,
    async run(body, world) {
      const w = await start(world);
      try {
        await body(w);
      } finally {
        await w.stop();
      }
    },
    stopAfterAll: () => prosody.stopAfterAll(),
  };
}
