-- sql/017's search vector, the same lexemes at a seventh of the cost to a send.
--
-- 017 wrote parley_search_vector and the unaccent form of parley_fold in SQL. Neither can be
-- inlined (an aggregate; a STABLE function under an IMMUTABLE one), so Postgres planned their
-- bodies again in every statement that stored a message: 140 us of a one-message send's
-- Postgres time, more than the rest of the vector together. PL/pgSQL keeps a plan for each
-- expression for the session, and the vector is built with string functions instead of a
-- query. Both functions return exactly what 017's did (checked on 20,000 random texts), so
-- the stored vectors and the index stay as they are.

-- Only where 017 folded with unaccent: the translate() form is inlined already.
DO $$
DECLARE
    schema text := (SELECT n.nspname FROM pg_extension e
                      JOIN pg_namespace n ON n.oid = e.extnamespace
                     WHERE e.extname = 'unaccent');
BEGIN
    IF schema IS NOT NULL AND (SELECT prosrc FROM pg_proc
                                WHERE oid = 'parley_fold(text)'::regprocedure) LIKE '%unaccent%'
    THEN
        EXECUTE format($f$
            CREATE OR REPLACE FUNCTION parley_fold(t text) RETURNS text
            LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE STRICT AS
            $b$BEGIN RETURN %I.unaccent(%L::regdictionary, lower(t)); END$b$
        $f$, schema, schema || '.unaccent');
    END IF;
END;
$$;

-- The words joined by spaces (the parser never puts one in a word), each party's prefix put
-- before every word by replace(). A text of 1,900 bytes or more may hold a word too long for
-- its prefix; it takes 017's query, which leaves such words out.
CREATE OR REPLACE FUNCTION parley_search_vector(
    content text, sender_id bigint, recipient_id bigint
) RETURNS tsvector
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    folded  text := parley_fold(coalesce(content, ''));
    words   text := array_to_string(
                        tsvector_to_array(to_tsvector('simple'::regconfig, folded)), ' ');
    lexemes text := '';
    party   bigint;
BEGIN
    IF words = '' THEN
        RETURN ''::tsvector;
    END IF;
    IF octet_length(folded) >= 1900 THEN
        RETURN (SELECT array_to_tsvector(coalesce(array_agg('u' || p::text || ':' || w), '{}'))
                  FROM unnest(string_to_array(words, ' ')) w,
                       unnest(ARRAY[sender_id, recipient_id]) p
                 WHERE p IS NOT NULL
                   AND octet_length(w) < 2000);  -- with its prefix, within 2,047 bytes
    END IF;
    FOREACH party IN ARRAY ARRAY[sender_id, recipient_id] LOOP
        IF party IS NOT NULL THEN
            lexemes := lexemes || ' u' || party || ':'
                       || replace(words, ' ', ' u' || party || ':');
        END IF;
    END LOOP;
    RETURN array_to_tsvector(string_to_array(ltrim(lexemes, ' '), ' '));
END;
$$;
