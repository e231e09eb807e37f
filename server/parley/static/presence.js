// Who is online: the page watches the people of the conversations it lists, and says
// "online" or "last seen …" in the conversation's header, with a dot in the inbox.

import { byId } from "/static/dom.js";
import { state } from "/static/state.js";

/** Watch the peers of the listed conversations and of the open one (the SDK keeps the watch
 * across reconnects; a watched user stays watched). */
export function watchPeers() {
  const client = state.client;
  if (!client) return;
  const peers = new Set([...state.conversations.values()].map((c) => c.peer.id));
  if (state.open) peers.add(state.open.peer.id);
  const fresh = [...peers].filter((id) => !client.presence.has(id));
  if (fresh.length) client.subscribePresence(fresh).catch(() => {}); // retried on reconnect
}

/** @param {number} userId */
export function isOnline(userId) {
  return state.client?.presence.get(userId)?.online ?? false;
}

/** "online", "last seen 5 min ago", or "" (hidden, or never seen). @param {number} userId */
export function presenceText(userId) {
  const presence = state.client?.presence.get(userId);
  if (!presence) return "";
  if (presence.online) return "online";
  if (!presence.last_seen_at) return "";
  return `last seen ${ago(new Date(presence.last_seen_at))}`;
}

/** @param {Date} when */
function ago(when) {
  const minutes = Math.floor((Date.now() - when.getTime()) / 60000);
  if (minutes < 1) return "just now";
  if (minutes < 60) return `${minutes} min ago`;
  const hours = Math.floor(minutes / 60);
  if (hours < 24) return `${hours} h ago`;
  return `on ${when.toLocaleDateString(undefined, { day: "numeric", month: "short" })}`;
}

/** The privacy toggle in the bar: whether others see this user online. */
export function renderPrivacy() {
  const box = /** @type {HTMLInputElement} */ (byId("show-presence"));
  box.checked = state.client?.settings.show_presence ?? true;
}

export function bindPrivacy() {
  const box = /** @type {HTMLInputElement} */ (byId("show-presence"));
  box.addEventListener("change", async () => {
    const wanted = box.checked;
    try {
      await state.client?.updateSettings({ show_presence: wanted });
    } catch (error) {
      console.warn("could not change the setting:", error);
      box.checked = !wanted;
    }
  });
}
