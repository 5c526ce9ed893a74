-- 000007: PgBouncer never pools a connection to a standby (issue 29, automatic failover).
-- pool.warm() is PgBouncer's connect_query: it runs on every new server connection. Under
-- Patroni a leader cut off from the API server demotes itself but cannot take the role=primary
-- label off its own pod until it reaches the API server again, so database-service may still
-- send it new connections. pool.warm() swallowed the read-only error, PgBouncer kept those
-- connections for server_lifetime (an hour), and every order sent over them failed
-- ("cannot set transaction read-write mode during recovery"): tests/failover measured no order
-- acknowledged from the promotion until 30 s after the partition healed. Now a connection to
-- a standby ends itself in its connect_query (PgBouncer ignores a connect_query's errors),
-- PgBouncer connects again, and only connections to the writable primary are pooled.
-- Replace only: same signature, attributes, owner and grants; the previous release's
-- PgBouncer calls it the same way.

CREATE OR REPLACE FUNCTION pool.warm() RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_user    bigint;
    v_product bigint;
BEGIN
    -- A standby: end this connection. PgBouncer only logs a connect_query's error and pools
    -- the connection anyway, so an error is not enough: the session terminates itself (a
    -- role may signal its own backend), PgBouncer sees the server connection close before any
    -- client got it, and connects again. The raise (outside the block below, which keeps every
    -- other outcome from failing a connection) stops the function until the signal lands.
    IF pg_is_in_recovery() THEN
        PERFORM pg_terminate_backend(pg_backend_pid());
        RAISE EXCEPTION 'pool.warm: this server is a standby (in recovery): a pooled connection to it could never write'
            USING ERRCODE = '25006';
    END IF;
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

COMMENT ON FUNCTION pool.warm() IS 'Sends and rolls back one order as PostgREST would, so a new session has compiled and planned the order path; fails on a standby, so PgBouncer never pools a read-only connection.';
