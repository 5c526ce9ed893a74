-- 04-pool.sql: what PgBouncer runs on each server connection it opens (connect_query of
-- pgbouncer.ini), before any request gets that connection.
--
-- The first order on a new PostgreSQL session costs 20-40 ms instead of 2-4: the session
-- compiles api.place_order and shop.place_order (PL/pgSQL, per session) and plans each of
-- their statements, and loads the catalogue entries of every table, index, view, function and
-- role the request touches. pool.warm() pays that once, when PgBouncer opens the connection:
-- it sends one order as PostgREST does and rolls it back (a subtransaction: nothing stays, not
-- even the role and claims it set; identity values it drew are skipped). With min_pool_size,
-- PgBouncer keeps such warm connections open across idle periods, so a request finds one.
--
-- Only the login role authenticator may run these (PgBouncer logs in as it); no API role can,
-- and PostgREST serves schema api only. The authenticator gains nothing by them: it may
-- already switch to web_user with any claims.

CREATE SCHEMA pool AUTHORIZATION api_owner;
COMMENT ON SCHEMA pool IS 'Connection warm-up for PgBouncer; not served by the REST API.';
SET ROLE api_owner;

-- The customer and product the warm-up order uses (the first of each).
CREATE FUNCTION pool.warm_order(OUT user_id bigint, OUT product_id bigint)
    LANGUAGE sql STABLE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT (SELECT id FROM shop.users ORDER BY id LIMIT 1),
           (SELECT id FROM shop.products WHERE stock > 0 ORDER BY id LIMIT 1)
$$;

-- Runs as the authenticator (not SECURITY DEFINER: it switches role as PostgREST does) a
-- request as PostgREST 12 sends POST /rpc/place_order: the role and request settings, then
-- the call in PostgREST's form (json_to_record of the body, named argument), so the session
-- has looked up, compiled and planned all of it.
CREATE FUNCTION pool.warm() RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_user    bigint;
    v_product bigint;
BEGIN
    SELECT w.user_id, w.product_id INTO v_user, v_product FROM pool.warm_order() w;
    IF v_user IS NULL OR v_product IS NULL THEN
        RETURN; -- an empty shop: nothing to warm with
    END IF;
    BEGIN
        PERFORM set_config('search_path', '"api", "public"', true), set_config('statement_timeout', '5s', true),
                set_config('role', 'web_user', true),
                set_config('request.jwt.claims', json_build_object('role', 'web_user', 'user_id', v_user)::text, true),
                set_config('request.method', 'POST', true), set_config('request.path', '/rpc/place_order', true),
                set_config('request.headers', '{}', true), set_config('request.cookies', '{}', true);
        EXECUTE 'WITH pgrst_source AS (SELECT pgrst_call.pgrst_scalar FROM (SELECT $1 AS json_data) pgrst_payload, '
             || 'LATERAL (SELECT "items" FROM json_to_record(pgrst_payload.json_data) AS _("items" jsonb) LIMIT 1) pgrst_body, '
             || 'LATERAL (SELECT "api"."place_order"("items" := pgrst_body."items") pgrst_scalar) pgrst_call) '
             || 'SELECT coalesce(json_agg(_postgrest_t.pgrst_scalar)->0, ''null''), nullif(current_setting(''response.status'', true), '''') '
             || 'FROM (SELECT "place_order".* FROM "pgrst_source" AS "place_order") _postgrest_t'
            USING json_build_object('items', json_build_array(json_build_object('product_id', v_product, 'quantity', 1)));
        RAISE EXCEPTION 'warm-up order rolled back' USING ERRCODE = 'P0W01';
    EXCEPTION WHEN OTHERS THEN
        -- The planned rollback, or an order the shop refuses (stock, caps): the session is
        -- warm as far as the order got; a warm-up never fails a connection.
        NULL;
    END;
END
$$;
COMMENT ON FUNCTION pool.warm() IS 'Sends and rolls back one order as PostgREST would, so a new session has compiled and planned the order path.';

RESET ROLE;

REVOKE ALL ON SCHEMA pool FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION pool.warm(), pool.warm_order() FROM PUBLIC;
GRANT USAGE ON SCHEMA pool TO authenticator;
GRANT EXECUTE ON FUNCTION pool.warm(), pool.warm_order() TO authenticator;
