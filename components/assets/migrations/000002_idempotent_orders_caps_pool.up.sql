-- 000002_idempotent_orders_caps_pool: from the 2026-11-27 release to the 2026-12-04 one
-- (commit d35793b): idempotent orders (Idempotency-Key), the cap on a customer's unpaid units
-- (shop.order_limits), the release of unpaid orders, the login lockout serialised on its row,
-- cancelled orders out of the figures, and the connection warm-up of schema pool.
-- Expand only: every function and view of the previous release keeps its signature and
-- columns, so pods of that release keep working against this schema.

-- The strongest lock this migration takes on each table it changes, first, in one order: a
-- weaker lock upgraded later can deadlock with a live request that read the table and then
-- writes it (see 000003). Requests wait for the milliseconds this takes.
LOCK TABLE shop.orders, shop.login_failures IN ACCESS EXCLUSIVE MODE;

CREATE INDEX login_failures_window_start ON shop.login_failures (window_start);

-- The client's Idempotency-Key of the request that placed an order (NULL without one): a
-- repeated request with the same key gets this order back instead of a second one. Unique per
-- user (NULLs are distinct: orders without a key never conflict). Adding a nullable column
-- without a default rewrites nothing.
ALTER TABLE shop.orders
    ADD COLUMN idempotency_key text CHECK (idempotency_key ~ '^[!-~]{1,255}$'),
    ADD CONSTRAINT orders_user_idempotency_key UNIQUE (user_id, idempotency_key);
-- shop.release_unpaid_orders finds the oldest unpaid orders.
CREATE INDEX orders_placed_created_at_idx ON shop.orders (created_at) WHERE status = 'placed';

