/**
 * XEP-0030 service discovery (what an entity is, what it supports, which services it has), with the XEP-0128
 * extended information and the XEP-0004 data forms it is carried in.
 *
 * @module
 */
import { xml } from "@xmpp/client-core";
import type { Element } from "../session/client.ts";
import { NS_DATA, NS_DISCO_INFO, NS_DISCO_ITEMS } from "./ns.ts";

/** What {@link discoInfo} and {@link discoItems} need of a client: an IQ caller. */
export interface IqRequester {
  iqCaller: { request(element: Element, timeout?: number): Promise<Element> };
}

/** An XEP-0030 identity, e.g. `{ category: "conference", type: "text" }`. */
export interface DiscoIdentity {
  category: string;
  type: string;
  name?: string;
}

/** One field of an XEP-0004 data form. */
export interface DataFormField {
  /** The field's name; absent only on `fixed` fields. */
  var?: string;
  /** `text-single`, `text-private`, `hidden`, `list-single`, `boolean`, …; absent means `text-single`. */
  type?: string;
  label?: string;
  desc?: string;
  required: boolean;
  values: string[];
  /** Choices of a `list-*` field. */
  options: Array<{ label?: string; value: string }>;
}

/** An XEP-0004 data form. */
export interface DataForm {
  /** `form`, `submit`, `result` or `cancel`. */
  type: string;
  /** The hidden `FORM_TYPE` field's value, which names what the form describes (XEP-0068). */
  formType?: string;
  title?: string;
  instructions: string[];
  fields: DataFormField[];
}

/** The answer to a disco#info query, as data. */
export interface DiscoInfo {
  identities: DiscoIdentity[];
  features: Set<string>;
  /** XEP-0128 extended information, e.g. the XEP-0363 upload limits. */
  forms: DataForm[];
}

/** One entry of a disco#items answer. */
export interface DiscoItem {
  jid: string;
  node?: string;
  name?: string;
}

/**
 * Asks `to` for disco#info. Rejects with the xmpp.js StanzaError (with `.condition`) when `to` answers an error,
 * and with a TimeoutError after `timeoutMs`.
 *
 * @example
 * ```ts
 * const info = await discoInfo(client, "conference.example.org");
 * info.features.has("http://jabber.org/protocol/muc"); // true
 * ```
 */
export async function discoInfo(client: IqRequester, to: string, timeoutMs = 10_000): Promise<DiscoInfo> {
  const res: Element = await client.iqCaller.request(
    xml("iq", { type: "get", to }, xml("query", { xmlns: NS_DISCO_INFO })),
    timeoutMs,
  );
  const query = res.getChild("query", NS_DISCO_INFO);
  return {
    identities: (query?.getChildren("identity") ?? []).map((el: Element) => ({
      category: String(el.attrs.category),
      type: String(el.attrs.type),
      name: el.attrs.name,
    })),
    features: new Set((query?.getChildren("feature") ?? []).map((el: Element) => String(el.attrs.var))),
    forms: (query?.getChildren("x", NS_DATA) ?? []).map(parseDataForm),
  };
}

/**
 * Asks `to` for disco#items: the services of a server, the rooms of a MUC service.
 *
 * @example
 * ```ts
 * const items = await discoItems(client, "example.org");
 * items.map((item) => item.jid); // ["conference.example.org", "upload.example.org"]
 * ```
 */
export async function discoItems(client: IqRequester, to: string, timeoutMs = 10_000): Promise<DiscoItem[]> {
  const res: Element = await client.iqCaller.request(
    xml("iq", { type: "get", to }, xml("query", { xmlns: NS_DISCO_ITEMS })),
    timeoutMs,
  );
  const query = res.getChild("query", NS_DISCO_ITEMS);
  return (query?.getChildren("item") ?? [])
    .filter((el: Element) => el.attrs.jid)
    .map((el: Element) => ({ jid: String(el.attrs.jid), node: el.attrs.node, name: el.attrs.name }));
}

/**
 * Reads an XEP-0004 `<x xmlns="jabber:x:data">` element.
 *
 * @example
 * ```ts
 * const form = parseDataForm(query.getChild("x", "jabber:x:data"));
 * form.fields.filter((f) => f.required).map((f) => f.var); // ["username", "password"]
 * ```
 */
export function parseDataForm(x: Element): DataForm {
  const fields: DataFormField[] = x.getChildren("field").map((field: Element) => ({
    var: field.attrs.var,
    type: field.attrs.type,
    label: field.attrs.label,
    desc: field.getChildText("desc") ?? undefined,
    required: field.getChild("required") !== undefined,
    values: field.getChildren("value").map((value: Element) => value.text()),
    options: field.getChildren("option").map((option: Element) => ({
      label: option.attrs.label,
      value: option.getChildText("value") ?? "",
    })),
  }));
  const formType = fields.find((f) => f.var === "FORM_TYPE")?.values[0];
  return {
    type: String(x.attrs.type ?? "form"),
    formType,
    title: x.getChildText("title") ?? undefined,
    instructions: x.getChildren("instructions").map((el: Element) => el.text()),
    fields,
  };
}

/**
 * The first value of field `name` in the form of `formType` among `forms` (e.g. an XEP-0128 disco#info extension).
 *
 * @example
 * ```ts
 * formValue(info.forms, "urn:xmpp:http:upload:0", "max-file-size"); // "10485760"
 * ```
 */
export function formValue(forms: readonly DataForm[], formType: string, name: string): string | undefined {
  return forms.find((form) => form.formType === formType)?.fields.find((f) => f.var === name)?.values[0];
}
