/**
 * Helpers for the stand-in's own tests: real `Client4`s, real `WebSocketClient`s and raw sockets.
 *
 * @module
 */

import mm from "@mattermost/client";
import assert from "node:assert/strict";
import { type MattermostStandIn, type StandInOptions, startMattermostStandIn } from "./server.ts";

const { Client4, WebSocketClient } = mm;

/** A `Client4` type alias, since the package is CommonJS. */
export type MmClient = InstanceType<typeof Client4>;
/** The post argument `Client4.createPost` takes. */
export type ClientPost = Parameters<MmClient["createPost"]>[0];
/** The command argument `Client4.addCommand` takes. */
export type ClientCommand = Parameters<MmClient["addCommand"]>[0];

/** A `Client4` pointed at the stand-in with a token. */
export function clientFor(server: MattermostStandIn, token: string): MmClient {
  const client = new Client4();
  client.setUrl(server.url);
  client.setToken(token);
  return client;
}

/** A partial post for `createPost`/`patchPost` (Client4's types want more fields than the API needs). */
export function draft<T = ClientPost>(fields: Record<string, unknown>): T {
  return fields as unknown as T;
}

/** Assert that a Client4 call fails with this HTTP status (and server error id, when given). */
export async function rejectsWith(call: Promise<unknown>, status: number, id?: string): Promise<void> {
  await assert.rejects(call, (err: { status_code?: number; server_error_id?: string }) => {
    assert.equal(err.status_code, status, `status of ${JSON.stringify(err)}`);
    if (id !== undefined) assert.equal(err.server_error_id, id);
    return true;
  });
}

/** A WebSocket message as parsed JSON. */
// deno-lint-ignore no-explicit-any
export type WsMessage = Record<string, any>;

/** Wait until `predicate` holds, polling briefly; the timer is always cleared. */
export async function until(predicate: () => boolean, timeoutMs = 3000, what = "condition"): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A `WebSocketClient` authenticated by header at open, recording every event it accepts. */
export interface RecordingClient {
  client: InstanceType<typeof WebSocketClient>;
  events: WsMessage[];
  /** How many times the missed-message (new connection id) listener ran. */
  missed: { count: number };
  /** Wait for an event matching the predicate (among all recorded so far). */
  waitFor(predicate: (msg: WsMessage) => boolean, timeoutMs?: number): Promise<WsMessage>;
  close(): void;
}

/** Connect a real `WebSocketClient` the way the bridge should: token in the header, fast retries. */
export function connectClient(server: MattermostStandIn, token: string): RecordingClient {
  const client = new WebSocketClient({
    newWebSocketFn: (url: string) => new WebSocket(url, { headers: { Authorization: `Bearer ${token}` } }),
    minWebSocketRetryTime: 50,
    reconnectJitterRange: 1,
  });
  const events: WsMessage[] = [];
  const missed = { count: 0 };
  client.addMessageListener((msg: WsMessage) => events.push(msg));
  client.addMissedMessageListener(() => missed.count++);
  client.initialize(`${server.url.replace("http", "ws")}/api/v4/websocket`);
  return {
    client,
    events,
    missed,
    async waitFor(predicate, timeoutMs = 3000) {
      await until(() => events.some(predicate), timeoutMs, "websocket event");
      return events.find(predicate)!;
    },
    close: () => client.close(),
  };
}

/** A raw WebSocket with a message queue. */
export interface RawSocket {
  ws: WebSocket;
  messages: WsMessage[];
  /** The next unread message. */
  next(timeoutMs?: number): Promise<WsMessage>;
  send(msg: WsMessage): void;
  /** Resolves with the close code when the socket closes. */
  closed: Promise<number>;
  close(): Promise<void>;
}

/** Open a raw socket to the stand-in's WebSocket endpoint. */
export async function openRaw(
  server: MattermostStandIn,
  query = "",
  headers: Record<string, string> = {},
): Promise<RawSocket> {
  const ws = new WebSocket(`${server.url.replace("http", "ws")}/api/v4/websocket${query}`, { headers });
  const messages: WsMessage[] = [];
  let read = 0;
  ws.onmessage = (ev) => messages.push(JSON.parse(ev.data));
  const closed = new Promise<number>((resolve) => ws.addEventListener("close", (ev) => resolve(ev.code)));
  await new Promise<void>((resolve, reject) => {
    ws.onopen = () => resolve();
    ws.onerror = () => reject(new Error("websocket failed to open"));
  });
  return {
    ws,
    messages,
    async next(timeoutMs = 3000) {
      await until(() => messages.length > read, timeoutMs, "websocket message");
      return messages[read++];
    },
    send: (msg) => ws.send(JSON.stringify(msg)),
    closed,
    async close() {
      if (ws.readyState !== WebSocket.CLOSED) ws.close();
      await closed;
    },
  };
}

/** Run a test body against a fresh stand-in, closing it even when the body fails. */
export async function withStandIn(
  opts: StandInOptions,
  body: (server: MattermostStandIn) => Promise<void>,
): Promise<void> {
  const server = await startMattermostStandIn(opts);
  try {
    await body(server);
  } finally {
    await server.close();
  }
}

/** A plain `fetch` to `/api/v4{path}`, for what Client4 hides (headers, content types). */
export function apiFetch(
  server: MattermostStandIn,
  method: string,
  path: string,
  opts: { token?: string; body?: BodyInit; contentType?: string } = {},
): Promise<Response> {
  const headers: Record<string, string> = {};
  if (opts.token) headers.Authorization = `Bearer ${opts.token}`;
  if (opts.contentType) headers["Content-Type"] = opts.contentType;
  return fetch(`${server.url}/api/v4${path}`, { method, headers, body: opts.body });
}
