// The chat page: log in, then an inbox and a conversation on Parley's JavaScript SDK. Every
// piece of user text reaches the DOM through textContent, never as HTML.

import { ParleyClient } from "/parley.js";
import {
  closeConversation,
  isAtEnd,
  loadNewer,
  loadOlder,
  openConversation,
  markRead,
  place,
  renderHead,
  renderSeen,
  renderTyping,
  replace,
  scrollToEnd,
  stopEditing,
} from "/static/conversation.js";
import { el, byId, show } from "/static/dom.js";
import { refreshInbox, remember, renderInbox, selectTab } from "/static/inbox.js";
import { explain, say } from "/static/notices.js";
import { makeOffer } from "/static/offers.js";
import { clearSearch, onSearchInput } from "/static/search.js";
import { bindPrivacy, renderPrivacy } from "/static/presence.js";
import { state } from "/static/state.js";

async function start() {
  const marketplace = await fetch("/demo/marketplace").then((r) => (r.ok ? r.json() : null));
  state.demo = marketplace;
  show(byId("demo-note"), Boolean(marketplace));
  const fragment = new URLSearchParams(location.hash.slice(1));
  const saved = sessionStorage.getItem("parley-user");
  if (fragment.get("token")) login(fragment.get("token") ?? "");
  else if (marketplace && saved) login(Number(saved));
  else showLogin();
}

function showLogin() {
  show(byId("login"), true);
  show(byId("chat"), false);
  const list = byId("login-users");
  list.replaceChildren();
  if (!state.demo) {
    byId("login-help").textContent =
      "This server is not in demo mode. Open this page with #token=<a token from your marketplace>.";
    return;
  }
  for (const user of state.demo.users) {
    const button = el("button", { type: "button" }, [
      `Log in as ${user.display_name}`,
      el("small", {}, [user.about]),
    ]);
    button.addEventListener("click", () => login(user.id));
    list.append(el("li", {}, [button]));
  }
}

/** @param {number | string} who a demo user's id, or a token */
async function login(who) {
  const token =
    typeof who === "string"
      ? who
      : async () => {
          const response = await fetch("/demo/token", {
            method: "POST",
            headers: { "Content-Type": "application/json" },
            body: JSON.stringify({ user_id: who }),
          });
          if (!response.ok) throw new Error(`demo token: HTTP ${response.status}`);
          return (await response.json()).token;
        };
  if (typeof who === "number") sessionStorage.setItem("parley-user", String(who));
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const client = new ParleyClient({ url: `${scheme}//${location.host}/ws`, token });
  state.client = client;
  client.on("status", ({ state: status }) => {
    show(byId("status"), status === "reconnecting" || status === "connecting");
    if (status === "open") refreshInbox();
    if (status === "closed" && state.client === client) logout();
  });
  client.on("message", onMessage);
  client.on("updated", onUpdated);
  client.on("conversation", (conversation) => remember(conversation));
  client.on("unread", (badge) => {
    document.title = client.unread.total > 0 ? `(${client.unread.total}) Parley` : "Parley";
    if (badge.conversation_id != null) renderInbox();
  });
  client.on("read", onRead);
  client.on("delivered", onDelivered);
  client.on("typing", onTyping);
  client.on("presence", () => {
    renderInbox();
    renderHead();
  });
  client.on("settings", renderPrivacy);
  show(byId("login"), false);
  show(byId("chat"), true);
  try {
    await client.connect();
  } catch (error) {
    console.warn("could not log in:", error);
    return;
  }
  state.me = client.user?.id ?? 0;
  byId("me").textContent = client.user?.display_name || `user ${state.me}`;
  show(byId("logout"), true);
  renderPrivacy();
  show(byId("privacy"), true);
  show(byId("listings-tab"), Boolean(state.demo));
}

function logout() {
  const client = state.client;
  state.client = null;
  client?.close();
  sessionStorage.removeItem("parley-user");
  state.conversations.clear();
  closeConversation();
  clearSearch();
  show(byId("logout"), false);
  show(byId("privacy"), false);
  byId("me").textContent = "";
  document.title = "Parley";
  showLogin();
}

// --- live events -----------------------------------------------------------------------

/** @param {any} message */
function onMessage(message) {
  const known = state.conversations.get(message.conversation_id);
  if (known) {
    known.last_message_text = message.content;
    known.last_message_type = message.message_type;
    known.last_message_sender_id = message.sender_id;
    known.last_message_at = message.created_at;
    known.last_seq = Math.max(known.last_seq, message.seq);
    renderInbox();
  } else if (state.tab === "inbox") {
    refreshInbox();
  }
  const open = state.open;
  if (open?.id !== message.conversation_id) return;
  open.last_seq = Math.max(open.last_seq ?? 0, message.seq);
  if (!state.atNewest) {
    // A search result's page, short of the end: the message would land after a gap. It loads
    // in its place on scrolling down, and one's own message brings the newest page back.
    if (message.sender_id === state.me) openConversation(open);
    return;
  }
  const atEnd = isAtEnd();
  state.newestSeq = Math.max(state.newestSeq, message.seq);
  place(message);
  if (atEnd || message.sender_id === state.me) scrollToEnd();
  if (message.sender_id !== state.me) markRead();
}

