/** Reading files shared in a room (XEP-0066) into attachments, and the notice of a file that was not copied. */
import assert from "node:assert/strict";
import { xml } from "@xmpp/client-core";
import { parseGroupchat } from "../../src/xmpp/protocol/stanza.ts";
import { attachmentOfUrl, oobElement, readOobMessage } from "../../src/xmpp/xeps/xep0066.ts";
import type { IncomingBase } from "../../src/xmpp/incoming.ts";
import { fileNotice, formatBytes, tooLarge } from "../../src/core/files.ts";

const base: IncomingBase = {
  eventId: "s1",
  ids: ["s1"],
  portal: { network: "xmpp", channel: "room@conference.example.org" },
  sender: { network: "xmpp", id: "occ", name: "alice" },
  timestamp: 1,
};

function read(body: string | undefined, ...children: ReturnType<typeof xml>[]) {
  const stanza = xml(
    "message",
    { type: "groupchat", from: "room@conference.example.org/alice", id: "m1" },
    ...(body === undefined ? [] : [xml("body", {}, body)]),
    ...children,
  );
  return readOobMessage(parseGroupchat(stanza)!, base);
}

const URL_A = "https://up.example.org/slot/cat%20photo.jpg";

Deno.test("an OOB message becomes a message with the URL as attachment; text is the body without it", () => {
  const cases: Array<[string | undefined, string, boolean]> = [
    [URL_A, "", false],
    [`look ${URL_A}`, "look", false],
    [`/me shares ${URL_A}`, "shares", true],
    [undefined, "", false],
  ];
  for (const [body, text, action] of cases) {
    const msg = read(body, oobElement(URL_A));
    assert.ok(msg, String(body));
    assert.equal(msg.text, text, String(body));
    assert.equal(msg.action ?? false, action, String(body));
    assert.deepEqual(msg.attachments, [{ name: "cat photo.jpg", source: URL_A, url: URL_A }]);
    assert.equal(msg.eventId, "s1");
  }
});

Deno.test("a message without an http(s) OOB URL is not a file message", () => {
  assert.equal(read("hi"), undefined);
  assert.equal(
    read("x", xml("x", { xmlns: "jabber:x:oob" }, xml("url", {}, "javascript:alert(1)"))),
    undefined,
  );
  assert.equal(read("x", xml("x", { xmlns: "jabber:x:oob" })), undefined);
});

Deno.test("file names come from the URL's last path segment, decoded, never a path", () => {
  assert.equal(attachmentOfUrl("https://h/a/b/report.pdf?x=1").name, "report.pdf");
  assert.equal(attachmentOfUrl("https://h/a/..%2Fetc%2Fpasswd").name, ".._etc_passwd");
  assert.equal(attachmentOfUrl("https://h/").name, "file");
  assert.equal(attachmentOfUrl("https://h/%E0%A4%A").name, "%E0%A4%A", "bad escapes are kept as they are");
});

Deno.test("sizes and notices read well", () => {
  assert.equal(formatBytes(999), "999 bytes");
  assert.equal(formatBytes(1536), "1.5 KiB");
  assert.equal(formatBytes(10 * 1024 * 1024), "10 MiB");
  assert.equal(
    tooLarge(10 * 1024 * 1024, 12 * 1024 * 1024).message,
    "it is 12 MiB, larger than the 10 MiB limit",
  );
  assert.equal(tooLarge(1024, 1025).message, "it is 1025 bytes, larger than the 1 KiB limit");
  assert.equal(
    fileNotice({ name: "a.png", source: "id" }, "it is gone"),
    "📎 a.png (not copied: it is gone)",
  );
});
