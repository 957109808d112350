/**
 * The XML namespaces the bridge speaks, in one table: every module imports them from here.
 *
 * @module
 */

/** RFC 6120 stream element namespace. */
export const NS_STREAM = "http://etherx.jabber.org/streams";

/** RFC 6120 STARTTLS. */
export const NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls";

/** RFC 6120 SASL. */
export const NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl";

/** RFC 6120 stanza error conditions. */
export const NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas";

/** RFC 6120 resource binding. */
export const NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind";

/** XEP-0114 external components (the accept stream). */
export const NS_COMPONENT = "jabber:component:accept";

/** XEP-0030 service discovery, info. */
export const NS_DISCO_INFO = "http://jabber.org/protocol/disco#info";

/** XEP-0030 service discovery, items. */
export const NS_DISCO_ITEMS = "http://jabber.org/protocol/disco#items";

/** XEP-0004 data forms. */
export const NS_DATA = "jabber:x:data";

/** XEP-0059 result set management. */
export const NS_RSM = "http://jabber.org/protocol/rsm";

/** XEP-0077 in-band registration (the query). */
export const NS_REGISTER = "jabber:iq:register";

/** XEP-0077 in-band registration (the stream feature). */
export const NS_REGISTER_FEATURE = "http://jabber.org/features/iq-register";

/** XEP-0045 multi-user chat (joining). */
export const NS_MUC = "http://jabber.org/protocol/muc";

/** XEP-0045 multi-user chat (occupant information). */
export const NS_MUC_USER = "http://jabber.org/protocol/muc#user";

/** XEP-0045 room configuration form (its FORM_TYPE). */
export const NS_MUC_ROOMCONFIG = "http://jabber.org/protocol/muc#roomconfig";

/** XEP-0045 multi-user chat (room configuration and destruction). */
export const NS_MUC_OWNER = "http://jabber.org/protocol/muc#owner";

/** XEP-0199 ping. */
export const NS_PING = "urn:xmpp:ping";

/** XEP-0203 delayed delivery. */
export const NS_DELAY = "urn:xmpp:delay";

/** XEP-0297 stanza forwarding. */
export const NS_FORWARD = "urn:xmpp:forward:0";

/** XEP-0313 message archive management, version 2. */
export const NS_MAM = "urn:xmpp:mam:2";

/** XEP-0359 unique and stable stanza ids (stanza-id, origin-id). */
export const NS_SID = "urn:xmpp:sid:0";

/** XEP-0393 message styling: `<unstyled/>` says a body is plain text. */
export const NS_STYLING = "urn:xmpp:styling:0";

/** XEP-0363 HTTP file upload. */
export const NS_UPLOAD = "urn:xmpp:http:upload:0";

/** XEP-0184 message delivery receipts. */
export const NS_RECEIPTS = "urn:xmpp:receipts";

/** XEP-0421 anonymous unique occupant identifiers. */
export const NS_OCCUPANT_ID = "urn:xmpp:occupant-id:0";

/** XEP-0461 message replies. */
export const NS_REPLY = "urn:xmpp:reply:0";

/** XEP-0428 fallback indication. */
export const NS_FALLBACK = "urn:xmpp:fallback:0";
/** XEP-0066 out-of-band data (the `jabber:x:oob` element that makes clients show a file inline). */
export const NS_OOB = "jabber:x:oob";

/** XEP-0308 last message correction. */
export const NS_CORRECT = "urn:xmpp:message-correct:0";

/** XEP-0424 message retraction (version 1, 0.4.0 on). */
export const NS_RETRACT = "urn:xmpp:message-retract:1";

/** XEP-0424 message retraction as 0.3 and earlier wrote it, inside a XEP-0422 `<apply-to>`. */
export const NS_RETRACT_0 = "urn:xmpp:message-retract:0";

/** XEP-0422 message fastening (the `<apply-to>` of retraction and moderation before their version 1). */
export const NS_FASTEN = "urn:xmpp:fasten:0";

/** XEP-0425 moderated message retraction (0.3.0 on). */
export const NS_MODERATE = "urn:xmpp:message-moderate:1";

/** XEP-0425 message moderation as 0.2 wrote it. */
export const NS_MODERATE_0 = "urn:xmpp:message-moderate:0";

/** XEP-0444 message reactions. */
export const NS_REACTIONS = "urn:xmpp:reactions:0";

/** XEP-0334 message processing hints. */
export const NS_HINTS = "urn:xmpp:hints";

/** XEP-0085 chat state notifications. */
export const NS_CHAT_STATES = "http://jabber.org/protocol/chatstates";

/** XEP-0060 publish-subscribe (the requests). */
export const NS_PUBSUB = "http://jabber.org/protocol/pubsub";

/** XEP-0060 publish-subscribe (the notifications). */
export const NS_PUBSUB_EVENT = "http://jabber.org/protocol/pubsub#event";

/** XEP-0060 publish options (the FORM_TYPE of `<publish-options>`). */
export const NS_PUBSUB_PUBLISH_OPTIONS = "http://jabber.org/protocol/pubsub#publish-options";

/** XEP-0084 user avatar: the node holding the image. */
export const NS_AVATAR_DATA = "urn:xmpp:avatar:data";

/** XEP-0084 user avatar: the node saying which image is current. */
export const NS_AVATAR_METADATA = "urn:xmpp:avatar:metadata";

/** XEP-0054 vcard-temp. */
export const NS_VCARD = "vcard-temp";

/** XEP-0153 vCard-based avatars: the photo hash in presence. */
export const NS_VCARD_UPDATE = "vcard-temp:x:update";
