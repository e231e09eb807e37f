-- Delivered receipts (the second tick): each side's forward-only watermark of what reached one
-- of its devices, next to the read one. A device confirms with `message.received`; a read
-- implies delivered, so the read statement moves it too (store/reads.py). `*_delivered_at`
-- is when the watermark last moved (NULL: never, or before this migration).
ALTER TABLE conversations
    ADD COLUMN buyer_delivered_seq  bigint NOT NULL DEFAULT 0,
    ADD COLUMN seller_delivered_seq bigint NOT NULL DEFAULT 0,
    ADD COLUMN buyer_delivered_at   timestamptz,
    ADD COLUMN seller_delivered_at  timestamptz;

-- What was read before this migration was delivered.
UPDATE conversations
   SET buyer_delivered_seq = buyer_last_read_seq, seller_delivered_seq = seller_last_read_seq
 WHERE buyer_last_read_seq > 0 OR seller_last_read_seq > 0;

-- Never past the last message, never behind the read watermark (a read implies delivered).
ALTER TABLE conversations
    ADD CONSTRAINT conversations_delivered_in_range CHECK (
        buyer_delivered_seq BETWEEN buyer_last_read_seq AND last_seq
        AND seller_delivered_seq BETWEEN seller_last_read_seq AND last_seq);
