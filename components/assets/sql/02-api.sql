-- 02-api.sql: schema "api", the only schema PostgREST serves (PGRST_DB_SCHEMAS=api).
--
-- Views run with the rights of their owner (ecommerce, who created them), so they can read
-- the private tables of schema shop while the API roles cannot. Who may use which view or
-- function is decided by the grants in 03-roles.sh; the views themselves decide which rows
-- and columns are visible (password hashes never are).
--
-- PostgREST passes the verified JWT claims as the setting request.jwt.claims (a JSON text).
-- The signing key is not a setting: api.login reads it from shop.jwt_keys.
-- Like schema shop, everything here belongs to api_owner (01-schema.sql).

CREATE SCHEMA api AUTHORIZATION api_owner;
COMMENT ON SCHEMA api IS 'The REST API served by PostgREST.';
SET ROLE api_owner;

-- Helpers (private, in schema shop) ----------------------------------------------------------

-- base64url without padding (RFC 7515), as JWTs use it.
CREATE FUNCTION shop.base64url(data bytea) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT translate(encode(data, 'base64'), E'+/=\n', '-_')
$$;

-- An HS256-signed JWT of the given claims (the pgjwt extension is not in the image).
CREATE FUNCTION shop.jwt_sign(claims json, secret text) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT signing_input || '.' ||
           shop.base64url(public.hmac(convert_to(signing_input, 'UTF8'), convert_to(secret, 'UTF8'), 'sha256'))
      FROM (SELECT shop.base64url(convert_to('{"alg":"HS256","typ":"JWT"}', 'UTF8')) || '.' ||
                   shop.base64url(convert_to(claims::text, 'UTF8')) AS signing_input) AS jwt
$$;

-- Views ---------------------------------------------------------------------------------------

CREATE VIEW api.products AS
    SELECT id, name, description, price, stock
      FROM shop.products;
COMMENT ON VIEW api.products IS 'The product catalogue with current prices and stock.';

-- The signed-in user only: a customer never sees another customer. No password_hash, ever.
-- (Views call functions with the caller's rights, which have no access to schema shop: the
-- user_id claim is read inline, as in api.orders.)
-- security_barrier keeps the user filter ahead of any condition the caller adds.
CREATE VIEW api.users WITH (security_barrier = true) AS
    SELECT id, email, name, created_at
      FROM shop.users
     WHERE id = nullif(nullif(current_setting('request.jwt.claims', true), '')::json ->> 'user_id', '')::bigint;
COMMENT ON VIEW api.users IS 'The signed-in user (without the password hash).';

-- The orders of the current user only (user_id claim of the request's JWT), each with its
-- items. security_barrier keeps the user filter ahead of any condition the caller adds. Each
-- line's product name is looked up by its key, so a plan kept for the session (as
-- api.place_order keeps the one that reads its answer here) never scans the catalogue.
CREATE VIEW api.orders WITH (security_barrier = true) AS
    SELECT o.id,
           o.user_id,
           o.status,
           o.total,
           o.created_at,
           coalesce((SELECT json_agg(json_build_object(
                                'product_id', i.product_id,
                                'product_name', (SELECT p.name FROM shop.products p WHERE p.id = i.product_id),
                                'quantity', i.quantity,
                                'unit_price', i.unit_price) ORDER BY i.id)
                       FROM shop.order_items i
                      WHERE i.order_id = o.id),
                    '[]'::json) AS items
      FROM shop.orders o
     WHERE o.user_id = nullif(nullif(current_setting('request.jwt.claims', true), '')::json ->> 'user_id', '')::bigint;
COMMENT ON VIEW api.orders IS 'The orders of the logged-in user, with their items.';

-- Anonymous visitors get the catalogue figures only: users, orders, revenue and items sold
-- are NULL without a signed-in user, so nobody outside can follow the shop's orders one by
-- one (each order would move them). Cancelled orders (released unpaid) count for nothing, so
-- orders nobody pays never inflate the figures.
CREATE VIEW api.stats AS
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
COMMENT ON VIEW api.stats IS 'Shop-wide figures for the dashboard (one row); order figures for signed-in users only.';

-- Functions (POST /rpc/...) -------------------------------------------------------------------

-- POST /rpc/place_order {"items": [{"product_id": 1, "quantity": 2}]}: places an order for the
-- logged-in user and returns it as api.orders shows it. Errors are those of shop.place_order,
-- plus 42501 when the request carries no user.
-- Idempotent with an Idempotency-Key request header (PostgREST passes the request's headers
-- as the setting request.headers, names in lower case): a request repeated with the same key
-- (a client's or a proxy's retry after a lost answer) returns the order the first one placed
-- instead of placing another. Without the header every request places an order.
-- The user id is read inline from the claims, as the views read it, and the order is read back
-- with the plan the session keeps (plan_cache_mode): see README's "Orders per second".
CREATE FUNCTION api.place_order(items jsonb) RETURNS json
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    v_user_id bigint := nullif(nullif(current_setting('request.jwt.claims', true), '')::json ->> 'user_id', '')::bigint;
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
COMMENT ON FUNCTION api.place_order(jsonb) IS 'Places an order for the logged-in user.';

-- POST /rpc/login {"email": "...", "password": "..."}: {"token": "<JWT>"} for PostgREST, valid
-- one hour, with the claims role (web_user), user_id, email and exp.
-- A failure returns PostgREST's error shape with an HTTP status set through response.status,
-- instead of raising, so that the transaction commits the failure count:
--   401 {"code": "28P01", "message": "invalid email or password"}: a wrong password, an
--       unknown e-mail and a missing password fail alike and in the same time (one bcrypt
--       computation at cost 10 each time, against a stand-in hash for unknown addresses);
--   429 {"code": "PT429", ...}: 5 failures for an address within 15 minutes lock it for 15
--       minutes, known or not, whatever the client's address.
-- VOLATILE (it writes): PostgREST runs it only for POST.
CREATE FUNCTION api.login(email text, password text) RETURNS json
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
COMMENT ON FUNCTION api.login(text, text) IS 'Exchanges e-mail and password for a JWT; locks an address after 5 failures.';

RESET ROLE;
