import assert from "node:assert/strict";
import { getLogger, type LogRecord } from "@logtape/logtape";
import { redactingFormatter, setupLogging, stopLogging } from "../../src/log.ts";
import { loadConfig, secretsOf } from "../../src/config.ts";
import { secretNames } from "../../src/settings.ts";

const SECRET = "s3cr3t-T0KEN-abcdef123456";

function record(message: unknown[], properties: Record<string, unknown>): LogRecord {
  return {
    category: ["mmxmpp", "test"],
    level: "error",
    message,
    rawMessage: "Could not log in: {error}",
    properties,
    timestamp: Date.UTC(2024, 0, 2, 3, 4, 5),
  };
}

Deno.test("the JSON formatter masks a secret value in properties and in an error message", () => {
  const error = `401 Unauthorized for token ${SECRET}`;
  const rec = record(["Could not log in: ", error, ""], {
    error,
    header: `Bearer ${SECRET}`,
    nested: { deeper: [`x${SECRET}y`] },
  });
  const line = redactingFormatter("json", [SECRET])(rec);
  assert.ok(!line.includes(SECRET), line);
  assert.ok(line.includes("***"), line);
  // The line is still valid JSON with the rest of the text intact.
  const parsed = JSON.parse(line);
  assert.equal(parsed.message, `Could not log in: "401 Unauthorized for token ***"`);
  assert.equal(parsed.properties.header, "Bearer ***");
  assert.deepEqual(parsed.properties.nested, { deeper: ["x***y"] });
});

Deno.test("the JSON formatter masks every configured secret, each wherever it occurs", () => {
  const other = "xmpp-PASSWORD-987";
  const rec = record(["a ", SECRET, " b"], { one: SECRET, two: `${other}/${other}` });
  const line = redactingFormatter("json", [SECRET, other])(rec);
  assert.ok(!line.includes(SECRET) && !line.includes(other), line);
  assert.equal(line.split("***").length - 1, 4, line);
});

Deno.test("the pretty formatter masks a secret inside a thrown Error shown in the message", () => {
  const err = new Error(`connect failed with password ${SECRET}`);
  const rec = record(["Could not log in: ", err, ""], {});
  const line = redactingFormatter("pretty", [SECRET])(rec);
  // Without redaction the formatter does print it, so this test would notice if masking stopped.
  assert.ok(redactingFormatter("pretty", [])(rec).includes(SECRET));
  assert.ok(!line.includes(SECRET), line);
  assert.ok(line.includes("***"), line);
  assert.ok(line.includes("connect failed with password"), line);
});

Deno.test("regular expression characters in a secret are matched literally", () => {
  const secret = "a.b*c+d?(e)[f]";
  const rec = record(["x ", `${secret} and aXbbbcdde`, ""], {});
  const line = redactingFormatter("pretty", [secret])(rec);
  assert.ok(!line.includes(secret), line);
  // Text that would match the secret read as a pattern is left alone.
  assert.ok(line.includes("aXbbbcdde"), line);
});

Deno.test({
  name: "a secret with quotes or backslashes is masked in JSON lines too",
  fn: () => {
    const secret = 'pa"ss\\word1';
    const rec = record(["login with ", secret, ""], { password2: secret });
    const line = redactingFormatter("json", [secret])(rec);
    const escaped = JSON.stringify(secret).slice(1, -1);
    assert.ok(!line.includes(escaped), line);
    assert.ok(!line.includes(secret), line);
  },
});

Deno.test("setupLogging drops token and password fields before they reach the sink", async () => {
  const records: LogRecord[] = [];
  await setupLogging({ level: "debug", format: "json", secrets: [SECRET], sink: (r) => records.push(r) });
  try {
    const log = getLogger(["mmxmpp", "test"]);
    log.info("Connecting as {user} with {token}", {
      user: "bridge@example.org",
      token: SECRET,
      password: "hunter2-pw",
      mmToken: SECRET,
      Authorization: `Bearer ${SECRET}`,
      channel: "town-square",
    });
  } finally {
    await stopLogging();
  }
  assert.equal(records.length, 1);
  const [r] = records;
  assert.deepEqual(Object.keys(r.properties).sort(), ["channel", "user"]);
  assert.equal(r.properties.user, "bridge@example.org");
  // The placeholder that named the token shows nothing of it.
  assert.ok(!JSON.stringify(r.message).includes(SECRET), JSON.stringify(r.message));
  assert.ok(!JSON.stringify(r.message).includes("hunter2"), JSON.stringify(r.message));
  assert.ok(JSON.stringify(r.message).includes("bridge@example.org"));
});

Deno.test("setupLogging filters records below the configured level", async () => {
  const records: LogRecord[] = [];
  await setupLogging({ level: "warn", format: "json", sink: (r) => records.push(r) });
  try {
    const log = getLogger(["mmxmpp", "test"]);
    log.debug("debug text");
    log.info("info text");
    log.warn("warn text");
    log.error("error text");
  } finally {
    await stopLogging();
  }
  assert.deepEqual(records.map((r) => r.message.join("")), ["warn text", "error text"]);
});

Deno.test("stopLogging detaches the sink", async () => {
  const records: LogRecord[] = [];
  await setupLogging({ level: "info", format: "json", sink: (r) => records.push(r) });
  getLogger(["mmxmpp", "test"]).info("before");
  await stopLogging();
  getLogger(["mmxmpp", "test"]).info("after");
  assert.deepEqual(records.map((r) => r.message.join("")), ["before"]);
});

Deno.test("every secret of the schema is masked in log lines: as is, JSON-escaped and URL-encoded", () => {
  const marker = (name: string) => `mk-${name}-&=%+/"\\`;
  const env: Record<string, string> = {
    MM_URL: "https://chat.example.org",
    XMPP_JID: "bridge@example.org",
    BRIDGE_GHOST_MODE: "component",
    XMPP_COMPONENT_JID: "mm.example.org",
  };
  // MM tokens hold no whitespace; the markers hold none either.
  for (const name of secretNames()) env[name] = marker(name);
  const loaded = loadConfig(env, () => "");
  assert.ok(loaded.ok, !loaded.ok ? loaded.errors.join("\n") : "");
  for (const format of ["json", "pretty"] as const) {
    const format_ = redactingFormatter(format, secretsOf(loaded.config));
    for (const name of secretNames()) {
      const value = marker(name);
      const text = `raw ${value} url ${encodeURIComponent(value)} json ${JSON.stringify({ v: value })}`;
      const line = format_(record(["failed: ", text, ""], { detail: text }));
      assert.ok(!line.includes(`mk-${name}`), `${name} leaked (${format}): ${line}`);
      assert.ok(line.includes("***"), line);
    }
  }
});
