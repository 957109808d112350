/**
 * The doctor's Mattermost steps: the server answers (and its version), the token (and the bot's roles), the
 * websocket's `hello`, each mapped channel, posting overrides, the bot's right to manage the slash command, the
 * command's callback URL, and with puppets the admin token and personal access tokens.
 *
 * @module
 */
import { call, type Client4, createClient, statusOf } from "../mattermost/api.ts";
import { CALLBACK_PATH, MANAGE_PERMISSION, managePermissionFix, TRIGGER } from "../mattermost/slash.ts";
import { errorMessage } from "../core/errors.ts";
import { explainUnreachable } from "../mattermost/explain.ts";
import type { DoctorSettings } from "./options.ts";
import { StepFailure, type StepSpec } from "./report.ts";
import { MM_ID } from "../settings.ts";
import { TOKENS_OFF_FIX } from "../mattermost/puppets.ts";

const TIMEOUT_MS = 10_000;

interface Me {
  id: string;
  username: string;
  is_bot?: boolean;
  roles: string;
}

/**
 * Builds the Mattermost steps for `s`.
 *
 * @example
 * ```ts
 * for (const step of mattermostSteps(settings)) await checkup.run(step);
 * ```
 */
export function mattermostSteps(s: DoctorSettings): StepSpec[] {
  const mm = s.config.mattermost;
  const base = mm.url;
  let client: Client4 | undefined;
  let me: Me | undefined;

  return [
    {
      id: "mattermost.reachable",
      name: "Mattermost reachable",
      fix: "check MM_URL (the address Mattermost opens at in a browser), DNS, proxies and firewalls",
      run: async () => {
        const res = await timedFetch(`${base}/api/v4/system/ping`).catch((err) => {
          const f = explainUnreachable(err, base);
          throw new StepFailure(`cannot reach ${base}: ${f.reason}`, f.hint);
        });
        const body = await res.json().catch(() => undefined);
        if (!res.ok || body?.status !== "OK") {
          throw new StepFailure(
            `${base}/api/v4/system/ping answered HTTP ${res.status}${
              body ? "" : " without JSON"
            }: not Mattermost?`,
            "MM_URL must be Mattermost's base URL, e.g. https://chat.example.org (no /api/v4, no team)",
          );
        }
        // X-Version-Id is "major.minor.patch.build.hash.enterprise".
        const version = res.headers.get("X-Version-Id")?.split(".").slice(0, 3).join(".") ?? "unknown";
        return { detail: `${base} answers, server version ${version}` };
      },
    },
    {
      id: "mattermost.token",
      name: "Mattermost token",
      fix: "check MM_TOKEN (a bot or personal access token; System Console → Integrations → Bot Accounts)",
      needs: ["mattermost.reachable"],
      run: async () => {
        client = createClient(base, mm.token);
        me = await call("read the bot's own account (/users/me)", () => client!.getMe()) as Me;
        return {
          detail: `${base} as ${me.username}${me.is_bot ? " (bot)" : " (not a bot)"}, roles ${me.roles}`,
        };
      },
    },
    {
      id: "mattermost.websocket",
      name: "Mattermost websocket",
      fix: "the proxy in front of Mattermost must pass websocket upgrades on /api/v4/websocket",
      needs: ["mattermost.token"],
      run: () => websocketHello(base, mm.token),
    },
    {
      id: "mattermost.channels",
      name: "Mattermost mapped channels",
      fix: "check BRIDGE_MAPPINGS",
      needs: ["mattermost.token"],
      skip: s.config.bridge.mappings.length === 0
        ? "no BRIDGE_MAPPINGS (mappings made with /xmppbridge map are listed by /xmppbridge list)"
        : undefined,
      run: () => mappedChannels(client!, me!, s),
    },
    {
      id: "mattermost.overrides",
      name: "Mattermost posting overrides",
      fix:
        "System Console → Integrations → Integration Management → Enable integrations to override usernames " +
        "(ServiceSettings.EnablePostUsernameOverride = true), or set BRIDGE_MM_DISPLAY=prefix",
      needs: ["mattermost.token"],
      run: async () => {
        // With the bot's session: anonymous callers get the limited config, which lacks the override settings.
        const cfg = await call(
          "read the client configuration (/config/client)",
          () => client!.getClientConfig(),
        ) as unknown as Record<string, string>;
        const username = cfg.EnablePostUsernameOverride === "true";
        const icon = cfg.EnablePostIconOverride === "true"
          ? "icon override allowed too"
          : "icon override off";
        if (s.config.bridge.mmDisplay === "prefix") {
          return {
            detail: `not needed (BRIDGE_MM_DISPLAY=prefix); username override is ${username ? "on" : "off"}`,
          };
        }
        if (!username) {
          throw new StepFailure(
            "EnablePostUsernameOverride is off: XMPP users would all show as the bot",
          );
        }
        return { detail: `EnablePostUsernameOverride is on (${icon})` };
      },
    },
    {
      id: "mattermost.command_permission",
      name: "Mattermost slash command permission",
      fix: managePermissionFix(
        mm.team,
        s.config.bridge.publicUrl ? s.config.bridge.publicUrl + CALLBACK_PATH : undefined,
      ),
      needs: ["mattermost.token"],
      skip: !s.config.bridge.publicUrl && mm.commandToken
        ? "MM_COMMAND_TOKEN is set and BRIDGE_PUBLIC_URL is not: only the command made by hand is used"
        : undefined,
      run: () => commandPermission(client!, me!, s),
    },
    {
      id: "mattermost.command",
      name: "Mattermost command callback",
      fix:
        "start the bridge (it serves the callback on BRIDGE_HTTP_ADDR) and make BRIDGE_PUBLIC_URL reach it",
      skip: s.config.bridge.publicUrl ? undefined : "BRIDGE_PUBLIC_URL is not set",
      run: () => commandCallback(s.config.bridge.publicUrl! + CALLBACK_PATH),
    },
    {
      id: "mattermost.puppets",
      name: "Mattermost puppets",
      fix: "set MM_ADMIN_TOKEN to a personal access token of a system admin (Profile → Security → Personal " +
        "Access Tokens, as the admin)",
      needs: ["mattermost.reachable"],
      skip: mm.puppets ? undefined : "BRIDGE_MM_PUPPETS is off",
      run: () => puppetsReady(base, mm.puppets!.adminToken),
    },
  ];
}

