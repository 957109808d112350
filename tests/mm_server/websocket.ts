/**
 * `GET /api/v4/websocket`: the upgrade (authentication at open, resuming a connection id), the
 * authentication challenge, and the client actions a bridge sends (`ping`, `user_typing`, statuses).
 *
 * @module
 */

import { AppError } from "./app_error.ts";
import type { App } from "./app.ts";
import { newEvent } from "./events.ts";
import { requestToken } from "./http.ts";
import { helloEvent, type Hub, WebConn } from "./hub.ts";
import { isValidId } from "./ids.ts";
import { hasChannelPermission } from "./permissions.ts";
import { setStatus, statusOf, userOfToken } from "./users.ts";

/** What the WebSocket endpoint needs from the server. */
export interface WebSocketDeps {
  app: App;
  hub: Hub;
  /** `server_version` of `hello` (also the `X-Version-Id` header). */
  serverVersion: string;
  /** `server_hostname` of `hello`. */
  hostname: string;
  /** How long an unauthenticated socket may stay open (5 s on the real server). */
  authTimeoutMs: number;
  /** Every socket ever upgraded and not yet closed, with a promise that settles when it closes. */
  sockets: Map<WebSocket, Promise<void>>;
  /** Test control: answer upgrades with 503, as a proxy does while the server is down. */
  refuse: { on: boolean; count: number };
  /**
   * Test control: run once when a reconnect has taken its connection back from the hub and before the new
   * socket is registered; events published meanwhile are not queued for it (as between the Go hub's
   * `CheckConn` and `Register`), and the resume still looks lossless.
   */
  beforeNextResume?: () => void;
}

function failReply(seq: unknown, err: AppError): Record<string, unknown> {
  return { status: "FAIL", seq_reply: seq, error: err.toJson("") };
}

/** Mark a connection disconnected; keep it for resumption if it was authenticated. */
export function detach(deps: WebSocketDeps, conn: WebConn): void {
  clearTimeout(conn.authTimer);
  conn.socket = null;
  if (!conn.userId) {
    deps.hub.remove(conn);
    return;
  }
  if (!deps.hub.isConnected(conn.userId)) setStatus(deps.app, conn.userId, "offline");
}

/**
 * Handle a WebSocket upgrade request. A token in the `Authorization` header or `access_token` query
 * authenticates at open; otherwise the socket must send an
 * `authentication_challenge` within the timeout. Only a socket authenticated at open can resume a
 * previous `connection_id` (the Go server looks the old connection up by the upgrade's session).
 */
export function handleWebSocket(deps: WebSocketDeps, req: Request, url: URL): Response {
  if (req.headers.get("upgrade")?.toLowerCase() !== "websocket") {
    return new Response("Bad Request\n", {
      status: 400,
      headers: { "Content-Type": "text/plain; charset=utf-8" },
    });
  }
  const { app, hub } = deps;
  if (deps.refuse.on) {
    deps.refuse.count++;
    return new Response("Service Unavailable\n", { status: 503 });
  }
  // An unknown token does not fail the upgrade (the route does not require a session): the socket just
  // starts unauthenticated and must answer the challenge.
  const token = requestToken(req, url)?.token;
  const user = token ? userOfToken(app, token) : undefined;

  let conn: WebConn | undefined;
  let resumeFrom: number | undefined;
  let refuse = false;
  const requestedId = url.searchParams.get("connection_id") ?? "";
  if (user && requestedId !== "") {
    const seqRaw = url.searchParams.get("sequence_number") ?? "";
    if (!isValidId(requestedId) || !/^\d+$/.test(seqRaw)) {
      refuse = true; // PopulateWebConnConfig fails: the server closes the socket right after the upgrade
    } else {
      conn = hub.takeInactive(user.id, requestedId);
      if (conn) {
        conn.reuseCount++;
        resumeFrom = Number(seqRaw);
        const hook = deps.beforeNextResume;
        deps.beforeNextResume = undefined;
        hook?.();
      }
    }
  }
  conn ??= new WebConn();
  if (user && token) {
    conn.userId = user.id;
    conn.token = token;
  }
  const hello = () => helloEvent(conn, deps.serverVersion, deps.hostname);

  const { socket, response } = Deno.upgradeWebSocket(req);
  deps.sockets.set(socket, new Promise((resolve) => socket.addEventListener("close", () => resolve())));
  socket.addEventListener("close", () => {
    deps.sockets.delete(socket);
    clearTimeout(conn.authTimer);
    if (conn.socket === socket) detach(deps, conn);
  });
  socket.onopen = () => {
    if (refuse) {
      socket.close();
      return;
    }
    conn.socket = socket;
    conn.lastActivityAt = Date.now(); // NewWebConn sets lastUserActivityAt, also for a resumed connection
    hub.add(conn);
    if (!conn.userId) {
      conn.authTimer = setTimeout(() => socket.close(), deps.authTimeoutMs);
      return;
    }
    if (resumeFrom === undefined) {
      hub.write(conn, hello());
      hub.flush(conn);
    } else {
      hub.resume(conn, resumeFrom, hello);
    }
    setStatus(app, conn.userId, "online");
  };
  socket.onmessage = (ev) => onMessage(deps, conn, socket, ev.data, hello);
  return response;
}

