import assert from "node:assert/strict";
import { type Config, loadConfig, maskedConfig, type ReadFile, secretsOf } from "../../src/config.ts";
import { secretNames, settingList } from "../../src/settings.ts";

const TOKEN = "tok3n-VALUE-9f8e7d6c5b4a";
const PASSWORD = "p4ss-W0RD-a1b2c3";
const CMD_TOKEN = "cmd-T0KEN-zyxwvu";

/** The smallest valid environment. */
function baseEnv(): Record<string, string | undefined> {
  return {
    MM_URL: "https://chat.example.org",
    MM_TOKEN: TOKEN,
    XMPP_JID: "Bridge@Example.org",
    XMPP_PASSWORD: PASSWORD,
  };
}

/** A readFile that serves `files` and throws NotFound for anything else, recording what was asked. */
function fakeFiles(files: Record<string, string>, asked: string[] = []): ReadFile {
  return (path) => {
    asked.push(path);
    if (path in files) return files[path];
    throw new Deno.errors.NotFound(`No such file or directory (os error 2): readfile '${path}'`);
  };
}

const noFiles = fakeFiles({});

function ok(env: Record<string, string | undefined>, readFile: ReadFile = noFiles, isTty = false): Config {
  const res = loadConfig(env, readFile, isTty);
  if (!res.ok) assert.fail(`expected a valid config, got:\n${res.errors.join("\n")}`);
  return res.config;
}

function errorsOf(env: Record<string, string | undefined>, readFile: ReadFile = noFiles): string[] {
  const res = loadConfig(env, readFile);
  if (res.ok) assert.fail("expected configuration errors, got a valid config");
  return res.errors;
}

/** Asserts that exactly one error line names `variable`, and returns it. */
function oneErrorAbout(errors: string[], variable: string): string {
  const lines = errors.filter((e) => e.startsWith(variable));
  assert.equal(lines.length, 1, `expected one error about ${variable}, got:\n${errors.join("\n")}`);
  return lines[0];
}

function assertNoSecret(text: string, secrets = [TOKEN, PASSWORD, CMD_TOKEN]): void {
  for (const s of secrets) assert.ok(!text.includes(s), `secret ${s} leaked into: ${text}`);
}

Deno.test("an empty environment gives one error line per required variable, each naming it", () => {
  const errors = errorsOf({});
  assert.equal(errors.length, 4, errors.join("\n"));
  for (const name of ["MM_URL", "MM_TOKEN", "XMPP_JID", "XMPP_PASSWORD"]) {
    assert.match(oneErrorAbout(errors, name), /required/);
  }
});

Deno.test("each required variable missing on its own is reported by name, and only it", () => {
  for (const name of ["MM_URL", "MM_TOKEN", "XMPP_JID", "XMPP_PASSWORD"]) {
    const env = baseEnv();
    delete env[name];
    const errors = errorsOf(env);
    assert.equal(errors.length, 1, `${name}: ${errors.join("\n")}`);
    assert.ok(errors[0].startsWith(name), errors[0]);
  }
});

Deno.test("a required variable set to blanks counts as missing", () => {
  const errors = errorsOf({ ...baseEnv(), MM_URL: "   ", XMPP_PASSWORD: " " });
  assert.equal(errors.length, 2, errors.join("\n"));
  oneErrorAbout(errors, "MM_URL");
  oneErrorAbout(errors, "XMPP_PASSWORD");
});

Deno.test("MM_URL without a scheme is refused with a hint to add it", () => {
  for (const url of ["chat.example.org", "localhost:8065"]) {
    const line = oneErrorAbout(errorsOf({ ...baseEnv(), MM_URL: url }), "MM_URL");
    assert.ok(line.includes(`has no scheme: use https://${url}`), line);
  }
  const ftp = oneErrorAbout(errorsOf({ ...baseEnv(), MM_URL: "ftp://chat.example.org" }), "MM_URL");
  assert.match(ftp, /"ftp:\/\/chat\.example\.org" is not an http\(s\) URL/);
});

