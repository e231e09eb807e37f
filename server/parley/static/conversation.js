// One conversation: bubbles in seq order, "Seen", older history on scrolling up (and newer on
// scrolling down, when it was opened at a search result).

import { el, byId, formatMoney, formatTime, show } from "/static/dom.js";
import { renderInbox } from "/static/inbox.js";
import { offerCard } from "/static/offers.js";
import { explain, say, sayUnder } from "/static/notices.js";
import { presenceText, watchPeers } from "/static/presence.js";
import { state } from "/static/state.js";

const PAGE = 30; // messages per history page

/** Open a conversation at its newest messages, or, with `aroundSeq`, at that message (a
 * search result), marked; scrolling up loads older ones either way, and scrolling down the
 * newer ones a result's page stops short of.
 * @param {any} conversation @param {number} [aroundSeq] */
export async function openConversation(conversation, aroundSeq) {
  const client = state.client;
  if (!client) return;
  state.open = conversation;
  state.messages.clear();
  // Until the page is here, a live message is placed only when the page will end at the newest.
  state.atNewest = !aroundSeq;
  state.newestSeq = 0;
  const list = byId("messages");
  list.replaceChildren();
  say(byId("composer-notice"), "");
  say(byId("head-notice"), "");
  renderTyping();
  renderHead();
  watchPeers();
  show(byId("conversation"), true);
  show(byId("placeholder"), false);
  byId("chat").classList.add("open");
  renderInbox();
  // The history is not news: a screen reader reads out only what arrives after it.
  list.setAttribute("aria-busy", "true");
  const page = aroundSeq ? { aroundSeq, limit: PAGE } : { limit: PAGE };
  const messages = await client.history(conversation.id, page);
  if (state.open?.id !== conversation.id) return;
  state.oldestSeq = messages.length ? messages[0].seq : 0;
  const last = messages.length ? messages[messages.length - 1].seq : 0;
  state.newestSeq = Math.max(state.newestSeq, last);
  state.atNewest = !aroundSeq || state.newestSeq >= (conversation.last_seq ?? 0);
  for (const message of messages) place(message);
  list.setAttribute("aria-busy", "false");
  const found = aroundSeq ? list.querySelector(`[data-seq="${aroundSeq}"]`) : null;
  if (found) {
    found.classList.add("found");
    found.scrollIntoView({ block: "center" });
    // A page too short to scroll could never reach its newer messages by scrolling.
    if (isAtEnd()) loadNewer();
  } else {
    scrollToEnd();
  }
  markRead();
  byId("text").focus();
}

export function closeConversation() {
  state.open = null;
  show(byId("conversation"), false);
  show(byId("placeholder"), true);
  byId("chat").classList.remove("open");
  renderInbox();
}

export function renderHead() {
  const conversation = state.open;
  if (!conversation) return;
  byId("conversation-title").textContent = conversation.product.title;
  const status = conversation.product.status;
  const price = formatMoney(conversation.product.price_cents, conversation.product.currency);
  const forSale = status === "active" ? "" : ` · ${status[0].toUpperCase()}${status.slice(1)}`;
  byId("conversation-peer").textContent = `${conversation.peer.display_name} · ${price}${forSale}`;
  byId("conversation-presence").textContent = presenceText(conversation.peer.id);
  // An offer only where the listing is for sale (the server refuses it otherwise too).
  show(byId("make-offer"), status === "active");
  const image = /** @type {HTMLImageElement} */ (byId("conversation-image"));
  image.alt = conversation.product.title;
  const url = conversation.product.image_url ?? "";
  if (url.startsWith("https://") || url.startsWith("/")) image.src = url;
  else image.removeAttribute("src");
  byId("archive").textContent = conversation.archived ? "Unarchive" : "Archive";
  byId("mute").textContent = conversation.muted_until ? "Unmute" : "Mute";
  byId("block").textContent = conversation.blocked ? "Unblock" : "Block";
}

/** Put a message in its place by seq; a message already shown is left as it is.
 * @param {any} message */
export function place(message) {
  if (state.messages.has(message.seq)) return;
  state.messages.set(message.seq, message);
  const item = bubble(message);
  const list = byId("messages");
  const after = [...list.children].find(
    (child) => Number(/** @type {HTMLElement} */ (child).dataset.seq) > message.seq,
  );
  list.insertBefore(item, after ?? null);
  renderSeen();
}

/** A text with no content or an image with no URL: its sender's data was erased.
 * @param {any} message */
