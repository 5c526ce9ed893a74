-- 02-api.sql: schema "api", the only schema PostgREST serves (PGRST_DB_SCHEMAS=api).
--
-- Views run with the rights of their owner (ecommerce, who created them), so they can read
-- the private tables of schema shop while the API roles cannot. Who may use which view or
-- function is decided by the grants in 03-roles.sh; the views themselves decide which rows
-- and columns are visible (password hashes never are).
--
-- PostgREST passes the verified JWT claims as the setting request.jwt.claims (a JSON text)
-- and PGRST_APP_SETTINGS_JWT_SECRET as the setting app.settings.jwt_secret.

CREATE SCHEMA api;
COMMENT ON SCHEMA api IS 'The REST API served by PostgREST.';

-- Helpers (private, in schema shop) ----------------------------------------------------------

-- The user id of the current request's JWT ("user_id" claim), or NULL when there is none.
CREATE FUNCTION shop.jwt_user_id() RETURNS bigint
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT nullif(nullif(current_setting('request.jwt.claims', true), '')::json ->> 'user_id', '')::bigint
$$;

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

-- No password_hash here, ever.
CREATE VIEW api.users AS
    SELECT id, email, name, created_at
      FROM shop.users;
COMMENT ON VIEW api.users IS 'Registered users (without password hashes).';

-- The orders of the current user only (user_id claim of the request's JWT), each with its
-- items. security_barrier keeps the user filter ahead of any condition the caller adds.
CREATE VIEW api.orders WITH (security_barrier = true) AS
    SELECT o.id,
           o.user_id,
           o.status,
           o.total,
           o.created_at,
           coalesce((SELECT json_agg(json_build_object(
                                'product_id', i.product_id,
                                'product_name', p.name,
                                'quantity', i.quantity,
                                'unit_price', i.unit_price) ORDER BY i.id)
                       FROM shop.order_items i
                       JOIN shop.products p ON p.id = i.product_id
                      WHERE i.order_id = o.id),
                    '[]'::json) AS items
      FROM shop.orders o
     WHERE o.user_id = nullif(nullif(current_setting('request.jwt.claims', true), '')::json ->> 'user_id', '')::bigint;
COMMENT ON VIEW api.orders IS 'The orders of the logged-in user, with their items.';

CREATE VIEW api.stats AS
    SELECT (SELECT count(*) FROM shop.users)                                  AS users,
           (SELECT count(*) FROM shop.products)                               AS products,
           (SELECT count(*) FROM shop.orders)                                 AS orders,
           (SELECT coalesce(sum(total), 0)::numeric(14,2) FROM shop.orders)   AS revenue,
           (SELECT coalesce(sum(quantity), 0) FROM shop.order_items)          AS items_sold,
           (SELECT count(*) FROM shop.products WHERE stock < 5)               AS low_stock_products;
COMMENT ON VIEW api.stats IS 'Shop-wide figures for the dashboard (one row).';

-- Functions (POST /rpc/...) -------------------------------------------------------------------

-- POST /rpc/place_order {"items": [{"product_id": 1, "quantity": 2}]}: places an order for the
-- logged-in user and returns it as api.orders shows it. Errors are those of shop.place_order,
-- plus 42501 when the request carries no user.
CREATE FUNCTION api.place_order(items jsonb) RETURNS json
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_user_id bigint := shop.jwt_user_id();
    v_order   shop.orders;
    v_result  json;
BEGIN
    IF v_user_id IS NULL THEN
        RAISE EXCEPTION 'login required to place an order' USING ERRCODE = '42501';
    END IF;
    v_order := shop.place_order(v_user_id, place_order.items);
    SELECT to_json(o) INTO v_result FROM api.orders o WHERE o.id = v_order.id;
    RETURN v_result;
END
$$;
COMMENT ON FUNCTION api.place_order(jsonb) IS 'Places an order for the logged-in user.';

-- POST /rpc/login {"email": "...", "password": "..."}: {"token": "<JWT>"} for PostgREST, valid
-- one hour, with the claims role (web_user), user_id, email and exp. A wrong password and an
-- unknown e-mail fail alike (28P01 'invalid email or password'), in about the same time.
CREATE FUNCTION api.login(email text, password text) RETURNS json
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_user   shop.users;
    v_secret text := current_setting('app.settings.jwt_secret', true);
BEGIN
    IF v_secret IS NULL OR v_secret = '' THEN
        RAISE EXCEPTION 'login is not configured: app.settings.jwt_secret is not set'
            USING ERRCODE = '55000';
    END IF;

    SELECT * INTO v_user FROM shop.users u WHERE lower(u.email) = lower(login.email);
    IF NOT FOUND THEN
        -- Spend the time a check would take, so unknown addresses cannot be told apart.
        PERFORM public.crypt(coalesce(login.password, ''), public.gen_salt('bf', 10));
        RAISE EXCEPTION 'invalid email or password' USING ERRCODE = '28P01';
    END IF;
    IF login.password IS NULL
       OR v_user.password_hash IS DISTINCT FROM public.crypt(login.password, v_user.password_hash) THEN
        RAISE EXCEPTION 'invalid email or password' USING ERRCODE = '28P01';
    END IF;

    RETURN json_build_object('token', shop.jwt_sign(
        json_build_object(
            'role', 'web_user',
            'user_id', v_user.id,
            'email', v_user.email,
            'exp', extract(epoch FROM now() + interval '1 hour')::bigint),
        v_secret));
END
$$;
COMMENT ON FUNCTION api.login(text, text) IS 'Exchanges e-mail and password for a JWT.';
