-- Search in one's own conversations (store/search.py, message.search).
--
-- messages.search is a generated tsvector: the content's words, folded (lower case, accents
-- off: "Café" is 'cafe'), with the 'simple' configuration (no stemming, no stop words: any
-- language), each once per party (below). Marketplace notices (no sender or recipient) are
-- not searchable.
--
-- Folding is the unaccent extension's where it can be created (Debian's Postgres and the
-- embedded one ship it); where it cannot, translate() over the Latin letters below, and
-- docs/data.md says so. Either way parley_fold is IMMUTABLE, as a generated column needs:
-- unaccent() is only STABLE because its dictionary could change, and Parley never changes it.

DO $$
BEGIN
    CREATE EXTENSION IF NOT EXISTS unaccent;
EXCEPTION WHEN OTHERS THEN
    RAISE NOTICE 'unaccent is not available (%): search folds accents with translate()', SQLERRM;
END;
$$;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'unaccent') THEN
        EXECUTE format($f$
            CREATE FUNCTION parley_fold(t text) RETURNS text
            LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT AS
            $b$SELECT %I.unaccent(%L::regdictionary, lower(t))$b$
        $f$, (SELECT n.nspname FROM pg_extension e JOIN pg_namespace n
                ON n.oid = e.extnamespace WHERE e.extname = 'unaccent'),
             (SELECT n.nspname FROM pg_extension e JOIN pg_namespace n
                ON n.oid = e.extnamespace WHERE e.extname = 'unaccent') || '.unaccent');
    ELSE
        CREATE FUNCTION parley_fold(t text) RETURNS text
        LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT AS $f$
            SELECT translate(lower(t),
                'àáâãäåāăąçćĉċčďđèéêëēĕėęěĝğġģĥħìíîïĩīĭįıĵķĺļľŀłñńņňòóôõöøōŏőŕŗřśŝşšţťŧùúûüũūŭůűųŵýÿŷźżž',
                'aaaaaaaaacccccddeeeeeeeeegggghhiiiiiiiiijklllllnnnnoooooooooorrrssssttttuuuuuuuuuuwyyyzzz')
        $f$;
    END IF;
END;
$$;

-- Each word once per party, prefixed with the party's id: 'u701:iphone', 'u702:iphone'. The
-- index is then one inverted index per user, and a search's lexemes ('u701:iph':*) lead
-- straight to the caller's matches: no user's posting list is read whole, whoever has how
-- many messages (a shared '~u701' lexeme was tried first: with the last word a prefix, GIN
-- reads it whole, 15 ms for a user with 200,000 messages; bench S7).
CREATE FUNCTION parley_search_vector(
    content text, sender_id bigint, recipient_id bigint
) RETURNS tsvector
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT array_to_tsvector(coalesce(array_agg('u' || party::text || ':' || word), '{}'))
      FROM unnest(tsvector_to_array(
               to_tsvector('simple'::regconfig, parley_fold(coalesce(content, ''))))) word,
           unnest(ARRAY[sender_id, recipient_id]) party
     WHERE party IS NOT NULL
       AND octet_length(word) < 2000  -- with its prefix, within a lexeme's 2,047 bytes
$$;

-- A search's tsquery: every word of the caller, folded, the last a prefix.
CREATE FUNCTION parley_search_query(user_id bigint, words text[]) RETURNS tsquery
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT string_agg(
               quote_literal('u' || user_id::text || ':' || parley_fold(w))
               || CASE WHEN i = cardinality(words) THEN ':*' ELSE '' END,
               ' & ' ORDER BY i)::tsquery
      FROM unnest(words) WITH ORDINALITY AS u(w, i)
$$;

ALTER TABLE messages
    ADD COLUMN search tsvector
        GENERATED ALWAYS AS (parley_search_vector(content, sender_id, recipient_id)) STORED;

CREATE INDEX messages_search ON messages USING gin (search);
