// Offers on the page: a card with the amount and the offer's state, and the steps this side
// may take while it is open and the listing is for sale: Accept, Decline and Counter the
// other side's offer, Withdraw one's own. The server checks every step again.

import { el, formatMoney } from "/static/dom.js";
import { state } from "/static/state.js";

/** @type {Record<string, string>} */
const SHOWN = {
  accepted: "Accepted",
  declined: "Declined",
  countered: "Countered",
  withdrawn: "Withdrawn",
  superseded: "Replaced by a newer offer",
};

/** @param {any} message @param {boolean} mine */
export function offerCard(message, mine) {
  const status = message.offer_status ?? "open";
  const card = el("div", { class: `offer ${status}` }, [
    el("div", { class: "label" }, [mine ? "Your offer" : "Offer"]),
    el("div", { class: "amount" }, [
      formatMoney(message.metadata?.amount_cents, message.metadata?.currency),
    ]),
    message.content ? el("div", {}, [message.content]) : "",
    SHOWN[status] ? el("div", { class: "offer-status" }, [SHOWN[status]]) : "",
  ]);
  if (status === "open" && state.open?.product.status === "active") {
    const steps = mine
      ? [step("Withdraw", () => state.client?.withdrawOffer(message.id))]
      : [
          step("Accept", () => state.client?.acceptOffer(message.id)),
          step("Decline", () => state.client?.declineOffer(message.id)),
          step("Counter", () => {
            const cents = askAmount("Counter with how much?");
            return cents ? state.client?.counterOffer(message.id, cents) : undefined;
          }),
        ];
    card.append(el("div", { class: "offer-actions" }, steps));
  }
  return card;
}

/** The composer's "Offer" button: an offer in the listing's currency. */
export async function makeOffer() {
  const conversation = state.open;
  if (!conversation || !state.client) return;
  const cents = askAmount(`Your offer, in ${conversation.product.currency}:`);
  if (!cents) return;
  try {
    await state.client.offer(conversation.id, cents, conversation.product.currency);
  } catch (error) {
    console.warn("no offer made:", error);
  }
}

/** @param {string} label @param {() => Promise<unknown> | undefined} act */
function step(label, act) {
  const button = /** @type {HTMLButtonElement} */ (
    el("button", { type: "button", class: `action offer-${label.toLowerCase()}` }, [label])
  );
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      await act();
    } catch (error) {
      console.warn(`${label.toLowerCase()} refused:`, error);
    } finally {
      button.disabled = false;
    }
  });
  return button;
}

/** An amount typed in major units ("420", "419.99", "419,99"), in cents; null if none.
 * @param {string} question */
function askAmount(question) {
  const typed = window.prompt(question)?.trim().replace(",", ".");
  if (!typed || !/^\d+(\.\d{1,2})?$/.test(typed)) return null;
  const cents = Math.round(Number(typed) * 100);
  return cents > 0 ? cents : null;
}
