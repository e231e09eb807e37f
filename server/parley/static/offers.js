// Offers on the page: a card with the amount and the offer's state, and the steps this side
// may take while it is open and the listing is for sale: Accept, Decline and Counter the
// other side's offer, Withdraw one's own. The server checks every step again.

import { ParleyError } from "/parley.js";
import { byId, el, formatMoney } from "/static/dom.js";
import { explain, say, sayUnder } from "/static/notices.js";
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
            return cents === null ? undefined : state.client?.counterOffer(message.id, cents);
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
  const notice = byId("composer-notice");
  try {
    const cents = askAmount(`Your offer, in ${conversation.product.currency}:`);
    if (cents === null) return;
    await state.client.offer(conversation.id, cents, conversation.product.currency);
    say(notice, "");
  } catch (error) {
    say(notice, explain(error, "offer"));
  }
}

/** @param {string} label @param {() => Promise<unknown> | undefined} act */
function step(label, act) {
  const button = /** @type {HTMLButtonElement} */ (
    el("button", { type: "button", class: `action offer-${label.toLowerCase()}` }, [label])
  );
  button.addEventListener("click", async () => {
    button.disabled = true;
    const item = /** @type {HTMLElement | null} */ (button.closest(".message"));
    try {
      await act();
    } catch (error) {
      if (item) sayUnder(item, explain(error, "answer"));
    } finally {
      button.disabled = false;
    }
  });
  return button;
}

/** An amount typed in major units ("420", "419.99", "419,99"), in cents; null when the
 * question was dismissed. Anything else is refused as the server would refuse it.
 * @param {string} question */
function askAmount(question) {
  const answer = window.prompt(question);
  if (answer === null) return null;
  const typed = answer.trim().replace(",", ".");
  const cents = /^\d+(\.\d{1,2})?$/.test(typed) ? Math.round(Number(typed) * 100) : 0;
  if (cents <= 0) throw new ParleyError("invalid_argument", `not an amount: ${answer}`);
  return cents;
}