Deno.test("MM_URL is kept without its trailing slash", () => {
  assert.equal(
    ok({ ...baseEnv(), MM_URL: "https://chat.example.org/" }).mattermost.url,
    "https://chat.example.org",
  );
  assert.equal(
    ok({ ...baseEnv(), MM_URL: "http://127.0.0.1:8065/mm/" }).mattermost.url,
    "http://127.0.0.1:8065/mm",
  );
});

Deno.test("XMPP_JID without @ (or with a resource) is refused as not a bare JID", () => {
  for (const jid of ["bridge.example.org", "bridge@example.org/res", "@example.org"]) {
    const line = oneErrorAbout(errorsOf({ ...baseEnv(), XMPP_JID: jid }), "XMPP_JID");
    assert.match(line, /not a bare JID/);
    assert.match(line, /local@domain/);
  }
});

Deno.test("bad BRIDGE_MAPPINGS entries are each named in their own error line", () => {
  const good = "myteam/town-square=town@conference.example.org";
  const env = {
    ...baseEnv(),
    BRIDGE_MAPPINGS: `${good}, noequals, a/b=notajid, x/y=room@conf=extra`,
  };
  const errors = errorsOf(env);
  const lines = errors.filter((e) => e.startsWith("BRIDGE_MAPPINGS"));
  assert.equal(lines.length, 3, errors.join("\n"));
  assert.ok(lines.some((l) => l.includes('"noequals"') && l.includes("expected one '='")), lines.join("\n"));
  assert.ok(lines.some((l) => l.includes('"a/b=notajid"') && l.includes("not a room JID")), lines.join("\n"));
  assert.ok(lines.some((l) => l.includes('"x/y=room@conf=extra"')), lines.join("\n"));
  assert.ok(!lines.some((l) => l.includes(good)), "the good entry must not be reported");
});

Deno.test("a bare channel name in BRIDGE_MAPPINGS needs MM_TEAM", () => {
  const env = { ...baseEnv(), BRIDGE_MAPPINGS: "town-square=town@conference.example.org" };
  const line = oneErrorAbout(errorsOf(env), "BRIDGE_MAPPINGS");
  assert.match(line, /neither team\/channel nor a 26-character channel id/);
  const config = ok({ ...env, MM_TEAM: "myteam" });
  assert.deepEqual(config.bridge.mappings, [{
    mattermost: "town-square",
    xmpp: "town@conference.example.org",
  }]);
});

Deno.test("a valid BRIDGE_MAPPINGS list parses to network refs, room JIDs lowercased", () => {
  const id = "abcdefghijklmnopqrstuvwxyz";
  const config = ok({
    ...baseEnv(),
    BRIDGE_MAPPINGS: ` myteam/town-square = Town@Conference.Example.org ,${id}=dev@conference.example.org,`,
  });
  assert.deepEqual(config.bridge.mappings, [
    { mattermost: "myteam/town-square", xmpp: "town@conference.example.org" },
    { mattermost: id, xmpp: "dev@conference.example.org" },
  ]);
  assert.deepEqual(ok(baseEnv()).bridge.mappings, []);
});

Deno.test("MM_TOKEN and MM_TOKEN_FILE both set is refused without reading the file", () => {
  const asked: string[] = [];
  const errors = errorsOf(
    { ...baseEnv(), MM_TOKEN_FILE: "/run/credentials/mm_token" },
    fakeFiles({ "/run/credentials/mm_token": "other" }, asked),
  );
  const line = oneErrorAbout(errors, "MM_TOKEN");
  assert.match(line, /MM_TOKEN and MM_TOKEN_FILE are both set/);
  assert.deepEqual(asked, []);
  assertNoSecret(errors.join("\n"));
});

