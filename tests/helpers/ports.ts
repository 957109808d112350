/**
 * Finds free TCP ports on the loopback interface for test servers.
 *
 * @module
 */

/**
 * Returns a TCP port on 127.0.0.1 that was free a moment ago.
 *
 * The port is found by binding port 0 and closing the listener at once, so another process (or another test in
 * this one) may take it before the caller binds it. Callers that start a server on it should be ready to retry
 * with a new port when the bind fails; within one test process the kernel rarely hands out the same ephemeral
 * port twice in a row, which keeps the race rare.
 *
 * @example
 * ```ts
 * const port = freePort();
 * const server = Deno.listen({ hostname: "127.0.0.1", port });
 * ```
 */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    return (listener.addr as Deno.NetAddr).port;
  } finally {
    listener.close();
  }
}
