/**
 * The HTTP edge of the REST API: the per-request context, authentication, strict JSON bodies and
 * responses shaped like the Go server's.
 *
 * @module
 */

import { AppError, invalidBodyParam, sessionExpired } from "./app_error.ts";
import type { App } from "./app.ts";
import type { User } from "./model.ts";

/** Everything a route handler gets. */
export interface RequestContext {
  /** The incoming request. */
  req: Request;
  /** Its parsed URL. */
  url: URL;
  /** Path parameters, e.g. `{ post_id: "…" }`. */
  params: Record<string, string>;
  /** The id echoed in `X-Request-Id` and in error bodies. */
  requestId: string;
  /** Server state and configuration. */
  app: App;
  /** The authenticated user, if the request carried a valid token. */
  user?: User;
  /** The token that authenticated the request. */
  token?: string;
}

/** Where a request's token was found. */
export type TokenLocation = "header" | "cookie" | "query";

/**
 * The token a request carries, looked up where the Go server looks (`ParseAuthTokenFromRequest`):
 * `Authorization: Bearer|Token …` (case-insensitive scheme), the `MMAUTHTOKEN` cookie, then the
 * `access_token` query parameter.
 */
export function requestToken(req: Request, url: URL): { token: string; location: TokenLocation } | undefined {
  const auth = req.headers.get("authorization");
  const match = auth?.match(/^(bearer|token)\s+(\S+)$/i);
  if (match) return { token: match[2], location: "header" };
  const cookie = req.headers.get("cookie")?.match(/(?:^|;\s*)MMAUTHTOKEN=([^;]+)/);
  if (cookie) return { token: cookie[1], location: "cookie" };
  const query = url.searchParams.get("access_token");
  if (query) return { token: query, location: "query" };
  return undefined;
}

/** The authenticated user or a 401 (`api.context.session_expired.app_error`). */
export function requireUser(ctx: RequestContext): User {
  if (!ctx.user) throw sessionExpired();
  return ctx.user;
}

/**
 * Read a JSON body. The stand-in's contract is stricter than the Go server, which decodes whatever it is
 * sent: a `Content-Type` other than exactly `application/json` gets 415, so a client that labels JSON
 * wrongly is caught. A body that does not parse gets 400 `api.context.invalid_body_param.app_error`.
 */
export async function readJson(ctx: RequestContext, name: string): Promise<unknown> {
  const type = ctx.req.headers.get("content-type");
  if (type !== "application/json") {
    throw new AppError(
      "api.context.unsupported_media_type.app_error",
      `Content-Type must be application/json, got ${type === null ? "none" : JSON.stringify(type)}.`,
      415,
    );
  }
  const text = await ctx.req.text();
  try {
    return JSON.parse(text);
  } catch (err) {
    throw invalidBodyParam(name, String(err));
  }
}

/** Read a JSON object body (400 when it is not an object). */
export async function readJsonObject(ctx: RequestContext, name: string): Promise<Record<string, unknown>> {
  const body = await readJson(ctx, name);
  if (body === null || typeof body !== "object" || Array.isArray(body)) throw invalidBodyParam(name);
  return body as Record<string, unknown>;
}

/** A JSON response with `Content-Type: application/json` exactly (Client4 compares it with `===`). */
export function json(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json" } });
}

/** The `{"status":"OK"}` body of deletes and state changes. */
export function statusOk(): Response {
  return json(200, { status: "OK" });
}

/** An error response in the Go server's shape. */
export function errorResponse(err: AppError, requestId: string): Response {
  return json(err.statusCode, err.toJson(requestId));
}

/** A non-negative integer query parameter, or the default; 400 when malformed. */
export function intParam(url: URL, name: string, fallback: number, max = Number.MAX_SAFE_INTEGER): number {
  const raw = url.searchParams.get(name);
  if (raw === null || raw === "") return fallback;
  if (!/^\d+$/.test(raw)) {
    throw new AppError(
      "api.context.invalid_url_param.app_error",
      `Invalid or missing ${name} parameter in request URL.`,
      400,
    );
  }
  return Math.min(Number(raw), max);
}
