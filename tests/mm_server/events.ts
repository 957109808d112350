/**
 * WebSocket events (`model.WebSocketEvent`) and who they are for (`model.WebsocketBroadcast`).
 *
 * @module
 */

/** Who receives an event: the Go server's `WebsocketBroadcast` (its JSON-visible part). */
export interface Broadcast {
  omit_users: Record<string, boolean> | null;
  user_id: string;
  channel_id: string;
  team_id: string;
  connection_id: string;
  omit_connection_id: string;
}

/**
 * Which sessions may see an event besides the broadcast rules: the server sends a sanitized copy to
 * non-admins (`ContainsSanitizedData`) and a full copy to admins (`ContainsSensitiveData`).
 */
export type Audience = "all" | "non_admins" | "admins";

/** An event before a connection numbers it; `seq` is added per connection when it is written. */
export interface WsEvent {
  event: string;
  data: Record<string, unknown>;
  broadcast: Broadcast;
  audience: Audience;
}

/** Where an event goes: at most one of channel, user, team; nothing means everyone. */
export interface EventTarget {
  channelId?: string;
  userId?: string;
  teamId?: string;
  omitUsers?: string[];
  connectionId?: string;
  audience?: Audience;
}

/**
 * Build an event like `model.NewWebSocketEvent(event, teamId, channelId, userId, omitUsers, "")`.
 *
 * @example
 * ```ts
 * const ev = newEvent("typing", { parent_id: "", user_id: uid }, { channelId, omitUsers: [uid] });
 * ```
 */
export function newEvent(event: string, data: Record<string, unknown>, target: EventTarget = {}): WsEvent {
  const omit = target.omitUsers?.length ? Object.fromEntries(target.omitUsers.map((u) => [u, true])) : null;
  return {
    event,
    data,
    broadcast: {
      omit_users: omit,
      user_id: target.userId ?? "",
      channel_id: target.channelId ?? "",
      team_id: target.teamId ?? "",
      connection_id: target.connectionId ?? "",
      omit_connection_id: "",
    },
    audience: target.audience ?? "all",
  };
}

/** The wire form of an event numbered `seq` on one connection: `{event, data, broadcast, seq}`. */
export function encodeEvent(ev: WsEvent, seq: number): string {
  return JSON.stringify({ event: ev.event, data: ev.data, broadcast: ev.broadcast, seq });
}
