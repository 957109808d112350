/**
 * The Mattermost side of files against the stand-in's files routes: a post's files as attachments (their info
 * fetched when the post did not carry it), their bytes streamed with the bot's token under a cap, uploads streamed
 * as multipart, and the server's refusals as reasons.
 */
import assert from "node:assert/strict";
import { FileUnavailable } from "../../src/core/bridge.ts";
import { createClient } from "../../src/mattermost/api.ts";
import { MattermostFiles } from "../../src/mattermost/files.ts";
import type { MattermostStandIn } from "../mm_server/server.ts";
import { clientFor, withStandIn } from "../mm_server/test_support.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

function filesOf(server: MattermostStandIn): MattermostFiles {
  return new MattermostFiles(server.url, server.bot.token, createClient(server.url, server.bot.token));
}

/** A channel with the bot in it, and a file the bot uploaded there (`n` bytes) attached to a post. */
async function channelWithFile(server: MattermostStandIn, n: number) {
  const channel = server.createChannel("files");
  server.addMember(channel.id, server.bot.id);
  const form = new FormData();
  form.append("channel_id", channel.id);
  form.append("files", new File([new Uint8Array(n).fill(9)], "report.pdf"));
  const bot = clientFor(server, server.bot.token);
  const id = (await bot.uploadFile(form)).file_infos[0].id;
  await server.postAs(server.bot.id, channel.id, "", { file_ids: [id] });
  return { channel, id };
}

function streamOf(bytes: Uint8Array<ArrayBuffer>): ReadableStream<Uint8Array> {
  return new Response(bytes).body!;
}

async function problemOf(p: Promise<unknown>): Promise<FileUnavailable> {
  const err = await p.then(() => undefined, (e) => e);
  assert.ok(err instanceof FileUnavailable, `expected a FileUnavailable, got ${err}`);
  return err;
}

Deno.test("a post's files without metadata are read with GET /files/{id}/info", opts, async () => {
  await withStandIn({}, async (server) => {
    const { id } = await channelWithFile(server, 1234);
    const files = filesOf(server);
    const attachments = await files.attachmentsOf({ file_ids: [id, "z".repeat(26)] });
    assert.deepEqual(attachments, [{
      name: "report.pdf",
      mimeType: "application/pdf",
      size: 1234,
      source: id,
      url: `${server.url}/api/v4/files/${id}?download=1`,
    }], "an unreadable file is left out");
  });
});

Deno.test("a file's bytes are streamed with the bot's token, and refused over the cap", opts, async () => {
  await withStandIn({}, async (server) => {
    const { id } = await channelWithFile(server, 3000);
    const files = filesOf(server);
    const file = await files.open({ name: "report.pdf", source: id }, { maxBytes: 5000 });
    assert.equal(file.size, 3000);
    assert.equal(file.mimeType, "application/pdf");
    assert.equal((await new Response(file.body).arrayBuffer()).byteLength, 3000);
    const big = await problemOf(files.open({ name: "report.pdf", source: id }, { maxBytes: 2000 }));
    assert.equal(big.problem, "too-large");
    const gone = await problemOf(files.open({ name: "x", source: "y".repeat(26) }, { maxBytes: 10 }));
    assert.equal(gone.message, "it is no longer on Mattermost");
  });
});

Deno.test("an upload is streamed as multipart; Mattermost's 413 is a too-large reason", opts, async () => {
  await withStandIn({ maxFileSize: 1000 }, async (server) => {
    const { channel } = await channelWithFile(server, 10);
    const files = filesOf(server);
    const data = new Uint8Array(900).fill(4);
    const id = await files.upload(channel.id, { name: 'a "quoted" name.txt', source: "s" }, {
      body: streamOf(data),
    });
    const res = await fetch(`${server.url}/api/v4/files/${id}`, {
      headers: { Authorization: `Bearer ${server.bot.token}` },
    });
    assert.deepEqual(new Uint8Array(await res.arrayBuffer()), data);
    const [info] = await files.attachmentsOf({ file_ids: [id] });
    assert.equal(info.name, "a _quoted_ name.txt", "a quote cannot end the multipart filename early");
    assert.equal(server.config.maxFileSize, 1000);
    assert.equal(await files.maxBytes(), 1000, "MaxFileSize from the client config");

    const tooBig = await problemOf(
      files.upload(channel.id, { name: "b.bin", source: "s" }, { body: streamOf(new Uint8Array(1500)) }),
    );
    assert.equal(tooBig.problem, "too-large");
    assert.equal(tooBig.message, "it is larger than Mattermost accepts");
  });
});
