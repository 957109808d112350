/**
 * `deno task try`: a local playground for mmxmpp. Starts a throwaway Prosody (from `scripts/prosody-setup.sh`,
 * run as the `prosody` user) and the project's Mattermost **stand-in** (an in-memory imitation of the Mattermost
 * API written for the tests: not a real Mattermost), creates the accounts and the channel, writes the bridge's
 * environment to a file, and then lets you chat from this terminal:
 *
 *   mm TEXT     posts TEXT as "bob" in the Mattermost channel
 *   xmpp TEXT   says TEXT as "alice" in the XMPP room
 *   quit        stops both servers (Ctrl-C or end of input does too)
 *
 * What arrives on either side is printed as `[mattermost] …` or `[xmpp] …`. Start the bridge in another terminal
 * with the printed commands, or connect any XMPP client (Gajim, Dino, profanity) with the printed account.
 *
 * Usage: deno task try [--help]
 *
 * @module
 */
import { parseArgs } from "node:util";
import { startProsody } from "../tests/helpers/prosody.ts";
import { connectXmppUser } from "../tests/helpers/xmpp_user.ts";
import { startMattermostStandIn } from "../tests/mm_server/server.ts";

const HELP = `deno task try: a local Prosody and a Mattermost stand-in to try mmxmpp on this machine.

It prints the environment for the bridge and the commands to start it, then reads lines:
  mm TEXT     post TEXT as bob in the Mattermost channel (the stand-in)
  xmpp TEXT   say TEXT as alice in the XMPP room
  quit        stop everything (Ctrl-C or end of input too)

Needs prosody (Debian: apt-get install prosody) and openssl. The Mattermost side is the project's test stand-in,
an in-memory imitation of the API for development, not a real Mattermost server.`;

const PASSWORD = "try-it-Pa55word";
const ROOM = "hall@conference.localhost";

async function main(): Promise<number> {
  const { values } = parseArgs({ options: { help: { type: "boolean", short: "h" } }, strict: true });
  if (values.help) {
    console.log(HELP);
    return 0;
  }

  const prosody = await startProsody();
  const mm = await startMattermostStandIn();
  const cleanups: (() => Promise<void>)[] = [() => mm.close(), () => prosody.stop()];
  try {
    await prosody.register("bridge", PASSWORD);
    await prosody.register("alice", PASSWORD);
    const bob = mm.createUser("bob");
    const channel = mm.createChannel("town-hall", { displayName: "Town Hall" });
    mm.addMember(channel.id, bob.id);

    const alice = await connectXmppUser(prosody, "alice", PASSWORD, { resource: "try" });
    cleanups.unshift(() => alice.stop());
    await alice.joinRoom(ROOM, "alice", { maxstanzas: 0 });

    const envFile = `${prosody.dir}/mmxmpp.env`;
    const env: Record<string, string> = {
      MM_URL: mm.url,
      MM_TOKEN: mm.bot.token,
      MM_TEAM: mm.team.name,
      XMPP_JID: "bridge@localhost",
      XMPP_PASSWORD: PASSWORD,
      XMPP_SERVICE: prosody.service,
      XMPP_CA_FILE: prosody.caFile,
      BRIDGE_MAPPINGS: `${mm.team.name}/${channel.name}=${ROOM}`,
      BRIDGE_KV_PATH: `${prosody.dir}/mmxmpp.kv`,
      LOG_FORMAT: "pretty",
    };
    await Deno.writeTextFile(envFile, Object.entries(env).map(([k, v]) => `${k}=${v}`).join("\n") + "\n");

    console.log(
      [
        "mmxmpp try-out: Prosody and the Mattermost stand-in are running (loopback only; everything is deleted on exit).",
        "",
        `  XMPP:        ${prosody.service}  (certificate ${prosody.caFile})`,
        `               accounts bridge@localhost and alice@localhost, password ${PASSWORD}; room ${ROOM}`,
        `  Mattermost:  ${mm.url}  (STAND-IN for development, not a real Mattermost)`,
        `               team ${mm.team.name}, channel ${channel.name}, user bob`,
        "",
        "Start the bridge in another terminal, from this checkout:",
        `  set -a; . ${envFile}; set +a; deno task start`,
        "",
        "Then type here:  mm TEXT  (bob posts on Mattermost)   xmpp TEXT  (alice speaks in the room)   quit",
        `An XMPP client can log in as alice@localhost at 127.0.0.1:${prosody.c2sPort} and join ${ROOM}.`,
        "",
      ].join("\n"),
    );

    // Show what arrives on each side: posts by anyone but bob, groupchat messages from anyone but alice.
    let shownPosts = 0;
    let shownMessages = alice.messages.length;
    const timer = setInterval(() => {
      const posts = mm.posts(channel.id);
      for (const post of posts.slice(shownPosts)) {
        if (post.user_id === bob.id) continue;
        const name = String(post.props?.override_username ?? "bot");
        console.log(`[mattermost] ${name}: ${post.message}`);
      }
      shownPosts = posts.length;
      for (const m of alice.messages.slice(shownMessages)) {
        if (m.room === ROOM && m.nick !== "alice" && m.body !== undefined && !m.delayed) {
          console.log(`[xmpp] ${m.nick}: ${m.body}`);
        }
      }
      shownMessages = alice.messages.length;
    }, 100);
    cleanups.unshift(() => Promise.resolve(clearInterval(timer)));

    const stop = new Promise<void>((resolve) => {
      Deno.addSignalListener("SIGINT", resolve);
      Deno.addSignalListener("SIGTERM", resolve);
    });
    await Promise.race([
      stop,
      readCommands(async (line) => {
        const [word, ...rest] = line.trim().split(" ");
        const text = rest.join(" ").trim();
        if (word === "mm" && text) await mm.postAs(bob.id, channel.id, text);
        else if (word === "xmpp" && text) await alice.sendGroupchat(ROOM, text);
        else if (word === "quit") return false;
        else if (word) console.log("type: mm TEXT | xmpp TEXT | quit");
        return true;
      }),
    ]);
    console.log("stopping Prosody and the stand-in");
    return 0;
  } finally {
    for (const cleanup of cleanups) await cleanup().catch(() => {});
  }
}

/** Feeds each line of standard input to `handle` until it answers false or the input ends. */
async function readCommands(handle: (line: string) => Promise<boolean>): Promise<void> {
  const decoder = new TextDecoder();
  let buffered = "";
  for await (const chunk of Deno.stdin.readable) {
    buffered += decoder.decode(chunk, { stream: true });
    let nl: number;
    while ((nl = buffered.indexOf("\n")) >= 0) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      try {
        if (!(await handle(line))) return;
      } catch (err) {
        console.log(`error: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
  }
}

if (import.meta.main) Deno.exit(await main());
