// Search over the user's conversations: each result with its words marked, and a result
// opens its conversation at that message.

import { el, byId, formatTime, show } from "/static/dom.js";
import { openConversation } from "/static/conversation.js";
import { explain, say } from "/static/notices.js";
import { state } from "/static/state.js";

const WAIT_MS = 250; // after the last keystroke
const PAGE = 30;
let timer = 0;
let asked = 0; // the newest search sent: an older answer arriving late is dropped

export function onSearchInput() {
  window.clearTimeout(timer);
  timer = window.setTimeout(search, WAIT_MS);
}

export function clearSearch() {
  /** @type {HTMLInputElement} */ (byId("search-input")).value = "";
  asked += 1;
  byId("search-results").replaceChildren();
  show(byId("search-results"), false);
}

async function search() {
  const client = state.client;
  const query = /** @type {HTMLInputElement} */ (byId("search-input")).value.trim();
  const results = byId("search-results");
  const mine = ++asked;
  // Only letters and digits make words: "?!" alone searches nothing.
  if (!client || !/[\p{L}\p{N}]/u.test(query)) {
    results.replaceChildren();
    show(results, false);
    return;
  }
  try {
    const page = await client.search(query, { limit: PAGE });
    if (mine !== asked) return;
    say(byId("side-notice"), "");
    results.replaceChildren(
      ...(page.results.length
        ? page.results.map(resultRow)
        : [el("li", { class: "empty" }, ["No messages found."])]),
    );
    show(results, true);
  } catch (error) {
    if (mine === asked) say(byId("side-notice"), explain(error));
  }
}

/** @param {{conversation_id: number, message: any, highlights: [number, number][]}} result */
function resultRow(result) {
  const message = result.message;
  const conversation = state.conversations.get(result.conversation_id);
  const who = message.sender_id === state.me ? "You" : conversation?.peer.display_name ?? "";
  const row = el("button", { type: "button", class: "row" }, [
    el("span", { class: "summary" }, [
      el("span", { class: "line" }, [
        el("span", { class: "title" }, [conversation?.product.title ?? "Conversation"]),
        el("time", {}, [formatTime(message.created_at)]),
      ]),
      el("span", { class: "line" }, [
        el("span", { class: "preview" }, [
          who ? `${who}: ` : "",
          ...marked(message.content, result.highlights),
        ]),
      ]),
    ]),
  ]);
  row.addEventListener("click", () => open(result).catch((e) => say(byId("side-notice"), explain(e))));
  return el("li", {}, [row]);
}

/** The content with each highlight in a <mark>; offsets are code points, as Array.from cuts.
 * @param {string} content @param {[number, number][]} highlights */
function marked(content, highlights) {
  const chars = Array.from(content);
  /** @type {(Node | string)[]} */
  const parts = [];
  let at = 0;
  for (const [start, end] of highlights) {
    if (start > at) parts.push(chars.slice(at, start).join(""));
    parts.push(el("mark", {}, [chars.slice(start, end).join("")]));
    at = end;
  }
  parts.push(chars.slice(at).join(""));
  return parts;
}

/** @param {{conversation_id: number, message: any}} result */
async function open(result) {
  const client = state.client;
  if (!client) return;
  const conversation =
    state.conversations.get(result.conversation_id) ??
    (await client.getConversation(result.conversation_id));
  await openConversation(conversation, result.message.seq);
}