/**
 * Whether puppets can be made and can speak: `MM_ADMIN_TOKEN` is a system admin's, and the server has personal
 * access tokens on (else the bridge posts for XMPP users as the bot, as the start log says too).
 */
async function puppetsReady(base: string, adminToken: string): Promise<{ detail: string }> {
  const admin = createClient(base, adminToken);
  const me = await call("read the account of MM_ADMIN_TOKEN (/users/me)", () => admin.getMe()) as Me;
  if (!me.roles.split(" ").includes("system_admin")) {
    throw new StepFailure(
      `MM_ADMIN_TOKEN belongs to ${me.username} (roles ${me.roles}), who is not a system admin: puppets cannot ` +
        "be made",
    );
  }
  const cfg = await call(
    "read the client configuration (/config/client)",
    () => admin.getClientConfig(),
  ) as unknown as Record<string, string>;
  if (cfg.EnableUserAccessTokens !== "true") {
    throw new StepFailure(
      "personal access tokens are off (EnableUserAccessTokens): puppets cannot post, so the bridge posts for " +
        "XMPP users as the bot",
      TOKENS_OFF_FIX,
    );
  }
  return { detail: `MM_ADMIN_TOKEN is ${me.username}'s (system admin); personal access tokens are on` };
}

async function timedFetch(url: string, init: RequestInit = {}): Promise<Response> {
  return await fetch(url, { ...init, signal: AbortSignal.timeout(TIMEOUT_MS) });
}

