/**
 * The download policy for files shared by URL, against real local HTTP servers: plain http only to allowed hosts
 * (redirects included), error answers and timeouts as reasons, and the size cap before and while streaming.
 */
import assert from "node:assert/strict";
import { FileUnavailable } from "../../src/core/bridge.ts";
import { openUrl } from "../../src/xmpp/file_fetch.ts";

const opts = {};

/** Runs `body` with a local server answering with `handler`; counts the requests it got. */
async function withServer(
  handler: (req: Request) => Response | Promise<Response>,
  body: (base: string, host: string, requests: () => number) => Promise<void>,
): Promise<void> {
  let count = 0;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    count++;
    return handler(req);
  });
  try {
    await body(`http://127.0.0.1:${server.addr.port}`, `127.0.0.1:${server.addr.port}`, () => count);
  } finally {
    await server.shutdown();
  }
}

/** A body of `n` bytes sent in chunks with no Content-Length (chunked), as an unbounded sender would. */
function chunked(n: number): Response {
  let left = n;
  return new Response(
    new ReadableStream<Uint8Array>({
      pull(c) {
        if (left <= 0) return c.close();
        const size = Math.min(left, 512);
        left -= size;
        c.enqueue(new Uint8Array(size).fill(1));
      },
    }),
  );
}

async function problemOf(p: Promise<unknown>): Promise<{ problem: string; message: string }> {
  const err = await p.then(() => undefined, (e) => e);
  assert.ok(err instanceof FileUnavailable, `expected a FileUnavailable, got ${err}`);
  return { problem: err.problem, message: err.message };
}

Deno.test("plain http to a host not allowed is refused before any request", opts, async () => {
  await withServer(() => new Response("x"), async (base, host, requests) => {
    const got = await problemOf(
      openUrl(`${base}/a.txt`, { maxBytes: 100, httpAllowed: () => Promise.resolve(false) }),
    );
    assert.equal(got.problem, "refused");
    assert.match(got.message, new RegExp(`plain http from ${host.replace(/\./g, "\\.")}`));
    assert.equal(requests(), 0);
  });
});

Deno.test("plain http to an allowed host streams the file, with its size and type", opts, async () => {
  await withServer(
    () => new Response("hello file", { headers: { "Content-Type": "text/plain; charset=utf-8" } }),
    async (base, host) => {
      const file = await openUrl(`${base}/a.txt`, {
        maxBytes: 100,
        httpAllowed: (h) => Promise.resolve(h === host),
      });
      assert.equal(file.size, 10);
      assert.equal(file.mimeType, "text/plain");
      assert.equal(await new Response(file.body).text(), "hello file");
    },
  );
});

Deno.test("a redirect to a host not allowed is refused", opts, async () => {
  await withServer(() => new Response("secret"), async (target, targetHost, targetRequests) => {
    await withServer(
      () => new Response(null, { status: 302, headers: { Location: `${target}/internal` } }),
      async (base, host) => {
        const got = await problemOf(
          openUrl(`${base}/a.txt`, { maxBytes: 100, httpAllowed: (h) => Promise.resolve(h === host) }),
        );
        assert.equal(got.problem, "refused");
        assert.match(got.message, new RegExp(targetHost.replace(/\./g, "\\.")));
        assert.equal(targetRequests(), 0);
      },
    );
  });
});

Deno.test("a Content-Length over the cap is refused without reading the body", opts, async () => {
  await withServer(() => new Response(new Uint8Array(5000)), async (base) => {
    const got = await problemOf(
      openUrl(`${base}/big`, { maxBytes: 1000, httpAllowed: () => Promise.resolve(true) }),
    );
    assert.deepEqual(got, {
      problem: "too-large",
      message: "it is 4.9 KiB, larger than the 1000 bytes limit",
    });
  });
});

Deno.test("a chunked body is cut off with too-large once it passes the cap", opts, async () => {
  await withServer(() => chunked(1_000_000), async (base) => {
    const file = await openUrl(`${base}/endless`, {
      maxBytes: 2000,
      httpAllowed: () => Promise.resolve(true),
    });
    assert.equal(file.size, undefined);
    let read = 0;
    const err = await (async () => {
      for await (const chunk of file.body) read += chunk.byteLength;
    })().then(() => undefined, (e) => e);
    assert.ok(err instanceof FileUnavailable && err.problem === "too-large", String(err));
    assert.ok(read <= 2000, `read ${read} bytes, no more than the cap`);
  });
});

Deno.test("an error answer and a server that never answers are reasons, not hangs", opts, async () => {
  await withServer(() => new Response("gone", { status: 404 }), async (base) => {
    const got = await problemOf(
      openUrl(`${base}/x`, { maxBytes: 10, httpAllowed: () => Promise.resolve(true) }),
    );
    assert.deepEqual(got, { problem: "failed", message: "the download failed (HTTP 404)" });
  });
  // Answers only once the client gave up, so that the server can shut down.
  const silent = (req: Request) =>
    new Promise<Response>((r) => req.signal.addEventListener("abort", () => r(new Response("late"))));
  await withServer(silent, async (base) => {
    const got = await problemOf(
      openUrl(`${base}/x`, { maxBytes: 10, httpAllowed: () => Promise.resolve(true), headersTimeoutMs: 200 }),
    );
    assert.deepEqual(got, { problem: "failed", message: "the download timed out" });
  });
});

Deno.test("only http and https addresses are fetched", opts, async () => {
  for (const url of ["ftp://example.org/a", "file:///etc/passwd", "not a url"]) {
    const got = await problemOf(openUrl(url, { maxBytes: 10, httpAllowed: () => Promise.resolve(true) }));
    assert.equal(got.problem, "refused", url);
  }
});