Deno.test("an unreadable MM_TOKEN_FILE is named by its path and the error holds no secret", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mmxmpp-config-" });
  try {
    const missing = `${dir}/no-such-token`;
    const env = {
      ...baseEnv(),
      MM_TOKEN: undefined,
      MM_TOKEN_FILE: missing,
      XMPP_PASSWORD: undefined,
      XMPP_PASSWORD_FILE: `${dir}/pw`,
    };
    await Deno.writeTextFile(`${dir}/pw`, PASSWORD);
    // The real file reader: the password file is read, the token file is not there.
    const res = loadConfig(env);
    assert.equal(res.ok, false);
    if (res.ok) return;
    assert.equal(res.errors.length, 1, res.errors.join("\n"));
    assert.ok(res.errors[0].startsWith("MM_TOKEN_FILE"), res.errors[0]);
    assert.ok(res.errors[0].includes(missing), res.errors[0]);
    assert.match(res.errors[0], /cannot read/);
    assertNoSecret(res.errors.join("\n"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("an empty MM_TOKEN_FILE is refused by path", () => {
  const errors = errorsOf(
    { ...baseEnv(), MM_TOKEN: undefined, MM_TOKEN_FILE: "/secrets/tok" },
    fakeFiles({ "/secrets/tok": " \n" }),
  );
  assert.match(oneErrorAbout(errors, "MM_TOKEN_FILE"), /\/secrets\/tok is empty/);
});

Deno.test("the _FILE form is read from its file: a token is trimmed, a password loses only its final newline", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mmxmpp-config-" });
  try {
    await Deno.writeTextFile(`${dir}/token`, `  ${TOKEN}\n`);
    await Deno.writeTextFile(`${dir}/password`, ` ${PASSWORD}\r\n`);
    const env = {
      MM_URL: "https://chat.example.org",
      MM_TOKEN_FILE: `${dir}/token`,
      XMPP_JID: "bridge@example.org",
      XMPP_PASSWORD_FILE: `${dir}/password`,
    };
    const config = ok(env, (p) => Deno.readTextFileSync(p));
    assert.equal(config.mattermost.token, TOKEN);
    assert.equal(config.xmpp.password, ` ${PASSWORD}`, "a leading space may be part of a password");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a token with whitespace inside is refused without echoing it", () => {
  const errors = errorsOf({ ...baseEnv(), MM_TOKEN: "abc def-secret-part" });
  const line = oneErrorAbout(errors, "MM_TOKEN");
  assert.match(line, /whitespace/);
  assert.ok(!line.includes("def-secret-part"), line);
});

Deno.test("XMPP_SERVICE defaults to STARTTLS on port 5222 of the JID's domain", () => {
  const config = ok(baseEnv());
  assert.equal(config.xmpp.service, "xmpp://example.org:5222");
  assert.equal(config.xmpp.domain, "example.org");
});

Deno.test("XMPP_SERVICE gets the default port of its scheme: 5222 for xmpp, 5223 for xmpps", () => {
  assert.equal(
    ok({ ...baseEnv(), XMPP_SERVICE: "xmpp://xmpp.example.net" }).xmpp.service,
    "xmpp://xmpp.example.net:5222",
  );
  assert.equal(
    ok({ ...baseEnv(), XMPP_SERVICE: "xmpps://xmpp.example.net" }).xmpp.service,
    "xmpps://xmpp.example.net:5223",
  );
  assert.equal(
    ok({ ...baseEnv(), XMPP_SERVICE: "xmpps://127.0.0.1:15223" }).xmpp.service,
    "xmpps://127.0.0.1:15223",
  );
  // The certificate name stays the JID's domain whatever host the service names.
  assert.equal(ok({ ...baseEnv(), XMPP_SERVICE: "xmpp://127.0.0.1:5222" }).xmpp.domain, "example.org");
});

Deno.test("XMPP_SERVICE with another scheme or no host is refused", () => {
  for (const service of ["https://xmpp.example.net:5222", "xmpp.example.net:5222", "xmpp:", "tcp://h:1"]) {
    const line = oneErrorAbout(errorsOf({ ...baseEnv(), XMPP_SERVICE: service }), "XMPP_SERVICE");
    assert.match(line, /xmpp:\/\/host:port/);
    assert.ok(line.includes(service), line);
  }
});

Deno.test("BRIDGE_HTTP_ADDR accepts host:port and [ipv6]:port", () => {
  assert.deepEqual(ok(baseEnv()).bridge.httpAddr, { hostname: "127.0.0.1", port: 8786 });
  assert.deepEqual(ok({ ...baseEnv(), BRIDGE_HTTP_ADDR: "[::1]:8786" }).bridge.httpAddr, {
    hostname: "::1",
    port: 8786,
  });
  assert.deepEqual(ok({ ...baseEnv(), BRIDGE_HTTP_ADDR: "0.0.0.0:9000" }).bridge.httpAddr, {
    hostname: "0.0.0.0",
    port: 9000,
  });
  assert.deepEqual(ok({ ...baseEnv(), BRIDGE_HTTP_ADDR: "localhost:65535" }).bridge.httpAddr, {
    hostname: "localhost",
    port: 65535,
  });
});

Deno.test("BRIDGE_HTTP_ADDR without a port, with a bad port or a bare IPv6 address is refused", () => {
  for (const addr of ["127.0.0.1", ":8786", "host:70000", "::1:8786", "host:port", "[::1]", "a b:1"]) {
    const line = oneErrorAbout(errorsOf({ ...baseEnv(), BRIDGE_HTTP_ADDR: addr }), "BRIDGE_HTTP_ADDR");
    assert.match(line, /expected host:port/);
  }
});

Deno.test("defaults: resource, nick from the JID localpart, KV path, name formats, display, log", () => {
  const config = ok(baseEnv());
  assert.equal(config.xmpp.resource, "mattermost-bridge");
  assert.equal(config.xmpp.mucNick, "Bridge");
  assert.equal(config.xmpp.tlsInsecureSkipVerify, false);
  assert.equal(config.bridge.kvPath, "./data/mmxmpp.kv");
  assert.equal(config.bridge.xmppNameFormat, "{nick} (xmpp)");
  assert.equal(config.bridge.mmNameFormat, "<{username}> ");
  assert.equal(config.bridge.mmDisplay, "override");
  assert.equal(config.bridge.publicUrl, undefined);
  assert.deepEqual(config.log, { level: "info", format: "json" });
  // On a TTY the default log format is pretty.
  assert.equal(ok(baseEnv(), noFiles, true).log.format, "pretty");
});

Deno.test("explicit values override the defaults", () => {
  const config = ok({
    ...baseEnv(),
    XMPP_RESOURCE: "res1",
    XMPP_MUC_NICK: "MMBridge",
    BRIDGE_XMPP_NAME_FORMAT: "[{nick}]",
    BRIDGE_MM_NAME_FORMAT: "{displayname}: ",
    BRIDGE_MM_DISPLAY: "prefix",
    LOG_LEVEL: "DEBUG",
    LOG_FORMAT: "pretty",
  });
  assert.equal(config.xmpp.resource, "res1");
  assert.equal(config.xmpp.mucNick, "MMBridge");
  assert.equal(config.bridge.xmppNameFormat, "[{nick}]");
  assert.equal(config.bridge.mmNameFormat, "{displayname}: ");
  assert.equal(config.bridge.mmDisplay, "prefix");
  assert.deepEqual(config.log, { level: "debug", format: "pretty" });
});

Deno.test("the KV path is under STATE_DIRECTORY when systemd sets it, unless BRIDGE_KV_PATH is given", () => {
  assert.equal(
    ok({ ...baseEnv(), STATE_DIRECTORY: "/var/lib/mmxmpp" }).bridge.kvPath,
    "/var/lib/mmxmpp/mmxmpp.kv",
  );
  // systemd joins several state directories with ':'; the first one is used.
  assert.equal(
    ok({ ...baseEnv(), STATE_DIRECTORY: "/var/lib/a:/var/lib/b" }).bridge.kvPath,
    "/var/lib/a/mmxmpp.kv",
  );
  assert.equal(
    ok({ ...baseEnv(), STATE_DIRECTORY: "/var/lib/mmxmpp", BRIDGE_KV_PATH: "/tmp/x.kv" }).bridge.kvPath,
    "/tmp/x.kv",
  );
});

Deno.test("bad enumerated and boolean values are refused by name with what is expected", () => {
  const errors = errorsOf({
    ...baseEnv(),
    BRIDGE_MM_DISPLAY: "webhook",
    LOG_LEVEL: "verbose",
    LOG_FORMAT: "xml",
    XMPP_TLS_INSECURE_SKIP_VERIFY: "maybe",
  });
  assert.equal(errors.length, 4, errors.join("\n"));
  assert.match(oneErrorAbout(errors, "BRIDGE_MM_DISPLAY"), /override, prefix/);
  assert.match(oneErrorAbout(errors, "LOG_LEVEL"), /debug, info, warn, error/);
  assert.match(oneErrorAbout(errors, "LOG_FORMAT"), /json, pretty/);
  assert.match(oneErrorAbout(errors, "XMPP_TLS_INSECURE_SKIP_VERIFY"), /true or false/);
});

Deno.test("XMPP_TLS_INSECURE_SKIP_VERIFY=true is accepted with a warning", () => {
  const res = loadConfig({ ...baseEnv(), XMPP_TLS_INSECURE_SKIP_VERIFY: "true" }, noFiles);
  assert.ok(res.ok);
  assert.equal(res.config.xmpp.tlsInsecureSkipVerify, true);
  assert.equal(res.warnings.length, 1);
  assert.match(res.warnings[0], /XMPP_TLS_INSECURE_SKIP_VERIFY/);
  const quiet = loadConfig(baseEnv(), noFiles);
  assert.ok(quiet.ok);
  assert.deepEqual(quiet.warnings, []);
});

Deno.test("BRIDGE_PUBLIC_URL needs MM_TEAM and an http(s) URL", () => {
  const line = oneErrorAbout(
    errorsOf({ ...baseEnv(), BRIDGE_PUBLIC_URL: "http://bridge.internal:8786" }),
    "BRIDGE_PUBLIC_URL",
  );
  assert.match(line, /MM_TEAM/);
  assert.match(
    oneErrorAbout(
      errorsOf({ ...baseEnv(), MM_TEAM: "t", BRIDGE_PUBLIC_URL: "bridge.internal" }),
      "BRIDGE_PUBLIC_URL",
    ),
    /has no scheme: use https:\/\/bridge\.internal/,
  );
  assert.equal(
    ok({ ...baseEnv(), MM_TEAM: "t", BRIDGE_PUBLIC_URL: "http://bridge.internal:8786/" }).bridge.publicUrl,
    "http://bridge.internal:8786",
  );
});

Deno.test("XMPP_CA_FILE must be readable and hold a PEM certificate", () => {
  const pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
  const files = fakeFiles({ "/etc/ca.pem": pem, "/etc/not-pem": "hello" });
  assert.equal(ok({ ...baseEnv(), XMPP_CA_FILE: "/etc/ca.pem" }, files).xmpp.ca, pem);
  assert.match(
    oneErrorAbout(errorsOf({ ...baseEnv(), XMPP_CA_FILE: "/etc/not-pem" }, files), "XMPP_CA_FILE"),
    /PEM/,
  );
  assert.match(
    oneErrorAbout(errorsOf({ ...baseEnv(), XMPP_CA_FILE: "/etc/missing" }, files), "XMPP_CA_FILE"),
    /cannot read \/etc\/missing/,
  );
});

Deno.test("maskedConfig never contains the token, password or command token values", () => {
  const config = ok({ ...baseEnv(), MM_COMMAND_TOKEN: CMD_TOKEN });
  // The real config holds them (so the test would notice if masking were skipped).
  const raw = JSON.stringify(config);
  assert.ok(raw.includes(TOKEN) && raw.includes(PASSWORD) && raw.includes(CMD_TOKEN));
  const masked = JSON.stringify(maskedConfig(config));
  assertNoSecret(masked);
  assert.ok(masked.includes("***"));
  // Everything else is still shown.
  assert.ok(masked.includes("https://chat.example.org"));
  assert.ok(masked.includes("Bridge@Example.org"));
  // Masking does not modify the config itself.
  assert.equal(config.mattermost.token, TOKEN);
});

Deno.test("maskedConfig summarises the CA certificate instead of printing it", () => {
  const pem = "-----BEGIN CERTIFICATE-----\nMIIBsecretish\n-----END CERTIFICATE-----\n";
  const config = ok({ ...baseEnv(), XMPP_CA_FILE: "/ca.pem" }, fakeFiles({ "/ca.pem": pem }));
  const masked = JSON.stringify(maskedConfig(config));
  assert.ok(!masked.includes("MIIBsecretish"));
  assert.ok(masked.includes(`${pem.length} bytes of PEM`));
});

Deno.test("secretsOf lists exactly the configured secret values", () => {
  assert.deepEqual(secretsOf(ok(baseEnv())).sort(), [PASSWORD, TOKEN].sort());
  assert.deepEqual(
    secretsOf(ok({ ...baseEnv(), MM_COMMAND_TOKEN: CMD_TOKEN })).sort(),
    [CMD_TOKEN, PASSWORD, TOKEN].sort(),
  );
});

Deno.test("no error message ever includes a secret value, whatever else is wrong", () => {
  const env = {
    MM_URL: "chat.example.org",
    MM_TOKEN: TOKEN,
    MM_COMMAND_TOKEN: CMD_TOKEN,
    MM_COMMAND_TOKEN_FILE: "/nope",
    XMPP_JID: "nobody",
    XMPP_PASSWORD: PASSWORD,
    XMPP_SERVICE: "http://x",
    BRIDGE_MAPPINGS: "garbage",
    BRIDGE_HTTP_ADDR: "nowhere",
    BRIDGE_MM_DISPLAY: "nope",
    LOG_LEVEL: "loud",
  };
  const errors = errorsOf(env);
  assert.ok(errors.length >= 7, errors.join("\n"));
  assertNoSecret(errors.join("\n"));
  // Secrets read from files are not echoed either when a later check fails.
  const fromFile = errorsOf(
    { ...baseEnv(), MM_TOKEN: undefined, MM_TOKEN_FILE: "/t", XMPP_JID: "bad" },
    fakeFiles({ "/t": TOKEN }),
  );
  assertNoSecret(fromFile.join("\n"));
});

Deno.test({
  name: "XMPP_JID with a port after the domain is refused instead of producing a broken service URL",
  fn: () => {
    const line = oneErrorAbout(errorsOf({ ...baseEnv(), XMPP_JID: "bridge@example.org:5222" }), "XMPP_JID");
    assert.match(line, /not a bare JID/);
  },
});

/** Every variable the schema holds, each set to a valid value, in component mode so that every secret is read. */
function fullEnv(): Record<string, string> {
  return {
    ...baseEnv() as Record<string, string>,
    MM_TEAM: "myteam",
    MM_COMMAND_TOKEN: CMD_TOKEN,
    BRIDGE_PUBLIC_URL: "http://bridge.internal:8786",
    BRIDGE_MAPPINGS: "myteam/town=town@conference.example.org",
    BRIDGE_GHOST_MODE: "component",
    BRIDGE_SECRET_KEY: "k3y-0123456789-abcdef",
    XMPP_COMPONENT_JID: "mm.example.org",
    XMPP_COMPONENT_SECRET: "c0mp0nent-S3CRET",
  };
}

Deno.test("every variable whose name says it is a secret is flagged secret in the schema", () => {
  const looksSecret = settingList().filter((s) => /TOKEN|PASSW|SECRET|KEY/.test(s.name));
  assert.ok(looksSecret.length >= 5, looksSecret.map((s) => s.name).join());
  for (const s of looksSecret) assert.equal(s.secret, true, `${s.name} must be flagged secret`);
});

Deno.test("every secret of the schema, given directly or in its _FILE, is in secretsOf and masked", () => {
  for (const name of secretNames()) {
    const value = `${name.toLowerCase()}-marker-0123456789`;
    const direct = ok({ ...fullEnv(), [name]: value });
    const fromFile = ok(
      { ...fullEnv(), [name]: undefined, [`${name}_FILE`]: "/run/credentials/x" },
      fakeFiles({ "/run/credentials/x": `${value}\n` }),
    );
    for (const config of [direct, fromFile]) {
      assert.ok(JSON.stringify(config).includes(value), `${name} is loaded into the config`);
      assert.ok(secretsOf(config).includes(value), `${name} is in secretsOf`);
      assert.ok(!JSON.stringify(maskedConfig(config)).includes(value), `${name} is masked by maskedConfig`);
    }
  }
});

Deno.test("a secret that fails a check is still handed back for masking", () => {
  const res = loadConfig({ ...baseEnv(), BRIDGE_SECRET_KEY: "short-key" }, noFiles);
  assert.equal(res.ok, false);
  if (res.ok) return;
  assert.ok(res.secrets.includes("short-key") && res.secrets.includes(TOKEN), res.secrets.join());
  assertNoSecret(res.errors.join("\n"), ["short-key", TOKEN, PASSWORD]);
});

Deno.test("an empty or blank value acts as unset (the default), for every variable that is not required", () => {
  const outcome = (env: Record<string, string | undefined>) => {
    const res = loadConfig(env, noFiles);
    return res.ok ? JSON.stringify(maskedConfig(res.config)) : res.errors.join("\n");
  };
  for (const s of settingList().filter((s) => !s.required)) {
    for (const empty of ["", "  "]) {
      assert.equal(
        outcome({ ...fullEnv(), [s.name]: empty }),
        outcome({ ...fullEnv(), [s.name]: undefined }),
        `${s.name}=${JSON.stringify(empty)} must act as unset`,
      );
    }
  }
  const blank = ok({
    ...baseEnv(),
    BRIDGE_GHOST_PREFIX: "",
    BRIDGE_MM_NAME_FORMAT: "",
    BRIDGE_XMPP_NAME_FORMAT: " ",
  });
  assert.equal(blank.ghosts.prefix, "mm_");
  assert.equal(blank.bridge.mmNameFormat, "<{username}> ");
  assert.equal(blank.bridge.xmppNameFormat, "{nick} (xmpp)");
});

Deno.test("LOG_LEVEL=warning is read as warn, in any case", () => {
  for (const level of ["warning", "WARNING", "Warn"]) {
    assert.equal(ok({ ...baseEnv(), LOG_LEVEL: level }).log.level, "warn", level);
  }
  assert.match(oneErrorAbout(errorsOf({ ...baseEnv(), LOG_LEVEL: "warnings" }), "LOG_LEVEL"), /"warnings"/);
});

Deno.test("an unknown MM_, XMPP_ or BRIDGE_ variable gets a warning naming the closest known one", () => {
  const res = loadConfig({
    ...baseEnv(),
    MM_TOKNE: "value-of-a-typo-0123",
    XMPP_PASWORD_FILE: "/run/pw",
    BRIDGE_GHOST_PREFX: "x_",
    BRIDGE_SECRET_KEY_FILE: "/k",
    LOG_LEVELS: "debug",
    HOME: "/root",
    STATE_DIRECTORY: "/var/lib/mmxmpp",
  }, fakeFiles({ "/k": "a-key-long-enough-0123" }));
  assert.ok(res.ok, !res.ok ? res.errors.join("\n") : "");
  assert.deepEqual(res.warnings, [
    "BRIDGE_GHOST_PREFX is not a variable mmxmpp knows (ignored); did you mean BRIDGE_GHOST_PREFIX?",
    "MM_TOKNE is not a variable mmxmpp knows (ignored); did you mean MM_TOKEN?",
    "XMPP_PASWORD_FILE is not a variable mmxmpp knows (ignored); did you mean XMPP_PASSWORD_FILE?",
  ]);
  assert.ok(!res.warnings.join("\n").includes("value-of-a-typo"), "the value is never quoted");
});

Deno.test("component mode needs XMPP_COMPONENT_JID and XMPP_COMPONENT_SECRET, each named", () => {
  const errors = errorsOf({ ...baseEnv(), BRIDGE_GHOST_MODE: "component" });
  assert.match(oneErrorAbout(errors, "XMPP_COMPONENT_JID"), /required with BRIDGE_GHOST_MODE=component/);
  assert.match(oneErrorAbout(errors, "XMPP_COMPONENT_SECRET"), /required \(or XMPP_COMPONENT_SECRET_FILE/);
  const config = ok(fullEnv());
  assert.deepEqual(config.ghosts.component, {
    jid: "mm.example.org",
    secret: "c0mp0nent-S3CRET",
    service: "xmpp://example.org:5347",
  });
  // The default component port is on XMPP_SERVICE's host; an explicit service must be xmpp://host:port.
  assert.equal(
    ok({ ...fullEnv(), XMPP_SERVICE: "xmpps://xmpp.example.net" }).ghosts.component?.service,
    "xmpp://xmpp.example.net:5347",
  );
  for (const bad of ["xmpps://h:1", "xmpp://h", "h:5347"]) {
    assert.match(
      oneErrorAbout(errorsOf({ ...fullEnv(), XMPP_COMPONENT_SERVICE: bad }), "XMPP_COMPONENT_SERVICE"),
      /expected xmpp:\/\/host:port/,
    );
  }
});

Deno.test("BRIDGE_FILE_FETCH_HOSTS: a list of hosts, lowercased; unset is the upload service's; a URL is refused", () => {
  assert.equal(ok(baseEnv()).bridge.fileFetchHosts, undefined);
  assert.deepEqual(
    ok({ ...baseEnv(), BRIDGE_FILE_FETCH_HOSTS: " Files.Example.org:80, 127.0.0.1:5280 ,[::1]:8080" }).bridge
      .fileFetchHosts,
    ["files.example.org", "127.0.0.1:5280", "[::1]:8080"],
  );
  const line = oneErrorAbout(
    errorsOf({ ...baseEnv(), BRIDGE_FILE_FETCH_HOSTS: "http://files.example.org/" }),
    "BRIDGE_FILE_FETCH_HOSTS",
  );
  assert.match(line, /"http:\/\/files\.example\.org\/" is not a host: expected a host name or address/);
});

Deno.test("BRIDGE_MM_PUPPETS needs MM_ADMIN_TOKEN, says so, and the prefix must make valid usernames", () => {
  const missing = loadConfig({ ...baseEnv(), BRIDGE_MM_PUPPETS: "true" }, noFiles);
  assert.ok(!missing.ok);
  assert.ok(
    missing.errors.some((e) => e.startsWith("BRIDGE_MM_PUPPETS=true needs MM_ADMIN_TOKEN")),
    missing.errors[0],
  );
  const badPrefix = loadConfig(
    {
      ...baseEnv(),
      BRIDGE_MM_PUPPETS: "true",
      MM_ADMIN_TOKEN: "adm1n-T0KEN",
      BRIDGE_MM_PUPPET_PREFIX: "x m@",
    },
    noFiles,
  );
  assert.ok(!badPrefix.ok);
  assert.match(badPrefix.errors.join("\n"), /BRIDGE_MM_PUPPET_PREFIX "x m@" is not valid/);
  const config = ok({ ...baseEnv(), BRIDGE_MM_PUPPETS: "true", MM_ADMIN_TOKEN: "adm1n-T0KEN" });
  assert.deepEqual(config.mattermost.puppets, { adminToken: "adm1n-T0KEN", prefix: "xmpp-" });
  assert.ok(secretsOf(config).includes("adm1n-T0KEN"), "the admin token is a secret");
  assert.equal(ok(baseEnv()).mattermost.puppets, undefined, "off by default");
});