-- What one customer may hold unpaid, across all their orders (one row). 40 units until the
-- database-credentials job (credentials-sync.sh) writes the stack's orderMaxOpenUnits.
CREATE TABLE shop.order_limits (
    id             boolean PRIMARY KEY DEFAULT true CHECK (id),
    max_open_units integer NOT NULL CHECK (max_open_units BETWEEN 20 AND 1000000),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
INSERT INTO shop.order_limits (max_open_units) VALUES (40);

-- Orders with an idempotency key and the unpaid cap; the two-argument form keeps its
-- signature and calls it.
CREATE FUNCTION shop.place_order(p_user_id bigint, p_items jsonb, p_idempotency_key text) RETURNS shop.orders
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_order    shop.orders;
    v_elem     jsonb;
    v_pos      bigint;
    v_item     record;
    v_price    numeric(10,2);
    v_name     text;
    v_stock    integer;
    v_units    integer;
    v_open     bigint;
    v_cap      integer;
BEGIN
    IF p_user_id IS NULL THEN
        RAISE EXCEPTION 'an order needs a user' USING ERRCODE = '22023';
    END IF;
    IF p_idempotency_key IS NOT NULL AND p_idempotency_key !~ '^[!-~]{1,255}$' THEN
        RAISE EXCEPTION 'Idempotency-Key must be 1 to 255 visible ASCII characters (e.g. a UUID), got % characters',
            char_length(p_idempotency_key)
            USING ERRCODE = '22023';
    END IF;
    IF p_items IS NULL OR jsonb_typeof(p_items) <> 'array' OR jsonb_array_length(p_items) = 0 THEN
        RAISE EXCEPTION 'an order needs at least one item'
            USING ERRCODE = '22023',
                  HINT = 'items: [{"product_id": 1, "quantity": 2}]';
    END IF;
    -- Caps, checked before any work: an order of a million lines fails at once, and one
    -- order cannot take the whole catalogue.
    IF jsonb_array_length(p_items) > 20 THEN
        RAISE EXCEPTION 'an order has at most 20 lines, got %', jsonb_array_length(p_items)
            USING ERRCODE = '22023';
    END IF;

    FOR v_elem, v_pos IN SELECT e, n FROM jsonb_array_elements(p_items) WITH ORDINALITY AS t(e, n) LOOP
        IF jsonb_typeof(v_elem) <> 'object'
           OR jsonb_typeof(v_elem -> 'product_id') IS DISTINCT FROM 'number'
           OR jsonb_typeof(v_elem -> 'quantity') IS DISTINCT FROM 'number' THEN
            RAISE EXCEPTION 'item % must be an object with numeric "product_id" and "quantity"', v_pos
                USING ERRCODE = '22023',
                      HINT = 'items: [{"product_id": 1, "quantity": 2}]';
        END IF;
        IF (v_elem ->> 'quantity')::numeric <= 0
           OR (v_elem ->> 'quantity')::numeric <> trunc((v_elem ->> 'quantity')::numeric)
           OR (v_elem ->> 'quantity')::numeric > 10 THEN
            RAISE EXCEPTION 'item %: quantity must be a positive integer (at most 10), got %',
                v_pos, v_elem ->> 'quantity'
                USING ERRCODE = '22023';
        END IF;
        IF (v_elem ->> 'product_id')::numeric <> trunc((v_elem ->> 'product_id')::numeric) THEN
            RAISE EXCEPTION 'item %: product_id must be an integer, got %', v_pos, v_elem ->> 'product_id'
                USING ERRCODE = '22023';
        END IF;
    END LOOP;

    v_units := (SELECT sum((e ->> 'quantity')::numeric) FROM jsonb_array_elements(p_items) AS e);
    IF v_units > 20 THEN
        RAISE EXCEPTION 'an order has at most 20 units in all'
            USING ERRCODE = '22023';
    END IF;

    -- One order of a customer at a time (FOR NO KEY UPDATE: other customers' orders, whose
    -- foreign keys only share-lock their own user's row, never wait for it).
    PERFORM 1 FROM shop.users WHERE id = p_user_id FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown user %', p_user_id USING ERRCODE = 'P0002';
    END IF;

    -- A repeated request: the first order, as long as it asked for the same items.
    IF p_idempotency_key IS NOT NULL THEN
        SELECT * INTO v_order FROM shop.orders o
         WHERE o.user_id = p_user_id AND o.idempotency_key = p_idempotency_key;
        IF FOUND THEN
            PERFORM shop.check_same_items(v_order.id, p_items);
            RETURN v_order;
        END IF;
    END IF;

    -- What the customer holds unpaid, this order included, stays under the cap: nobody
    -- empties the catalogue with many small orders.
    v_cap := coalesce((SELECT l.max_open_units FROM shop.order_limits l), 40);
    v_open := (SELECT coalesce(sum(i.quantity), 0)
                 FROM shop.orders o JOIN shop.order_items i ON i.order_id = o.id
                WHERE o.user_id = p_user_id AND o.status = 'placed');
    IF v_open + v_units > v_cap THEN
        RAISE EXCEPTION 'too many unpaid items: % units of earlier orders are unpaid, and a customer may hold at most % unpaid units',
            v_open, v_cap
            USING ERRCODE = 'P0001',
                  HINT = 'pay for or wait for the release of earlier orders';
    END IF;

    INSERT INTO shop.orders AS o (user_id, idempotency_key) VALUES (p_user_id, p_idempotency_key)
        ON CONFLICT ON CONSTRAINT orders_user_idempotency_key DO NOTHING
        RETURNING * INTO v_order;
    IF NOT FOUND THEN
        -- Another request with this key committed its order meanwhile: that one counts.
        SELECT * INTO v_order FROM shop.orders o
         WHERE o.user_id = p_user_id AND o.idempotency_key = p_idempotency_key;
        PERFORM shop.check_same_items(v_order.id, p_items);
        RETURN v_order;
    END IF;

    FOR v_item IN
        SELECT (e ->> 'product_id')::numeric::bigint AS product_id,
               sum((e ->> 'quantity')::numeric)::integer AS quantity
          FROM jsonb_array_elements(p_items) AS e
         GROUP BY 1
         ORDER BY 1
    LOOP
        UPDATE shop.products
           SET stock = stock - v_item.quantity
         WHERE id = v_item.product_id
           AND stock >= v_item.quantity
        RETURNING price INTO v_price;

        IF NOT FOUND THEN
            SELECT name, stock INTO v_name, v_stock FROM shop.products WHERE id = v_item.product_id;
            IF NOT FOUND THEN
                RAISE EXCEPTION 'unknown product %', v_item.product_id USING ERRCODE = 'P0002';
            END IF;
            RAISE EXCEPTION 'insufficient stock for product "%" (id %): requested %, available %',
                v_name, v_item.product_id, v_item.quantity, v_stock
                USING ERRCODE = 'P0001';
        END IF;

        INSERT INTO shop.order_items (order_id, product_id, quantity, unit_price)
        VALUES (v_order.id, v_item.product_id, v_item.quantity, v_price);
    END LOOP;

    UPDATE shop.orders o
       SET total = (SELECT sum(i.quantity * i.unit_price) FROM shop.order_items i WHERE i.order_id = o.id)
     WHERE o.id = v_order.id
    RETURNING * INTO v_order;

    RETURN v_order;
END
$$;

CREATE OR REPLACE FUNCTION shop.place_order(p_user_id bigint, p_items jsonb) RETURNS shop.orders
    LANGUAGE sql
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT * FROM shop.place_order(p_user_id, p_items, NULL::text)
$$;

CREATE FUNCTION shop.check_same_items(p_order_id bigint, p_items jsonb) RETURNS void
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF (SELECT coalesce(jsonb_agg(jsonb_build_array(i.product_id, i.quantity) ORDER BY i.product_id), '[]')
          FROM shop.order_items i WHERE i.order_id = p_order_id)
       IS DISTINCT FROM
       (SELECT jsonb_agg(jsonb_build_array(r.product_id, r.quantity) ORDER BY r.product_id)
          FROM (SELECT (e ->> 'product_id')::numeric::bigint AS product_id, sum((e ->> 'quantity')::numeric)::integer AS quantity
                  FROM jsonb_array_elements(p_items) AS e GROUP BY 1) AS r) THEN
        RAISE EXCEPTION 'this Idempotency-Key was already used for order % with other items', p_order_id
            USING ERRCODE = '22023',
                  HINT = 'send a new key for a new order';
    END IF;
END
$$;

CREATE FUNCTION shop.release_unpaid_orders(p_older_than interval) RETURNS integer
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_ids bigint[];
BEGIN
    IF p_older_than IS NULL OR p_older_than < interval '1 minute' THEN
        RAISE EXCEPTION 'release_unpaid_orders: the age must be at least 1 minute, got %', p_older_than
            USING ERRCODE = '22023';
    END IF;
    SELECT coalesce(array_agg(o.id), '{}') INTO v_ids
      FROM (SELECT id FROM shop.orders
             WHERE status = 'placed' AND created_at < now() - p_older_than
             ORDER BY id
             FOR UPDATE SKIP LOCKED) AS o;
    IF cardinality(v_ids) = 0 THEN
        RETURN 0;
    END IF;
    PERFORM 1 FROM shop.products p
     WHERE p.id IN (SELECT i.product_id FROM shop.order_items i WHERE i.order_id = ANY (v_ids))
     ORDER BY p.id
       FOR NO KEY UPDATE;
    UPDATE shop.products p
       SET stock = p.stock + r.quantity
      FROM (SELECT i.product_id, sum(i.quantity) AS quantity
              FROM shop.order_items i WHERE i.order_id = ANY (v_ids)
             GROUP BY i.product_id) AS r
     WHERE p.id = r.product_id;
    UPDATE shop.orders SET status = 'cancelled' WHERE id = ANY (v_ids);
    RETURN cardinality(v_ids);
END
$$;

-- Cancelled orders (released unpaid) count for nothing in the figures.
CREATE OR REPLACE VIEW api.stats AS
    SELECT CASE WHEN signed_in THEN (SELECT count(*) FROM shop.users) END                                AS users,
           (SELECT count(*) FROM shop.products)                                                         AS products,
           CASE WHEN signed_in THEN (SELECT count(*) FROM shop.orders WHERE status <> 'cancelled') END   AS orders,
           CASE WHEN signed_in THEN (SELECT coalesce(sum(total), 0)::numeric(14,2) FROM shop.orders
                                      WHERE status <> 'cancelled') END                                   AS revenue,
           CASE WHEN signed_in THEN (SELECT coalesce(sum(i.quantity), 0) FROM shop.order_items i
                                      JOIN shop.orders o ON o.id = i.order_id
                                     WHERE o.status <> 'cancelled') END                                  AS items_sold,
           (SELECT count(*) FROM shop.products WHERE stock < 5)                                         AS low_stock_products
      FROM (SELECT nullif(nullif(current_setting('request.jwt.claims', true), '')::json ->> 'user_id', '')::bigint IS NOT NULL AS signed_in) AS request;

-- POST /rpc/place_order passes the request's Idempotency-Key header.
CREATE OR REPLACE FUNCTION api.place_order(items jsonb) RETURNS json
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_user_id bigint := shop.jwt_user_id();
    v_key     text := nullif(current_setting('request.headers', true), '')::json ->> 'idempotency-key';
    v_order   shop.orders;
    v_result  json;
BEGIN
    IF v_user_id IS NULL THEN
        RAISE EXCEPTION 'login required to place an order' USING ERRCODE = '42501';
    END IF;
    v_order := shop.place_order(v_user_id, place_order.items, v_key);
    SELECT to_json(o) INTO v_result FROM api.orders o WHERE o.id = v_order.id;
    RETURN v_result;
END
$$;

-- The lockout is serialised on a row that exists before it is locked; long addresses are
-- refused before they cost a row; stale failures are forgotten.
CREATE OR REPLACE FUNCTION api.login(email text, password text) RETURNS json
    LANGUAGE plpgsql
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_key     text := lower(coalesce(login.email, ''));
    v_secret  text;
    v_user    shop.users;
    v_found   boolean;
    v_hash    text;
    v_check   text;
    v_fail    shop.login_failures;
BEGIN
    SELECT k.secret INTO v_secret FROM shop.jwt_keys k;
    IF v_secret IS NULL THEN
        RAISE EXCEPTION 'login is not configured: no signing key in shop.jwt_keys (the database-credentials job writes it)'
            USING ERRCODE = '55000';
    END IF;

    -- An address longer than any e-mail address (RFC 5321: 254) is no account's: refused
    -- before it costs a row.
    IF length(v_key) > 254 THEN
        PERFORM set_config('response.status', '401', true);
        RETURN json_build_object('code', '28P01', 'message', 'invalid email or password', 'details', null, 'hint', null);
    END IF;
    -- Forget failures nobody counts any more (window over, no lock), a few per call, so the
    -- table holds at most about 15 minutes of failures.
    DELETE FROM shop.login_failures f
     WHERE f.ctid IN (SELECT s.ctid FROM shop.login_failures s
                       WHERE s.window_start < now() - interval '15 minutes'
                         AND (s.locked_until IS NULL OR s.locked_until < now())
                       LIMIT 10);
    -- The address's row exists before it is locked, so concurrent attempts for one address
    -- wait for each other (FOR UPDATE locks nothing that does not exist yet).
    INSERT INTO shop.login_failures AS f (email, failures, window_start) VALUES (v_key, 0, now())
        ON CONFLICT ON CONSTRAINT login_failures_pkey DO NOTHING;
    SELECT * INTO v_fail FROM shop.login_failures f WHERE f.email = v_key FOR UPDATE;
    IF v_fail.locked_until > now() THEN
        PERFORM set_config('response.status', '429', true);
        RETURN json_build_object('code', 'PT429', 'details', null, 'hint', null,
            'message', 'too many failed sign-ins for this address; try again in '
                       || ceil(extract(epoch FROM v_fail.locked_until - now()) / 60) || ' minutes');
    END IF;

    SELECT * INTO v_user FROM shop.users u WHERE lower(u.email) = v_key;
    v_found := FOUND;
    -- Exactly one bcrypt computation of the same cost on every path.
    v_hash := CASE WHEN v_found THEN v_user.password_hash
                   ELSE '$2a$10$ecommercePlatformDummy' END;
    v_check := public.crypt(coalesce(login.password, ''), v_hash);
    IF NOT v_found OR login.password IS NULL OR v_check IS DISTINCT FROM v_user.password_hash THEN
        UPDATE shop.login_failures f
           SET failures     = CASE WHEN f.window_start < now() - interval '15 minutes' THEN 1 ELSE f.failures + 1 END,
               window_start = CASE WHEN f.window_start < now() - interval '15 minutes' THEN now() ELSE f.window_start END
         WHERE f.email = v_key
        RETURNING * INTO v_fail;
        IF v_fail.failures >= 5 THEN
            UPDATE shop.login_failures f
               SET locked_until = now() + interval '15 minutes', failures = 0, window_start = now()
             WHERE f.email = v_key;
        END IF;
        PERFORM set_config('response.status', '401', true);
        RETURN json_build_object('code', '28P01', 'message', 'invalid email or password', 'details', null, 'hint', null);
    END IF;

    DELETE FROM shop.login_failures f WHERE f.email = v_key;
    RETURN json_build_object('token', shop.jwt_sign(
        json_build_object(
            'role', 'web_user',
            'user_id', v_user.id,
            'email', v_user.email,
            'exp', extract(epoch FROM now() + interval '1 hour')::bigint),
        v_secret));
END
$$;

-- Schema pool: what PgBouncer runs on each server connection it opens (connect_query), see
-- docs/architecture.md.
CREATE SCHEMA pool AUTHORIZATION api_owner;
COMMENT ON SCHEMA pool IS 'Connection warm-up for PgBouncer; not served by the REST API.';

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


REVOKE ALL ON SCHEMA pool FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION pool.warm(), pool.warm_order() FROM PUBLIC;
GRANT USAGE ON SCHEMA pool TO authenticator;
GRANT EXECUTE ON FUNCTION pool.warm(), pool.warm_order() TO authenticator;

-- Privileges of the objects above, as for the first release's.
REVOKE ALL ON ALL TABLES IN SCHEMA shop FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA shop FROM PUBLIC;
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA shop FROM PUBLIC;
