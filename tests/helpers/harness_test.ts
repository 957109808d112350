/**
 * The e2e harness itself: the bridge's HTTP port stays bound by the world until the bridge's environment is asked
 * for, so that a server of a test file running in parallel cannot take it meanwhile (seen in CI as "the port is
 * already in use by process … (lua5.4)").
 */
import assert from "node:assert/strict";
import { startWorld } from "./harness.ts";

Deno.test("the world holds the bridge's HTTP port until the bridge's environment is asked for", async () => {
  const w = await startWorld();
  try {
    assert.throws(() => Deno.listen({ hostname: "127.0.0.1", port: w.httpPort }), Deno.errors.AddrInUse);
    assert.equal(w.env().BRIDGE_HTTP_ADDR, `127.0.0.1:${w.httpPort}`);
    const listener = Deno.listen({ hostname: "127.0.0.1", port: w.httpPort });
    listener.close();
  } finally {
    await w.stop();
  }
});
