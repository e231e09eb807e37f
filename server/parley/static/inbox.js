// The inbox (and the demo's listings): one row per conversation, newest first.

import { el, byId, formatMoney, formatTime, show } from "/static/dom.js";
import { openConversation, renderHead, renderSeen, rerender } from "/static/conversation.js";
import { explain, say } from "/static/notices.js";
import { isOnline, watchPeers } from "/static/presence.js";
import { state } from "/static/state.js";

export async function refreshInbox() {
  const client = state.client;
  if (!client || state.tab === "listings" || state.tab === "blocked") return;
  const archived = state.tab === "archived";
  const page = await client.inbox({ limit: 50, archived });
  if (client !== state.client || (state.tab === "archived") !== archived) return;
  state.conversations.clear();
  for (const conversation of page.conversations) state.conversations.set(conversation.id, conversation);
  renderInbox();
  watchPeers();
}

/** @param {any} conversation */
export function remember(conversation) {
  const inThisTab = state.tab === (conversation.archived ? "archived" : "inbox");
  const listed = conversation.last_seq > 0 && !conversation.deleted && !conversation.blocked;
  if (inThisTab && listed) state.conversations.set(conversation.id, conversation);
  else state.conversations.delete(conversation.id);
  if (state.open && state.open.id === conversation.id) {
    const statusMoved = state.open.product.status !== conversation.product.status;
    state.open = conversation;
    renderHead();
    if (statusMoved) rerender();
    renderSeen();
  }
  renderInbox();
}

export function renderInbox() {
  const client = state.client;
  if (!client || state.tab === "listings" || state.tab === "blocked") return;
  const items = [...state.conversations.values()].sort((a, b) =>
    (b.last_message_at ?? "").localeCompare(a.last_message_at ?? ""),
  );
  byId("inbox").replaceChildren(
    ...items.map((conversation) => {
      const unread = client.unreadCount(conversation.id);
      // One button per row: reached with Tab, opened with Enter or Space.
      const row = el("button", { type: "button", class: "row" }, [
        picture(conversation.product),
        el("span", { class: "summary" }, [
          el("span", { class: "line" }, [
            isOnline(conversation.peer.id)
              ? el("span", { class: "online-dot", role: "img", "aria-label": "online" })
              : "",
            el("span", { class: "title" }, [conversation.product.title]),
            el("time", {}, [formatTime(conversation.last_message_at)]),
          ]),
          el("span", { class: "line" }, [
            state.typists.get(conversation.id)?.size
              ? el("span", { class: "preview typing-now" }, ["typing…"])
              : el("span", { class: "preview" }, [
                  `${author(conversation)}: ${preview(conversation)}`,
                ]),
            // A muted conversation's count still shows, grey: it is not in the total.
            unread > 0
              ? el(
                  "span",
                  {
                    class: conversation.muted_until ? "badge muted" : "badge",
                    "aria-label": `${unread} unread`,
                  },
                  [String(unread)],
                )
              : "",
          ]),
        ]),
      ]);
      if (state.open?.id === conversation.id) row.setAttribute("aria-current", "true");
      row.addEventListener("click", () => openConversation(conversation));
      const item = el("li", { class: state.open?.id === conversation.id ? "active" : "" }, [row]);
      item.dataset.conversationId = String(conversation.id);
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
export function picture(product) {
  const url = product?.image_url ?? "";
  const image = el("img", { class: "thumb", alt: product?.title ?? "" });
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
export function selectTab(tab) {
  state.tab = tab;
  for (const button of document.querySelectorAll("[data-tab]")) {
    button.setAttribute("aria-selected", String(button.getAttribute("data-tab") === tab));
  }
  show(byId("inbox"), tab === "inbox" || tab === "archived");
  show(byId("listings"), tab === "listings");
  show(byId("blocked"), tab === "blocked");
  show(byId("inbox-empty"), false);
  say(byId("side-notice"), "");
  state.conversations.clear();
  byId("inbox").replaceChildren(); // never show the other tab's rows while this one loads
  if (tab === "listings") renderListings();
  else if (tab === "blocked") renderBlocked();
  else refreshInbox();
}

/** The Blocked folder: everyone this user blocked, each with Unblock. */
async function renderBlocked() {
  const client = state.client;
  if (!client) return;
  let users;
  try {
    users = await client.blockedUsers();
  } catch (error) {
    say(byId("side-notice"), explain(error, "blocked"));
    return;
  }
  if (client !== state.client || state.tab !== "blocked") return;
  byId("blocked").replaceChildren(
    ...users.map((/** @type {any} */ user) => {
      const name = user.display_name || `User ${user.id}`;
      const unblock = el("button", { type: "button", "aria-label": `Unblock ${name}` }, [
        "Unblock",
      ]);
      unblock.addEventListener("click", async () => {
        try {
          await client.unblock(user.id);
          renderBlocked();
        } catch (error) {
          say(byId("side-notice"), explain(error, "unblock"));
        }
      });
      return el("li", {}, [el("span", { class: "summary title" }, [name]), unblock]);
    }),
  );
  show(byId("inbox-empty"), users.length === 0);
}
