-- Parley schema: users and products mirrored from the marketplace, conversations and messages owned here.
--
-- Invariants kept by the triggers in 002_triggers.sql (checked by store.recount_counters):
--   conversations.last_seq            = max(messages.seq) of the conversation, seqs gapless from 1
--   conversations.<side>_unread_count = count of messages to that side, not is_read, seq > <side>_cleared_seq
--   conversations.last_message_*      = the message with seq = last_seq

CREATE TABLE users (
    id            bigint PRIMARY KEY,
    display_name  text NOT NULL DEFAULT '',
    avatar_url    text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE products (
    id           bigint PRIMARY KEY,
    seller_id    bigint NOT NULL REFERENCES users (id),
    title        text NOT NULL DEFAULT '',
    price_cents  bigint CHECK (price_cents >= 0),
    currency     text NOT NULL DEFAULT 'USD' CHECK (currency ~ '^[A-Z]{3}$'),
    image_url    text,
    status       text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'sold', 'deleted')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX products_seller_id_idx ON products (seller_id);

CREATE TABLE conversations (
    id                      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    product_id              bigint NOT NULL REFERENCES products (id),
    buyer_id                bigint NOT NULL REFERENCES users (id),
    seller_id               bigint NOT NULL REFERENCES users (id),
    -- Cached preview of the newest message, kept by trigger.
    last_seq                bigint NOT NULL DEFAULT 0,
    last_message_text       text,
    last_message_type       text,
    last_message_sender_id  bigint,
    last_message_at         timestamptz,
    -- Per-side state. "cleared" hides history up to that seq (delete for me);
    -- "last_read" is the read-receipt watermark the other side sees.
    buyer_unread_count      integer NOT NULL DEFAULT 0 CHECK (buyer_unread_count >= 0),
    seller_unread_count     integer NOT NULL DEFAULT 0 CHECK (seller_unread_count >= 0),
    buyer_last_read_seq     bigint NOT NULL DEFAULT 0,
    seller_last_read_seq    bigint NOT NULL DEFAULT 0,
    buyer_cleared_seq       bigint NOT NULL DEFAULT 0,
    seller_cleared_seq      bigint NOT NULL DEFAULT 0,
    deleted_by_buyer        boolean NOT NULL DEFAULT false,
    deleted_by_seller       boolean NOT NULL DEFAULT false,
    archived_by_buyer       boolean NOT NULL DEFAULT false,
    archived_by_seller      boolean NOT NULL DEFAULT false,
    -- The listing's lifecycle: 'archived' once the product is sold or deleted.
    status                  text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'archived')),
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT conversations_one_per_triple UNIQUE (product_id, buyer_id, seller_id),
    CONSTRAINT conversations_two_parties CHECK (buyer_id <> seller_id)
);

CREATE TABLE messages (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    conversation_id  bigint NOT NULL REFERENCES conversations (id),
    seq              bigint NOT NULL,
    -- NULL sender and recipient: a system message from the marketplace, addressed to both sides.
    sender_id        bigint REFERENCES users (id),
    recipient_id     bigint REFERENCES users (id),
    message_type     text NOT NULL CHECK (message_type IN ('text', 'image', 'offer', 'system')),
    content          text NOT NULL DEFAULT '',
    metadata         jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(metadata) = 'object'),
    client_msg_id    text NOT NULL CHECK (length(client_msg_id) BETWEEN 1 AND 64),
    is_read          boolean NOT NULL DEFAULT false,
    read_at          timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT messages_conversation_seq UNIQUE (conversation_id, seq),
    CONSTRAINT messages_sender_client_msg_id UNIQUE NULLS NOT DISTINCT (sender_id, client_msg_id),
    CONSTRAINT messages_system_has_no_parties
        CHECK ((message_type = 'system') = (sender_id IS NULL AND recipient_id IS NULL)),
    CONSTRAINT messages_read_has_time CHECK (is_read = (read_at IS NOT NULL))
);

-- Indexes, one per query in server/store.py. The seed's nine map onto these:
--   conversations by buyer / by seller / by recent activity / status filter
--       -> conversations_{buyer,seller}_inbox (side, archived, last_message_at, id), partial on not deleted
--   conversations by product, get-or-create lookup
--       -> conversations_one_per_triple (product_id, buyer_id, seller_id)
--   unread per recipient
--       -> conversations_{buyer,seller}_unread (badge totals, index-only)
--       -> messages_recipient_unread (recount, and unread messages of a recipient)
--   messages of a conversation (history, sync, mark-read range)
--       -> messages_conversation_seq (conversation_id, seq)
--   messages by sender (idempotent retry lookup)
--       -> messages_sender_client_msg_id (sender_id, client_msg_id)
CREATE INDEX conversations_buyer_inbox
    ON conversations (buyer_id, archived_by_buyer, last_message_at, id)
    WHERE NOT deleted_by_buyer AND last_message_at IS NOT NULL;
CREATE INDEX conversations_seller_inbox
    ON conversations (seller_id, archived_by_seller, last_message_at, id)
    WHERE NOT deleted_by_seller AND last_message_at IS NOT NULL;
CREATE INDEX conversations_buyer_unread
    ON conversations (buyer_id) INCLUDE (buyer_unread_count) WHERE buyer_unread_count > 0;
CREATE INDEX conversations_seller_unread
    ON conversations (seller_id) INCLUDE (seller_unread_count) WHERE seller_unread_count > 0;
CREATE INDEX messages_recipient_unread
    ON messages (recipient_id, conversation_id) WHERE NOT is_read AND recipient_id IS NOT NULL;