/** Opens the websocket authenticated by header (as the bridge does) and waits for `hello`. */
function websocketHello(base: string, token: string): Promise<{ detail: string }> {
  const url = `${base.replace(/^http/, "ws")}/api/v4/websocket`;
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers: { Authorization: `Bearer ${token}` } });
    const t0 = performance.now();
    const done = (fn: () => void) => {
      clearTimeout(timer);
      ws.onmessage = ws.onclose = ws.onerror = null;
      ws.close();
      fn();
    };
    const timer = setTimeout(
      () => done(() => reject(new StepFailure(`no hello from ${url} within ${TIMEOUT_MS / 1000} s`))),
      TIMEOUT_MS,
    );
    ws.onmessage = (ev) => {
      let msg: { event?: string; data?: { server_version?: string } };
      try {
        msg = JSON.parse(String(ev.data));
      } catch {
        return;
      }
      if (msg.event !== "hello") return;
      const version = msg.data?.server_version?.split(".").slice(0, 3).join(".");
      done(() =>
        resolve({
          detail: `hello after ${Math.round(performance.now() - t0)} ms${
            version ? ` (server ${version})` : ""
          }`,
        })
      );
    };
    ws.onerror = (ev) => {
      const f = explainUnreachable((ev as ErrorEvent).error ?? (ev as ErrorEvent).message, url);
      done(() => reject(new StepFailure(`cannot open ${url}: ${f.reason}`, f.hint)));
    };
    ws.onclose = (ev) =>
      done(() =>
        reject(
          new StepFailure(`${url} closed before hello (code ${ev.code}${ev.reason ? `: ${ev.reason}` : ""})`),
        )
      );
  });
}

/**
 * Each static mapping's channel: found, readable, and the bot a member. A public channel the bot is not in yet is
 * only a note when the bot is in its team: the bridge joins public channels by itself at start (the team role
 * `team_user` grants `join_public_channels`); a private one needs an invitation.
 */
async function mappedChannels(client: Client4, me: Me, s: DoctorSettings): Promise<{ detail: string }> {
  const members: string[] = [];
  const joinable: string[] = [];
  const problems: string[] = [];
  let fix: string | undefined;
  for (const mapping of s.config.bridge.mappings) {
    const ref = mapping.mattermost;
    const [team, name] = ref.includes("/") ? ref.split("/", 2) : [s.config.mattermost.team, ref];
    let channel: { id: string; type: string; name: string; team_id: string };
    try {
      channel = MM_ID.test(ref)
        ? await client.getChannel(ref)
        : await client.getChannelByNameAndTeamName(team!, name);
    } catch (err) {
      const status = statusOf(err);
      problems.push(
        status === 404 || status === 403
          ? `${ref}: not found, or not visible to ${me.username} (HTTP ${status})`
          : `${ref}: ${errorMessage(err)}`,
      );
      fix ??=
        `check the channel in BRIDGE_MAPPINGS, and that ${me.username} is in its team (and, for a private ` +
        `channel, invited with /invite @${me.username})`;
      continue;
    }
    const member = await isMember(() => client.getChannelMember(channel.id, me.id));
    if (member === true) {
      members.push(ref);
      continue;
    }
    if (member !== false) {
      problems.push(`${ref}: membership check failed (${member})`);
      continue;
    }
    if (channel.type !== "O") {
      problems.push(`${ref}: ${me.username} is not a member of this private channel`);
      fix ??= `invite the bot in each private channel named: /invite @${me.username}`;
      continue;
    }
    // Joining a public channel takes membership of its team (the server refuses to add anyone else).
    const inTeam = await isMember(() => client.getTeamMember(channel.team_id, me.id));
    if (inTeam === true) joinable.push(ref);
    else {
      problems.push(
        `${ref}: ${me.username} is neither a member of this channel nor of its team` +
          (inTeam === false ? "" : ` (${inTeam})`),
      );
      fix ??= `add ${me.username} to the channel's team (System Console → User Management → Teams), or ` +
        `/invite @${me.username} in the channel`;
    }
  }
  if (problems.length > 0) throw new StepFailure(problems.join("; "), fix);
  const count = members.length + joinable.length;
  if (joinable.length === 0) {
    return { detail: `${count} channel(s) readable, ${me.username} a member of each: ${members.join(", ")}` };
  }
  return {
    detail: `${count} channel(s) readable` +
      (members.length > 0 ? `, ${me.username} a member of ${members.join(", ")}` : "") +
      `; note: ${me.username} is not in ${
        joinable.join(", ")
      } yet, a public channel of its team: the bridge ` +
      "will join it at start",
  };
}

