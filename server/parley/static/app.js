// The chat page: an inbox and a conversation on Parley's JavaScript SDK. Every piece of
// user text reaches the DOM through textContent, never as HTML.

import { ParleyClient } from "/parley.js";
import { el, byId, formatMoney, formatTime, show } from "/static/dom.js";

const PAGE = 30; // messages per history page

const state = {
  /** @type {ParleyClient | null} */ client: null,
  me: 0,
  tab: "inbox",
  /** @type {Map<number, any>} */ conversations: new Map(),
  /** @type {any} */ open: null, // the conversation on screen
  /** @type {Map<number, any>} */ messages: new Map(), // its messages by seq
  oldestSeq: 0,
  loadingOlder: false,
  /** @type {Map<number, Set<number>>} */ typists: new Map(), // conversation -> who types
  demo: /** @type {any} */ (null),
};

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
  client.on("conversation", (conversation) => remember(conversation));
  client.on("unread", (badge) => {
    document.title = client.unread.total > 0 ? `(${client.unread.total}) Parley` : "Parley";
    if (badge.conversation_id != null) renderInbox();
  });
  client.on("read", onRead);
  client.on("typing", onTyping);
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
  show(byId("listings-tab"), Boolean(state.demo));
}

function logout() {
  const client = state.client;
  state.client = null;
  client?.close();
  sessionStorage.removeItem("parley-user");
  state.conversations.clear();
  closeConversation();
  show(byId("logout"), false);
  byId("me").textContent = "";
  document.title = "Parley";
  showLogin();
}

// --- inbox ---------------------------------------------------------------------------

async function refreshInbox() {
  const client = state.client;
  if (!client || state.tab === "listings") return;
  const archived = state.tab === "archived";
  const page = await client.inbox({ limit: 50, archived });
  if (client !== state.client || (state.tab === "archived") !== archived) return;
  state.conversations.clear();
  for (const conversation of page.conversations) state.conversations.set(conversation.id, conversation);
  renderInbox();
}

/** @param {any} conversation */
function remember(conversation) {
  const inThisTab = state.tab === (conversation.archived ? "archived" : "inbox");
  const listed = conversation.last_seq > 0 && !conversation.deleted;
  if (inThisTab && listed) state.conversations.set(conversation.id, conversation);
  else state.conversations.delete(conversation.id);
  if (state.open && state.open.id === conversation.id) {
    state.open = conversation;
    renderHead();
    renderSeen();
  }
  renderInbox();
}

function renderInbox() {
  const client = state.client;
  if (!client || state.tab === "listings") return;
  const items = [...state.conversations.values()].sort((a, b) =>
    (b.last_message_at ?? "").localeCompare(a.last_message_at ?? ""),
  );
  byId("inbox").replaceChildren(
    ...items.map((conversation) => {
      const unread = client.unreadCount(conversation.id);
      const item = el("li", { class: state.open?.id === conversation.id ? "active" : "" }, [
        picture(conversation.product),
        el("div", { class: "summary" }, [
          el("div", { class: "line" }, [
            el("span", { class: "title" }, [conversation.product.title]),
            el("time", {}, [formatTime(conversation.last_message_at)]),
          ]),
          el("div", { class: "line" }, [
            state.typists.get(conversation.id)?.size
              ? el("span", { class: "preview typing-now" }, ["typing…"])
              : el("span", { class: "preview" }, [
                  `${author(conversation)}: ${preview(conversation)}`,
                ]),
            unread > 0 ? el("span", { class: "badge" }, [String(unread)]) : "",
          ]),
        ]),
      ]);
      item.dataset.conversationId = String(conversation.id);
      item.addEventListener("click", () => openConversation(conversation));
      return item;
    }),
  );
  show(byId("inbox-empty"), items.length === 0);
}

/** @param {any} conversation */
function author(conversation) {
  if (conversation.last_message_sender_id === state.me) return "You";
  if (conversation.last_message_sender_id == null) return "Notice";
  return conversation.peer.display_name;
}

/** @param {any} conversation */
function preview(conversation) {
  if (conversation.last_message_type === "offer") return "made an offer";
  if (conversation.last_message_type === "image") return "sent a photo";
  return conversation.last_message_text ?? "";
}

/** @param {any} product */
function picture(product) {
  const url = product?.image_url ?? "";
  const image = el("img", { class: "thumb", alt: "" });
  if (url.startsWith("https://") || url.startsWith("/")) image.setAttribute("src", url);
  return image;
}

function renderListings() {
  const listings = state.demo?.products ?? [];
  byId("listings").replaceChildren(
    ...listings
      .filter((/** @type {any} */ product) => product.seller_id !== state.me)
      .map((/** @type {any} */ product) => {
        const item = el("li", {}, [
          picture(product),
          el("div", { class: "summary" }, [
            el("span", { class: "title" }, [product.title]),
            el("span", { class: "preview" }, [formatMoney(product.price_cents, product.currency)]),
          ]),
          el("button", { type: "button" }, ["Message seller"]),
        ]);
        item.addEventListener("click", async () => {
          const conversation = await state.client?.openConversation(product.id);
          if (conversation) openConversation(conversation);
        });
        return item;
      }),
  );
}

/** @param {string} tab */
function selectTab(tab) {
  state.tab = tab;
  for (const button of document.querySelectorAll("[data-tab]")) {
    button.setAttribute("aria-selected", String(button.getAttribute("data-tab") === tab));
  }
  show(byId("inbox"), tab !== "listings");
  show(byId("listings"), tab === "listings");
  show(byId("inbox-empty"), false);
  state.conversations.clear();
  byId("inbox").replaceChildren(); // never show the other tab's rows while this one loads
  if (tab === "listings") renderListings();
  else refreshInbox();
}