function isErased(message) {
  if (message.message_type === "text") return !message.content;
  return message.message_type === "image" && !message.metadata?.url;
}

/** @param {any} message */
function bubble(message) {
  const mine = message.sender_id === state.me;
  const kind = message.message_type === "system" ? "system" : mine ? "mine" : "theirs";
  let body;
  if (message.unsent_at) {
    body = el("div", { class: "bubble unsent" }, [mine ? "You unsent a message" : "Message unsent"]);
  } else if (message.message_type === "offer") {
    body = offerCard(message, mine);
  } else if (isErased(message)) {
    body = el("div", { class: "bubble unsent" }, ["Content removed"]);
  } else {
    body = el("div", { class: "bubble" }, [message.content]);
  }
  // What a screen reader says as the message arrives in the log: who, then what.
  const who = kind === "system" ? "Notice" : mine ? "You" : state.open?.peer.display_name;
  const footer = el("div", { class: "footer" }, [
    el("time", {}, [formatTime(message.created_at)]),
    message.edited_at && !message.unsent_at ? el("span", { class: "edited" }, ["edited"]) : "",
    ...(mine && changeable(message) ? actions(message) : []),
    ...(!mine && kind !== "system" && !message.unsent_at ? [reportButton(message)] : []),
  ]);
  const item = el("div", { class: `message ${kind}` }, [
    el("span", { class: "visually-hidden" }, [`${who || "They"}:`]),
    body,
    !mine && message.safety?.length && !message.unsent_at ? safetyWarning(message.safety) : "",
    footer,
  ]);
  item.dataset.seq = String(message.seq);
  return item;
}

/** @type {Record<string, string>} */
const CONTACT = {
  phone: "a phone number",
  email: "an e-mail address",
  link: "a link",
  iban: "bank details",
  payment: "a payment outside the app",
};

/** Under the other side's message that would take the deal off the platform: the
 * recipient is warned (the sender is not). @param {string[]} kinds */
function safetyWarning(kinds) {
  const what = kinds.map((kind) => CONTACT[kind] ?? kind).join(", ");
  return el("p", { class: "safety-warning", role: "note" }, [
    `This message has ${what}. Keep payment and contact in the app: deals made elsewhere are not protected.`,
  ]);
}

/** Whether the sender may still edit or unsend it (the server checks too). @param {any} message */
function changeable(message) {
  const window = state.client?.limits.edit_window_ms ?? 0;
  return !message.unsent_at && Date.now() - Date.parse(message.created_at) < window;
}

/** Edit (text only) and Unsend (not an accepted offer: that is a deal), under my own
 * messages. @param {any} message */
function actions(message) {
  const buttons = [];
  if (message.message_type === "text") {
    const edit = el("button", { type: "button", class: "action" }, ["Edit"]);
    edit.addEventListener("click", () => startEditing(message));
    buttons.push(edit);
  }
  if (message.message_type === "offer" && message.offer_status === "accepted") return buttons;
  const unsend = el("button", { type: "button", class: "action" }, ["Unsend"]);
  unsend.addEventListener("click", async () => {
    try {
      await state.client?.unsend(message.id);
    } catch (error) {
      const item = unsend.closest(".message");
      if (item) sayUnder(/** @type {HTMLElement} */ (item), explain(error, "unsend"));
    }
  });
  buttons.push(unsend);
  return buttons;
}

/** "Report" under the other side's messages: the reason is asked for, then sent once.
 * @param {any} message */
function reportButton(message) {
  const button = /** @type {HTMLButtonElement} */ (
    el("button", { type: "button", class: "action" }, ["Report"])
  );
  button.addEventListener("click", async () => {
    const reason = window.prompt("Why are you reporting this message?");
    if (!reason || !reason.trim() || !state.client) return;
    try {
      await state.client.report(message.id, reason.trim());
      button.textContent = "Reported";
      button.disabled = true;
    } catch (error) {
      const item = button.closest(".message");
      if (item) sayUnder(/** @type {HTMLElement} */ (item), explain(error, "report"));
    }
  });
  return button;
}

/** @param {any} message */
function startEditing(message) {
  state.editing = message.id;
  const input = /** @type {HTMLInputElement} */ (byId("text"));
  input.value = message.content;
  input.placeholder = "Edit your message…";
  byId("editing").hidden = false;
  input.focus();
}

export function stopEditing() {
  state.editing = null;
  const input = /** @type {HTMLInputElement} */ (byId("text"));
  input.value = "";
  input.placeholder = "Write a message…";
  byId("editing").hidden = true;
}