/** An edit or unsend: the bubble changes, and the inbox row's preview may too.
 * @param {any} message */
function onUpdated(message) {
  replace(message);
  if (state.conversations.has(message.conversation_id)) {
    state.client?.getConversation(message.conversation_id).then(remember, () => {});
  }
}

/** @param {any} receipt */
function onRead(receipt) {
  const conversation = state.conversations.get(receipt.conversation_id) ?? state.open;
  if (!conversation || conversation.id !== receipt.conversation_id) return;
  if (receipt.reader_id === state.me) {
    conversation.last_read_seq = Math.max(conversation.last_read_seq, receipt.up_to_seq);
  } else {
    conversation.peer_last_read_seq = Math.max(conversation.peer_last_read_seq, receipt.up_to_seq);
    if (state.open?.id === receipt.conversation_id) {
      state.open.peer_last_read_seq = conversation.peer_last_read_seq;
      renderSeen();
    }
  }
}

/** @param {any} receipt */
function onDelivered(receipt) {
  const conversation = state.conversations.get(receipt.conversation_id) ?? state.open;
  if (!conversation || conversation.id !== receipt.conversation_id) return;
  if (receipt.recipient_id === state.me) return; // my own devices' receipts: nothing to show
  conversation.peer_delivered_seq = Math.max(conversation.peer_delivered_seq ?? 0, receipt.up_to_seq);
  if (state.open?.id === receipt.conversation_id) {
    state.open.peer_delivered_seq = conversation.peer_delivered_seq;
    renderSeen();
  }
}

/** @param {any} typing */
function onTyping(typing) {
  if (typing.user_id === state.me) return;
  let typists = state.typists.get(typing.conversation_id);
  if (!typists) state.typists.set(typing.conversation_id, (typists = new Set()));
  if (typing.typing) typists.add(typing.user_id);
  else typists.delete(typing.user_id);
  renderTyping();
  renderInbox();
}


// --- wiring ----------------------------------------------------------------------------

byId("composer").addEventListener("submit", async (event) => {
  event.preventDefault();
  const input = /** @type {HTMLInputElement} */ (byId("text"));
  const content = input.value;
  const conversation = state.open;
  if (!content.trim() || !conversation || !state.client) return;
  const editing = state.editing;
  if (editing != null) stopEditing();
  input.value = "";
  const notice = byId("composer-notice");
  try {
    if (editing != null) await state.client.edit(editing, content);
    else await state.client.send(conversation.id, content);
    say(notice, "");
  } catch (error) {
    // The text comes back to the box, and the page says why it did not go.
    say(notice, explain(error, editing != null ? "edit" : "send"));
    if (!input.value) input.value = content;
  }
});
byId("text").addEventListener("input", () => {
  if (state.open && state.client) state.client.typing(state.open.id);
});
byId("messages").addEventListener("scroll", () => {
  if (byId("messages").scrollTop < 60) loadOlder();
  else if (isAtEnd()) loadNewer();
});
byId("archive").addEventListener("click", async () => {
  const conversation = state.open;
  if (!conversation || !state.client) return;
  try {
    if (conversation.archived) await state.client.unarchive(conversation.id);
    else await state.client.archive(conversation.id);
    closeConversation();
  } catch (error) {
    say(byId("head-notice"), explain(error, "archive"));
  }
});
byId("mute").addEventListener("click", async () => {
  const conversation = state.open;
  if (!conversation || !state.client) return;
  try {
    if (conversation.muted_until) await state.client.unmute(conversation.id);
    else await state.client.mute(conversation.id);
  } catch (error) {
    say(byId("head-notice"), explain(error, "mute"));
  }
});
byId("block").addEventListener("click", async () => {
  const conversation = state.open;
  if (!conversation || !state.client) return;
  const peer = conversation.peer;
  try {
    if (conversation.blocked) await state.client.unblock(peer.id);
    else if (window.confirm(`Block ${peer.display_name || "this user"}? Neither of you can message the other.`)) {
      await state.client.block(peer.id);
      closeConversation();
    }
  } catch (error) {
    say(byId("head-notice"), explain(error, "block"));
  }
});
byId("back").addEventListener("click", closeConversation);
byId("cancel-edit").addEventListener("click", stopEditing);
byId("make-offer").addEventListener("click", makeOffer);
byId("text").addEventListener("keydown", (event) => {
  if (event.key === "Escape" && state.editing != null) stopEditing();
});
byId("logout").addEventListener("click", logout);
byId("search-input").addEventListener("input", onSearchInput);
byId("search").addEventListener("submit", (event) => event.preventDefault());
bindPrivacy();
for (const button of document.querySelectorAll("[data-tab]")) {
  button.addEventListener("click", () => selectTab(button.getAttribute("data-tab") ?? "inbox"));
}
document.addEventListener("visibilitychange", markRead);

start();
