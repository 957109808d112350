/**
 * A small method + path router for the REST API, with `:name` path parameters.
 *
 * @module
 */

import type { RequestContext } from "./http.ts";

/** A route handler; it may throw `AppError`. */
export type Handler = (ctx: RequestContext) => Response | Promise<Response>;

interface Route {
  method: string;
  segments: string[];
  handler: Handler;
}

/** A matched route and its path parameters. */
export interface Match {
  handler: Handler;
  params: Record<string, string>;
}

/**
 * Routes relative to `/api/v4`.
 *
 * @example
 * ```ts
 * const router = new Router();
 * router.add("GET", "/posts/:post_id", (ctx) => json(200, getPost(ctx.params.post_id)));
 * router.match("GET", "/posts/abc"); // { handler, params: { post_id: "abc" } }
 * ```
 */
export class Router {
  #routes: Route[] = [];

  /** Register a handler; `:name` segments capture one path segment each. */
  add(method: string, pattern: string, handler: Handler): void {
    this.#routes.push({ method, segments: pattern.split("/").filter(Boolean), handler });
  }

  /**
   * The handler for a request, or undefined. Literal segments win over parameters so that
   * `/users/me/teams` and `/users/:user_id/…` can coexist.
   */
  match(method: string, path: string): Match | undefined {
    const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
    let best: { match: Match; literals: number } | undefined;
    for (const route of this.#routes) {
      if (route.method !== method || route.segments.length !== parts.length) continue;
      const params: Record<string, string> = {};
      let literals = 0;
      const ok = route.segments.every((seg, i) => {
        if (seg.startsWith(":")) {
          params[seg.slice(1)] = parts[i];
          return true;
        }
        literals++;
        return seg === parts[i];
      });
      if (ok && (!best || literals > best.literals)) {
        best = { match: { handler: route.handler, params }, literals };
      }
    }
    return best?.match;
  }
}
