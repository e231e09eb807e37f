// What went wrong, said in the page next to where it was tried: a short sentence for each
// refusal the server names (docs/protocol.md's error codes), never only the console.

import { state } from "/static/state.js";

/** @param {string} name */
function them(name) {
  return name || "this person";
}

/**
 * A refusal in the user's words.
 * @param {any} error a ParleyError (code, message, retryAfterMs) or anything thrown
 * @param {string} [action] what was tried: "send", "offer", "unsend", "answer", …
 */
export function explain(error, action = "") {
  const peer = them(state.open?.peer?.display_name ?? "");
  switch (error?.code) {
    case "blocked":
      return state.open?.blocked
        ? `You blocked ${peer}. Unblock them to write again.`
        : `Not delivered: ${peer} can't receive your messages.`;
    case "product_unavailable":
      return "This listing isn't for sale any more, so offers are closed.";
    case "offer_not_open":
      return "This offer was already answered.";
    case "not_an_offer":
      return "That message isn't an offer.";
    case "not_editable":
      return action === "unsend"
        ? "An accepted offer is a deal: it can't be unsent."
        : "This message can't be changed.";
    case "edit_window_closed":
      return "It's too late to change this message.";
    case "invalid_argument":
    case "invalid_metadata":
      return action === "offer" || action === "answer"
        ? "Enter an amount like 420 or 419.99."
        : "That wasn't accepted. Check what you typed.";
    case "content_too_long":
      return "That's too long to send as one message.";
    case "empty_content":
      return "Write something first.";
    case "rate_limited": {
      const seconds = Math.max(1, Math.ceil((error.retryAfterMs ?? 1000) / 1000));
      return `You're going too fast. Try again in ${seconds} s.`;
    }
    case "unavailable":
    case "timeout":
    case "closed":
      return "Parley can't reach the server right now. Nothing was lost: try again in a moment.";
    case "not_found":
      return "This conversation is gone.";
    default:
      return error?.message ? `That didn't work: ${error.message}` : "That didn't work. Try again.";
  }
}

/** Show ``text`` in a notice element (role="alert", so it is read out); "" hides it.
 * @param {HTMLElement} where @param {string} text */
export function say(where, text) {
  where.textContent = text;
  where.hidden = text === "";
}

/** A notice of its own under one message (its offer steps, Unsend, Report).
 * @param {HTMLElement} item the message's element @param {string} text */
export function sayUnder(item, text) {
  let notice = /** @type {HTMLElement | null} */ (item.querySelector(".notice"));
  if (!notice) {
    notice = document.createElement("p");
    notice.className = "notice";
    notice.setAttribute("role", "alert");
    item.append(notice);
  }
  say(notice, text);
}
