/**
 * The HTTP entry point: rate limiting, the WebSocket upgrade, session handling and REST routing, with
 * the headers every Mattermost API response carries.
 *
 * @module
 */

import { AppError, sessionExpired } from "./app_error.ts";
import type { App } from "./app.ts";
import { errorResponse, type RequestContext, requestToken } from "./http.ts";
import { newId } from "./ids.ts";
import { type RateLimiter, rateLimitKey } from "./rate_limit.ts";
import type { Router } from "./router.ts";
import { userOfToken } from "./users.ts";
import { handleWebSocket, type WebSocketDeps } from "./websocket.ts";

const API_PREFIX = "/api/v4";

/** One handled request, for tests to inspect. */
export interface RequestLogEntry {
  method: string;
  /** Path without the query string. */
  path: string;
  /** Query string including `?`, or "". */
  query: string;
  status: number;
}

/** What the handler needs. */
export interface HandlerDeps {
  app: App;
  router: Router;
  limiter: RateLimiter;
  websocket: WebSocketDeps;
  /** `X-Version-Id`, e.g. `10.11.0.0.<hash>.false`. */
  versionId: string;
  log: RequestLogEntry[];
}

/**
 * Resolve the session like the Go `Handler.ServeHTTP`: a token in the query string is refused for REST
 * (only OAuth sessions may use it); an unknown token fails only routes that require a session, which all
 * routes here do except `/system/ping`, `/config/client` and `/license/client`.
 */
function authenticate(ctx: RequestContext, requiresSession: boolean): void {
  const found = requestToken(ctx.req, ctx.url);
  if (!found) {
    if (requiresSession) throw sessionExpired();
    return;
  }
  const user = userOfToken(ctx.app, found.token);
  if (!user) {
    if (requiresSession) throw sessionExpired();
    return;
  }
  if (found.location === "query") {
    throw new AppError(
      "api.context.token_provided.app_error",
      "Session is not OAuth but token was provided in the query string.",
      401,
    );
  }
  ctx.user = user;
  ctx.token = found.token;
}

const ANONYMOUS_ROUTES = new Set(["/system/ping", "/config/client", "/license/client"]);

async function routeRest(deps: HandlerDeps, req: Request, url: URL, requestId: string): Promise<Response> {
  const ctx: RequestContext = { req, url, params: {}, requestId, app: deps.app };
  try {
    if (!url.pathname.startsWith(API_PREFIX + "/")) {
      throw new AppError("api.context.404.app_error", "Sorry, we could not find the page.", 404);
    }
    const path = url.pathname.slice(API_PREFIX.length);
    // Gorilla falls through to the catch-all 404 route when only the method differs.
    const match = deps.router.match(req.method, path);
    if (!match) throw new AppError("api.context.404.app_error", "Sorry, we could not find the page.", 404);
    authenticate(ctx, !ANONYMOUS_ROUTES.has(path));
    // The session's activity keeps its connected websockets from the inactivity reaper (UpdateActivity).
    if (ctx.token) deps.websocket.hub.touch(ctx.token);
    ctx.params = match.params;
    return await match.handler(ctx);
  } catch (err) {
    if (err instanceof AppError) return errorResponse(err, requestId);
    return errorResponse(
      new AppError("api.context.unexpected.app_error", "An unexpected error occurred.", 500, String(err)),
      requestId,
    );
  }
}

function withHeaders(response: Response, headers: Record<string, string>): Response {
  try {
    for (const [k, v] of Object.entries(headers)) response.headers.set(k, v);
  } catch {
    // WebSocket upgrade responses have immutable headers.
  }
  return response;
}

/** Build the `Deno.serve` handler. */
export function createHandler(deps: HandlerDeps): Deno.ServeHandler<Deno.NetAddr> {
  return async (req, info) => {
    const url = new URL(req.url);
    const requestId = newId();
    let response: Response | undefined;
    let rateHeaders: Record<string, string> = {};
    const limit = deps.app.config.rateLimit;
    if (limit) {
      const key = rateLimitKey(limit, requestToken(req, url)?.token, info.remoteAddr.hostname);
      const result = deps.limiter.take(limit, key);
      rateHeaders = result.headers;
      if (result.limited) {
        response = new Response("limit exceeded\n", {
          status: 429,
          headers: { "Content-Type": "text/plain; charset=utf-8" },
        });
      }
    }
    if (!response) {
      response = url.pathname === `${API_PREFIX}/websocket`
        ? handleWebSocket(deps.websocket, req, url)
        : await routeRest(deps, req, url, requestId);
    }
    withHeaders(response, { ...rateHeaders, "X-Request-Id": requestId, "X-Version-Id": deps.versionId });
    deps.log.push({ method: req.method, path: url.pathname, query: url.search, status: response.status });
    return response;
  };
}