function onMessage(
  deps: WebSocketDeps,
  conn: WebConn,
  socket: WebSocket,
  raw: unknown,
  hello: () => ReturnType<typeof helloEvent>,
): void {
  const { app, hub } = deps;
  let msg: Record<string, unknown>;
  try {
    msg = JSON.parse(String(raw));
    if (msg === null || typeof msg !== "object") throw new Error("not an object");
  } catch {
    socket.close(); // the Go read pump stops on a message it cannot decode
    return;
  }
  const { action, seq } = msg;
  const data = (msg.data && typeof msg.data === "object" ? msg.data : {}) as Record<string, unknown>;
  if (typeof action !== "string" || action === "") {
    hub.reply(
      conn,
      failReply(seq, new AppError("api.web_socket_router.no_action.app_error", "No websocket action.", 400)),
    );
    return;
  }
  if (typeof seq !== "number" || seq <= 0) {
    hub.reply(
      conn,
      failReply(
        seq,
        new AppError(
          "api.web_socket_router.bad_seq.app_error",
          "Invalid sequence for websocket message.",
          400,
        ),
      ),
    );
    return;
  }

  if (action === "authentication_challenge") {
    if (conn.token) return; // already authenticated: ignored, no reply
    const user = typeof data.token === "string" ? userOfToken(app, data.token) : undefined;
    if (!user) {
      socket.close(); // bad token: closed without a reply
      return;
    }
    clearTimeout(conn.authTimer);
    conn.userId = user.id;
    conn.token = data.token as string;
    hub.write(conn, hello());
    hub.reply(conn, { status: "OK", seq_reply: seq });
    setStatus(app, user.id, "online");
    return;
  }
  if (!conn.userId) {
    hub.reply(
      conn,
      failReply(
        seq,
        new AppError(
          "api.web_socket_router.not_authenticated.app_error",
          "No websocket authentication.",
          401,
        ),
      ),
    );
    return;
  }

  switch (action) {
    case "ping":
      hub.reply(conn, {
        status: "OK",
        seq_reply: seq,
        data: { node_id: "", server_time: Date.now(), text: "pong", version: app.config.version },
      });
      return;
    case "user_typing": {
      const channel = typeof data.channel_id === "string"
        ? app.store.channels.get(data.channel_id)
        : undefined;
      const user = app.store.users.get(conn.userId)!;
      if (!channel) {
        hub.reply(
          conn,
          failReply(
            seq,
            new AppError(
              "api.websocket_handler.invalid_param.app_error",
              "Invalid channel_id parameter.",
              400,
            ),
          ),
        );
        return;
      }
      if (!hasChannelPermission(app.store, user, channel)) {
        hub.reply(
          conn,
          failReply(
            seq,
            new AppError(
              "api.context.permissions.app_error",
              "You do not have the appropriate permissions.",
              403,
            ),
          ),
        );
        return;
      }
      const parentId = typeof data.parent_id === "string" ? data.parent_id : "";
      app.publish(
        newEvent("typing", { parent_id: parentId, user_id: user.id }, {
          channelId: channel.id,
          omitUsers: [user.id],
        }),
      );
      hub.reply(conn, { status: "OK", seq_reply: seq });
      return;
    }
    case "get_statuses": {
      const statuses: Record<string, string> = {};
      for (const s of app.store.statuses.values()) statuses[s.user_id] = s.status;
      hub.reply(conn, { status: "OK", seq_reply: seq, data: statuses });
      return;
    }
    case "get_statuses_by_ids": {
      const ids = Array.isArray(data.user_ids) ? data.user_ids.map(String) : [];
      const statuses = Object.fromEntries(ids.map((id) => [id, statusOf(app.store, id).status]));
      hub.reply(conn, { status: "OK", seq_reply: seq, data: statuses });
      return;
    }
    case "presence":
    case "user_update_active_status":
    case "posted_notify_ack":
      hub.reply(conn, { status: "OK", seq_reply: seq });
      return;
    default:
      hub.reply(
        conn,
        failReply(
          seq,
          new AppError("api.web_socket_router.bad_action.app_error", "Unknown websocket action.", 501),
        ),
      );
  }
}
