-- Search in one's own conversations (store/search.py, message.search).
--
-- messages.search is a generated tsvector: the content's words, folded (lower case, accents
-- off: "Café" is 'cafe'), with the 'simple' configuration (no stemming, no stop words: any
-- language), plus one lexeme for each party, '~u<id>' ('~' never begins a word the parser
-- makes, so no text can forge one). A search asks for its words AND the caller's lexeme, so
-- the GIN index intersects the caller's posting list with the words' and never reads other
-- users' matches. Marketplace notices (no sender or recipient) are not searchable.
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

CREATE FUNCTION parley_search_vector(
    content text, sender_id bigint, recipient_id bigint
) RETURNS tsvector
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT to_tsvector('simple'::regconfig, parley_fold(coalesce(content, '')))
           || array_to_tsvector(array_remove(
                  ARRAY['~u' || sender_id::text, '~u' || recipient_id::text], NULL))
$$;

ALTER TABLE messages
    ADD COLUMN search tsvector
        GENERATED ALWAYS AS (parley_search_vector(content, sender_id, recipient_id)) STORED;

CREATE INDEX messages_search ON messages USING gin (search);