/** True for a membership, false when the server says there is none (403/404), else the error's message. */
function isMember(lookup: () => Promise<unknown>): Promise<boolean | string> {
  return lookup().then(() => true, (err) => {
    const status = statusOf(err);
    return status === 403 || status === 404 ? false : errorMessage(err);
  });
}

/**
 * Whether the bot may list (and so register, and read the token of) slash commands in its team: what
 * `BRIDGE_PUBLIC_URL` and token rotation need. A bot has `system_user` + `team_user`, which lack
 * `manage_slash_commands`; a team admin has it.
 */
async function commandPermission(client: Client4, me: Me, s: DoctorSettings): Promise<{ detail: string }> {
  const teamName = s.config.mattermost.team;
  let teams: { id: string; name: string }[];
  try {
    teams = teamName ? [await client.getTeamByName(teamName)] : await client.getMyTeams();
  } catch (err) {
    const status = statusOf(err);
    if (status === 403 || status === 404) {
      throw new StepFailure(
        `team ${teamName} (MM_TEAM) does not exist or ${me.username} is not a member (HTTP ${status})`,
        `add ${me.username} to team ${teamName} (System Console → User Management → Teams → ${teamName} → ` +
          "Add Members), or correct MM_TEAM",
      );
    }
    throw err;
  }
  if (teams.length === 0) {
    throw new StepFailure(
      `${me.username} is in no team`,
      `add ${me.username} to the team of the mapped channels`,
    );
  }
  const found: string[] = [];
  for (const team of teams) {
    let commands: { trigger: string; url: string }[];
    try {
      commands = await client.getCustomTeamCommands(team.id);
    } catch (err) {
      const status = statusOf(err);
      if (status !== 403) throw err;
      const lacks =
        `${me.username} lacks the permission ${MANAGE_PERMISSION} in team ${team.name} (HTTP 403)`;
      if (s.config.mattermost.commandToken) {
        return {
          detail: `${lacks}; the command made by hand is accepted with MM_COMMAND_TOKEN (a regenerated ` +
            "token needs MM_COMMAND_TOKEN updated and a restart)",
        };
      }
      throw new StepFailure(
        `${lacks}: the bridge cannot register /${TRIGGER} or read its token, so it runs without the command`,
      );
    }
    for (const c of commands) if (c.trigger === TRIGGER) found.push(`${team.name}: ${c.url}`);
  }
  const names = teams.map((t) => t.name).join(", ");
  return {
    detail: `${me.username} may manage slash commands in ${names}; ` +
      (found.length > 0
        ? `/${TRIGGER} calls ${found.join("; ")}`
        : s.config.bridge.publicUrl
        ? `/${TRIGGER} is not registered yet (the bridge creates it when it starts)`
        : `no /${TRIGGER} command yet: create it by hand or set BRIDGE_PUBLIC_URL`),
  };
}

/** Any HTTP answer from the callback URL counts: Mattermost only needs to reach it. */
async function commandCallback(url: string): Promise<{ detail: string }> {
  const res = await timedFetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: "",
  }).catch((err) => {
    throw new StepFailure(`nothing answers at ${url} from this host: ${explainUnreachable(err, url).reason}`);
  });
  await res.body?.cancel();
  const note = res.status === 401
    ? "the bridge refuses calls without the command token, as it should"
    : res.status === 404
    ? "reachable, but the path is not served: is BRIDGE_PUBLIC_URL the bridge's address?"
    : "reachable";
  return {
    detail: `${url} answers HTTP ${res.status} (${note}); Mattermost must reach it too ` +
      "(AllowedUntrustedInternalConnections for private addresses)",
  };
}
