import assert from "node:assert/strict";
import fc from "fast-check";
import {
  identityTag,
  isPuppetUsername,
  puppetEmail,
  puppetUsername,
  usernameSource,
} from "../../src/mattermost/puppet_names.ts";

Deno.test("a puppet's name comes from the JID's localpart when the room revealed it, else from the nick", () => {
  assert.equal(usernameSource("alice@example.org", "Ally"), "alice");
  assert.equal(usernameSource("hall@conference.example.org/Ally", "Ally"), "Ally");
  assert.equal(usernameSource("dGhpcyBpcyBhbiBvY2N1cGFudC1pZA==", "Ally"), "Ally");
});

Deno.test("usernames are lowercased, lose accents, and replace what Mattermost refuses with '-'", () => {
  assert.equal(puppetUsername("xmpp-", "Alice", "a@x"), "xmpp-alice");
  assert.equal(puppetUsername("xmpp-", "Élodie B.", "e@x"), "xmpp-elodie-b");
  assert.equal(puppetUsername("xmpp-", "bob_the.builder", "b@x"), "xmpp-bob_the.builder");
  assert.equal(puppetUsername("xmpp-", "😀 smile 😀", "s@x"), "xmpp-smile");
  // Nothing usable left: a placeholder, still unique by the suffix once taken.
  assert.equal(puppetUsername("xmpp-", "😀", "s@x"), "xmpp-user");
  // Without a prefix a name must still start with a letter.
  assert.equal(puppetUsername("", "42", "n@x"), "x-42");
});

Deno.test("reserved names are never made, with or without a prefix", () => {
  for (const reserved of ["all", "channel", "here", "matterbot", "system"]) {
    const name = puppetUsername("", reserved, `${reserved}@x`);
    assert.notEqual(name, reserved);
    assert.ok(isPuppetUsername(name), name);
  }
});

Deno.test("a taken name gets a suffix from the identity: the same for the same person, another for another", () => {
  const first = puppetUsername("xmpp-", "alice", "alice@one.example");
  const again = puppetUsername("xmpp-", "alice", "alice@one.example", 1);
  assert.notEqual(again, first);
  assert.match(again, /^xmpp-alice-[0-9a-f]{4}$/);
  assert.equal(puppetUsername("xmpp-", "alice", "alice@one.example", 1), again, "stable");
  assert.notEqual(puppetUsername("xmpp-", "alice", "alice@two.example", 1), again);
  assert.notEqual(
    puppetUsername("xmpp-", "alice", "alice@one.example", 2),
    again,
    "longer on the next attempt",
  );
});

Deno.test("a long name is cut to 64 characters, suffix included, without a trailing separator", () => {
  const long = "a".repeat(70);
  assert.equal(puppetUsername("xmpp-", long, "l@x").length, 64);
  const suffixed = puppetUsername("xmpp-", long, "l@x", 1);
  assert.equal(suffixed.length, 64);
  assert.match(suffixed, /-[0-9a-f]{4}$/);
  assert.equal(puppetUsername("xmpp-", `${"b".repeat(58)}.-x`, "l@x"), `xmpp-${"b".repeat(58)}`);
});

Deno.test("every derived username is valid for Mattermost, whatever the nick, prefix and attempt", () => {
  fc.assert(
    fc.property(
      fc.string({ unit: "grapheme", maxLength: 100 }),
      fc.constantFrom("", "xmpp-", "x.", "bridge_"),
      fc.string(),
      fc.integer({ min: 0, max: 7 }),
      (nick, prefix, identity, attempt) => {
        const name = puppetUsername(prefix, nick, identity, attempt);
        assert.ok(isPuppetUsername(name), JSON.stringify({ nick, prefix, name }));
      },
    ),
  );
});

Deno.test("the e-mail address is on a reserved, non-routable domain; the identity is kept only as a hash", () => {
  assert.match(puppetEmail("xmpp-alice"), /^xmpp-alice@[a-z0-9.-]+\.invalid$/);
  const tag = identityTag("alice@example.org");
  assert.match(tag, /^[0-9a-f]{32}$/);
  assert.ok(!tag.includes("alice"));
  assert.equal(identityTag("alice@example.org"), tag);
});