// --- one conversation ------------------------------------------------------------------

/** @param {any} conversation */
async function openConversation(conversation) {
  const client = state.client;
  if (!client) return;
  state.open = conversation;
  state.messages.clear();
  byId("messages").replaceChildren();
  renderTyping();
  renderHead();
  show(byId("conversation"), true);
  show(byId("placeholder"), false);
  byId("chat").classList.add("open");
  renderInbox();
  const messages = await client.history(conversation.id, { limit: PAGE });
  if (state.open?.id !== conversation.id) return;
  state.oldestSeq = messages.length ? messages[0].seq : 0;
  for (const message of messages) place(message);
  scrollToEnd();
  markRead();
  byId("text").focus();
}

function closeConversation() {
  state.open = null;
  show(byId("conversation"), false);
  show(byId("placeholder"), true);
  byId("chat").classList.remove("open");
  renderInbox();
}

function renderHead() {
  const conversation = state.open;
  if (!conversation) return;
  byId("conversation-title").textContent = conversation.product.title;
  byId("conversation-peer").textContent = `${conversation.peer.display_name} · ${formatMoney(
    conversation.product.price_cents,
    conversation.product.currency,
  )}`;
  const image = /** @type {HTMLImageElement} */ (byId("conversation-image"));
  const url = conversation.product.image_url ?? "";
  if (url.startsWith("https://") || url.startsWith("/")) image.src = url;
  else image.removeAttribute("src");
  byId("archive").textContent = conversation.archived ? "Unarchive" : "Archive";
}

/** Put a message in its place by seq; a message already shown is left as it is.
 * @param {any} message */
function place(message) {
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

/** @param {any} message */
function bubble(message) {
  const mine = message.sender_id === state.me;
  const kind = message.message_type === "system" ? "system" : mine ? "mine" : "theirs";
  let body;
  if (message.message_type === "offer") {
    body = el("div", { class: "offer" }, [
      el("div", { class: "label" }, [mine ? "Your offer" : "Offer"]),
      el("div", { class: "amount" }, [
        formatMoney(message.metadata?.amount, message.metadata?.currency),
      ]),
      message.content ? el("div", {}, [message.content]) : "",
    ]);
  } else {
    body = el("div", { class: "bubble" }, [message.content]);
  }
  const item = el("li", { class: `message ${kind}` }, [
    body,
    el("time", {}, [formatTime(message.created_at)]),
  ]);
  item.dataset.seq = String(message.seq);
  return item;
}

/** "Seen" under my last message the other side has read. */
function renderSeen() {
  for (const seen of document.querySelectorAll("#messages .seen")) seen.remove();
  const conversation = state.open;
  if (!conversation) return;
  const read = [...state.messages.values()]
    .filter((m) => m.sender_id === state.me && m.seq <= conversation.peer_last_read_seq)
    .sort((a, b) => b.seq - a.seq)[0];
  if (!read) return;
  const item = byId("messages").querySelector(`[data-seq="${read.seq}"]`);
  item?.append(el("span", { class: "seen" }, ["Seen"]));
}

function scrollToEnd() {
  const list = byId("messages");
  list.scrollTop = list.scrollHeight;
}

async function loadOlder() {
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

function markRead() {
  const conversation = state.open;
  if (!conversation || !state.client || document.visibilityState !== "visible") return;
  const last = Math.max(0, ...state.messages.keys());
  if (last > (conversation.last_read_seq ?? 0) || state.client.unreadCount(conversation.id) > 0) {
    conversation.last_read_seq = last;
    state.client.markRead(conversation.id, last).catch((error) => console.warn(error));
  }
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
  if (state.open?.id !== message.conversation_id) return;
  const atEnd = isAtEnd();
  place(message);
  if (atEnd || message.sender_id === state.me) scrollToEnd();
  if (message.sender_id !== state.me) markRead();
}

function isAtEnd() {
  const list = byId("messages");
  return list.scrollHeight - list.scrollTop - list.clientHeight < 40;
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

function renderTyping() {
  const conversation = state.open;
  const typing = conversation ? state.typists.get(conversation.id)?.size : 0;
  byId("typing").textContent = typing ? `${conversation.peer.display_name} is typing…` : "";
}

// --- wiring ----------------------------------------------------------------------------

byId("composer").addEventListener("submit", async (event) => {
  event.preventDefault();
  const input = /** @type {HTMLInputElement} */ (byId("text"));
  const content = input.value;
  const conversation = state.open;
  if (!content.trim() || !conversation || !state.client) return;
  input.value = "";
  try {
    await state.client.send(conversation.id, content);
  } catch (error) {
    console.warn("not sent:", error);
    if (!input.value) input.value = content;
  }
});
byId("text").addEventListener("input", () => {
  if (state.open && state.client) state.client.typing(state.open.id);
});
byId("messages").addEventListener("scroll", () => {
  if (byId("messages").scrollTop < 60) loadOlder();
});
byId("archive").addEventListener("click", async () => {
  const conversation = state.open;
  if (!conversation || !state.client) return;
  if (conversation.archived) await state.client.unarchive(conversation.id);
  else await state.client.archive(conversation.id);
  closeConversation();
});
byId("back").addEventListener("click", closeConversation);
byId("logout").addEventListener("click", logout);
for (const button of document.querySelectorAll("[data-tab]")) {
  button.addEventListener("click", () => selectTab(button.getAttribute("data-tab") ?? "inbox"));
}
document.addEventListener("visibilitychange", markRead);

start();