/** Every bubble again: what they offer depends on the conversation (a listing reserved). */
export function rerender() {
  for (const message of state.messages.values()) replace(message);
}

/** An edited or unsent message takes its old one's place. @param {any} message */
export function replace(message) {
  if (!state.messages.has(message.seq) || state.open?.id !== message.conversation_id) return;
  state.messages.set(message.seq, message);
  const old = byId("messages").querySelector(`[data-seq="${message.seq}"]`);
  old?.replaceWith(bubble(message));
  if (state.editing === message.id && message.unsent_at) stopEditing();
  renderSeen();
}

/** "Delivered" or "Seen" under my last message that reached the other side's devices. */
export function renderSeen() {
  for (const seen of document.querySelectorAll("#messages .seen")) seen.remove();
  const conversation = state.open;
  if (!conversation) return;
  // A read implies delivered; take the larger in case one event came before the other.
  const delivered = Math.max(conversation.peer_delivered_seq ?? 0, conversation.peer_last_read_seq);
  const last = [...state.messages.values()]
    .filter((m) => m.sender_id === state.me && m.seq <= delivered)
    .sort((a, b) => b.seq - a.seq)[0];
  if (!last) return;
  const label = last.seq <= conversation.peer_last_read_seq ? "Seen" : "Delivered";
  const item = byId("messages").querySelector(`[data-seq="${last.seq}"]`);
  item?.append(el("span", { class: "seen" }, [label]));
}

/** Whether the list is scrolled to (within a few pixels of) its last message. */
export function isAtEnd() {
  const list = byId("messages");
  return list.scrollHeight - list.scrollTop - list.clientHeight < 40;
}

export function scrollToEnd() {
  const list = byId("messages");
  list.scrollTop = list.scrollHeight;
}

export async function loadOlder() {
  const client = state.client;
  const conversation = state.open;
  if (!client || !conversation || state.loadingOlder || state.oldestSeq <= 1) return;
  state.loadingOlder = true;
  const list = byId("messages");
  const fromBottom = list.scrollHeight - list.scrollTop;
  try {
    const older = await client.history(conversation.id, { beforeSeq: state.oldestSeq, limit: PAGE });
    if (state.open?.id !== conversation.id) return;
    state.oldestSeq = older.length ? older[0].seq : 0;
    for (const message of older) place(message);
    list.scrollTop = list.scrollHeight - fromBottom;
  } finally {
    state.loadingOlder = false;
  }
}

/** The messages after the newest shown, a page at a time, until the conversation's newest
 * is shown. Seqs are gapless, so the page below `newestSeq + PAGE + 1` holds the next PAGE;
 * near the end it reaches back over some already shown, which are left as they are. */
export async function loadNewer() {
  const client = state.client;
  const conversation = state.open;
  if (!client || !conversation || state.loadingNewer || state.atNewest) return;
  state.loadingNewer = true;
  let again = false;
  try {
    const before = state.newestSeq;
    const asked = before + PAGE;
    const newer = await client.history(conversation.id, { beforeSeq: asked + 1, limit: PAGE });
    if (state.open?.id !== conversation.id) return;
    for (const message of newer) place(message);
    const last = newer.length ? newer[newer.length - 1].seq : 0;
    state.newestSeq = Math.max(before, last);
    // Short of what was asked: the server had nothing newer when it read. A live message
    // that came after that (last_seq follows them; they are not placed meanwhile) is
    // fetched straight away, not left for a scroll that may never come.
    const ended = state.newestSeq < asked;
    const grew = state.newestSeq > before;
    state.atNewest = state.newestSeq >= (conversation.last_seq ?? 0) || (ended && !grew);
    again = ended && !state.atNewest;
    markRead();
  } finally {
    state.loadingNewer = false;
  }
  if (again) await loadNewer();
}

export function markRead() {
  const conversation = state.open;
  if (!conversation || !state.client || document.visibilityState !== "visible") return;
  const last = Math.max(0, ...state.messages.keys());
  if (last > (conversation.last_read_seq ?? 0) || state.client.unreadCount(conversation.id) > 0) {
    conversation.last_read_seq = last;
    state.client.markRead(conversation.id, last).catch((error) => console.warn(error));
  }
}

export function renderTyping() {
  const conversation = state.open;
  const typing = conversation ? state.typists.get(conversation.id)?.size : 0;
  byId("typing").textContent = typing ? `${conversation.peer.display_name} is typing…` : "";
}
