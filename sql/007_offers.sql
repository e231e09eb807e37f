-- Offers as a deal. An offer message carries its state in messages.offer_status; the rules of
-- the state machine are kept here, so no writer (a gateway, the internal API, a script) can
-- break them:
--   * an offer is born open, and at most one offer per conversation is open (the newest);
--     a new offer supersedes the open one, under the conversation's row lock;
--   * a state changes once, from open: to accepted, declined, countered, withdrawn or
--     superseded, and never again;
--   * an offer is made only on an active listing, in the listing's currency;
--   * a product is reserved for exactly one buyer (an accepted offer reserves it).
-- Who may take which step (the other side accepts; the maker withdraws) is the store's check
-- (store/offers.py), made under the locks below.
--
-- Lock order (it extends 004's): the product row first (offer actions), then conversation
-- rows in id order, then message rows, then badge rows in user-id order. A new offer locks its
-- conversation (messages_assign_seq) and reads, never locks, the product.

ALTER TABLE products DROP CONSTRAINT products_status_check;
ALTER TABLE products
    ADD COLUMN reserved_for bigint REFERENCES users (id),
    ADD CONSTRAINT products_status_check
        CHECK (status IN ('active', 'reserved', 'sold', 'deleted')),
    ADD CONSTRAINT products_reserved_for_a_buyer
        CHECK ((status = 'reserved') = (reserved_for IS NOT NULL));

ALTER TABLE messages
    ADD COLUMN offer_status text
        CHECK (offer_status IN ('open', 'accepted', 'declined', 'countered', 'withdrawn',
                                'superseded'));

-- Offers sent before: metadata.amount becomes amount_cents; the newest offer of a conversation
-- on an active listing is open, every other one superseded.
UPDATE messages
   SET metadata = (metadata - 'amount') || jsonb_build_object('amount_cents', metadata -> 'amount')
 WHERE message_type = 'offer' AND metadata ? 'amount' AND NOT metadata ? 'amount_cents';
UPDATE messages m
   SET offer_status = CASE
           WHEN m.unsent_at IS NULL
            AND m.id = (SELECT max(o.id) FROM messages o
                         WHERE o.conversation_id = m.conversation_id
                           AND o.message_type = 'offer' AND o.unsent_at IS NULL)
            AND (SELECT p.status FROM conversations c JOIN products p ON p.id = c.product_id
                  WHERE c.id = m.conversation_id) = 'active'
           THEN 'open'
           WHEN m.unsent_at IS NOT NULL THEN 'withdrawn'
           ELSE 'superseded' END
 WHERE m.message_type = 'offer';

ALTER TABLE messages
    ADD CONSTRAINT messages_offer_has_status
        CHECK ((message_type = 'offer') = (offer_status IS NOT NULL));

CREATE UNIQUE INDEX messages_one_open_offer
    ON messages (conversation_id) WHERE offer_status = 'open';

-- A new offer: the listing must be active and in its currency; it opens, and supersedes the
-- conversation's open offer. Named to fire after messages_assign_seq (BEFORE triggers fire in
-- name order), so the conversation row is already locked and the product read below is the
-- one committed before that lock was granted.
CREATE FUNCTION messages_offer_opens() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    listing record;
BEGIN
    SELECT p.status, p.currency INTO listing
      FROM conversations c JOIN products p ON p.id = c.product_id
     WHERE c.id = NEW.conversation_id;
    IF listing.status IS DISTINCT FROM 'active' THEN
        RAISE EXCEPTION 'the product is %: no offers can be made', listing.status
            USING ERRCODE = 'check_violation', CONSTRAINT = 'offers_need_an_active_product';
    END IF;
    IF NEW.metadata ->> 'currency' IS DISTINCT FROM listing.currency THEN
        RAISE EXCEPTION 'offers on this product are in %', listing.currency
            USING ERRCODE = 'check_violation', CONSTRAINT = 'offers_in_the_listing_currency';
    END IF;
    UPDATE messages SET offer_status = 'superseded'
     WHERE conversation_id = NEW.conversation_id AND offer_status = 'open';
    NEW.offer_status := 'open';
    RETURN NEW;
END;
$$;

CREATE TRIGGER messages_offer_opens
    BEFORE INSERT ON messages
    FOR EACH ROW WHEN (NEW.message_type = 'offer')
    EXECUTE FUNCTION messages_offer_opens();

-- A state changes once, from open.
CREATE FUNCTION messages_offer_moves_once() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.offer_status IS DISTINCT FROM 'open' THEN
        RAISE EXCEPTION 'offer % is %, not open', OLD.id, OLD.offer_status
            USING ERRCODE = 'check_violation', CONSTRAINT = 'offers_move_once_from_open';
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER messages_offer_moves_once
    BEFORE UPDATE OF offer_status ON messages
    FOR EACH ROW WHEN (OLD.offer_status IS DISTINCT FROM NEW.offer_status)
    EXECUTE FUNCTION messages_offer_moves_once();

-- A product that is no longer reserved is reserved for nobody.
CREATE FUNCTION products_release_reservation() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status <> 'reserved' THEN
        NEW.reserved_for := NULL;
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER products_release_reservation
    BEFORE UPDATE OF status ON products
    FOR EACH ROW EXECUTE FUNCTION products_release_reservation();
