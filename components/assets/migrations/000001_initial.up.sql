-- 000001_initial: the shop as the 2026-11-27 release (commit 3d681b1) created it: the private
-- data model (schema shop), the REST API (schema api) and who may use what.
--
-- Every migration runs as the migrator login role, whose sessions start as api_owner
-- (ALTER ROLE migrator SET role, bootstrap.sql): every object here belongs to api_owner, a role
-- that cannot log in and is not a superuser, so the views and SECURITY DEFINER functions run
-- with its rights and a flaw in one of them cannot reach beyond these schemas. What only a
-- superuser may do (the pgcrypto extension, the roles and their settings) is bootstrap.sql's.
-- golang-migrate runs each file as one multi-statement query: one implicit transaction, so a
-- file is applied whole or not at all.

-- Functions this role creates start without PUBLIC's EXECUTE right.
ALTER DEFAULT PRIVILEGES FOR ROLE api_owner REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;

-- Schema shop --------------------------------------------------------------------------------

CREATE SCHEMA shop AUTHORIZATION api_owner;
COMMENT ON SCHEMA shop IS 'Private tables and business logic; only schema api is exposed by the REST API.';

-- The key that signs the API's JWTs (HS256, the stack's jwtSecret): in a table only its owner
-- reads, never in a setting that any SQL of the session could read. The database-credentials
-- job (credentials-sync.sh) writes it, and again whenever jwtSecret changes.
CREATE TABLE shop.jwt_keys (
    id         boolean PRIMARY KEY DEFAULT true CHECK (id),
    secret     text NOT NULL CHECK (length(secret) >= 32),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Users -------------------------------------------------------------------------------------

CREATE TABLE shop.users (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email         text NOT NULL CHECK (email ~ '^[^@[:space:]]+@[^@[:space:]]+$'),
    name          text NOT NULL CHECK (btrim(name) <> ''),
    -- Always a bcrypt hash: the trigger below replaces any other value (a plain password
    -- given on INSERT or UPDATE) by crypt(value, gen_salt('bf')) before it is stored.
    password_hash text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);
-- E-mail addresses are unique whatever their case; login looks users up by lower(email).
CREATE UNIQUE INDEX users_email_lower_key ON shop.users (lower(email));

-- True when the value already is a bcrypt hash as produced by crypt(pw, gen_salt('bf')).
-- Such values are kept as they are (so a restore or a copy never hashes a hash twice).
CREATE FUNCTION shop.is_bcrypt_hash(value text) RETURNS boolean
    LANGUAGE sql IMMUTABLE STRICT
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT value ~ '^\$2[abxy]\$[0-9]{2}\$[./A-Za-z0-9]{53}$'
$$;

-- The password policy. A password is 10 to 72 bytes long (bcrypt reads only the first 72
-- bytes: a longer one would have a tail that is silently ignored); a stored hash costs at
-- least 10 rounds (a cheap hash is a cheap offline attack). 22023 names what is wrong.
CREATE FUNCTION shop.check_password_policy(value text) RETURNS void
    LANGUAGE plpgsql IMMUTABLE STRICT
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF shop.is_bcrypt_hash(value) THEN
        IF substr(value, 5, 2)::integer < 10 THEN
            RAISE EXCEPTION 'password hash cost % is below 10', substr(value, 5, 2)::integer
                USING ERRCODE = '22023';
        END IF;
        RETURN;
    END IF;
    IF char_length(value) < 10 THEN
        RAISE EXCEPTION 'password must be at least 10 characters long' USING ERRCODE = '22023';
    END IF;
    IF octet_length(value) > 72 THEN
        RAISE EXCEPTION 'password must be at most 72 bytes long (bcrypt ignores the rest), got %', octet_length(value)
            USING ERRCODE = '22023';
    END IF;
END
$$;

CREATE FUNCTION shop.hash_password() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NEW.password_hash IS NULL OR NEW.password_hash = '' THEN
        RAISE EXCEPTION 'a password is required for user %', NEW.email
            USING ERRCODE = '23502';
    END IF;
    IF TG_OP = 'UPDATE' AND NEW.password_hash IS NOT DISTINCT FROM OLD.password_hash THEN
        RETURN NEW;
    END IF;
    PERFORM shop.check_password_policy(NEW.password_hash);
    IF NOT shop.is_bcrypt_hash(NEW.password_hash) THEN
        NEW.password_hash := public.crypt(NEW.password_hash, public.gen_salt('bf', 10));
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER users_hash_password
    BEFORE INSERT OR UPDATE OF password_hash ON shop.users
    FOR EACH ROW EXECUTE FUNCTION shop.hash_password();

-- Failed sign-ins per address (lower-case e-mail, whether or not a user has it, so a lockout
-- does not tell which addresses exist). api.login counts them; 5 failures within 15 minutes
-- lock the address for 15 minutes. The row goes when a sign-in succeeds.
CREATE TABLE shop.login_failures (
    email        text PRIMARY KEY,
    failures     integer NOT NULL,
    window_start timestamptz NOT NULL,
    locked_until timestamptz
);

-- Products ----------------------------------------------------------------------------------

CREATE TABLE shop.products (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text NOT NULL CHECK (btrim(name) <> ''),
    description text NOT NULL DEFAULT '',
    price       numeric(10,2) NOT NULL CHECK (price >= 0),
    stock       integer NOT NULL DEFAULT 0 CHECK (stock >= 0),
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Orders ------------------------------------------------------------------------------------

CREATE TABLE shop.orders (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id    bigint NOT NULL REFERENCES shop.users (id),
    status     text NOT NULL DEFAULT 'placed'
               CHECK (status IN ('placed', 'paid', 'shipped', 'delivered', 'cancelled')),
    total      numeric(12,2) NOT NULL DEFAULT 0 CHECK (total >= 0),
    created_at timestamptz NOT NULL DEFAULT now()
);
-- api.orders lists the current user's orders, newest first.
CREATE INDEX orders_user_id_created_at_idx ON shop.orders (user_id, created_at DESC);

CREATE TABLE shop.order_items (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    order_id   bigint NOT NULL REFERENCES shop.orders (id) ON DELETE CASCADE,
    product_id bigint NOT NULL REFERENCES shop.products (id),
    quantity   integer NOT NULL CHECK (quantity > 0),
    unit_price numeric(10,2) NOT NULL CHECK (unit_price >= 0),
    -- One line per product and order (place_order merges repeated products); the
    -- constraint's index also serves the lookup of an order's items by order_id.
    CONSTRAINT order_items_order_product_key UNIQUE (order_id, product_id)
);
-- Foreign-key lookups from products (and the delete check on products) by product_id.
CREATE INDEX order_items_product_id_idx ON shop.order_items (product_id);

-- place_order -------------------------------------------------------------------------------

-- Places an order for p_user_id. p_items is a JSON array such as
--   [{"product_id": 1, "quantity": 2}, {"product_id": 5, "quantity": 1}]
-- In one transaction (the caller's) it checks and decrements the stock of every product,
-- records the order and its items at the current prices and sets the total. Any error
-- aborts the whole statement, so nothing changes:
--   22023 invalid items (not a non-empty array of at most 20 lines, missing fields, quantity
--         not a positive integer of at most 10 per line, more than 20 units in all)
--   P0002 unknown product or user
--   P0001 insufficient stock ("insufficient stock for product ..." names the product)
-- Stock is decremented with "UPDATE ... WHERE stock >= quantity": when orders race for the
-- last items, the row lock makes them wait and re-check, so stock never goes below zero and
-- only the orders that fit succeed. Rows are locked in product id order, so two orders with
-- the same products cannot deadlock.
CREATE FUNCTION shop.place_order(p_user_id bigint, p_items jsonb) RETURNS shop.orders
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
BEGIN
    IF p_user_id IS NULL THEN
        RAISE EXCEPTION 'an order needs a user' USING ERRCODE = '22023';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM shop.users WHERE id = p_user_id) THEN
        RAISE EXCEPTION 'unknown user %', p_user_id USING ERRCODE = 'P0002';
    END IF;
    IF p_items IS NULL OR jsonb_typeof(p_items) <> 'array' OR jsonb_array_length(p_items) = 0 THEN
        RAISE EXCEPTION 'an order needs at least one item'
            USING ERRCODE = '22023',
                  HINT = 'items: [{"product_id": 1, "quantity": 2}]';
    END IF;
    -- Caps, checked before any work: an order of a million lines fails at once, and one
    -- customer cannot take the whole catalogue.
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

    IF (SELECT sum((e ->> 'quantity')::numeric) FROM jsonb_array_elements(p_items) AS e) > 20 THEN
        RAISE EXCEPTION 'an order has at most 20 units in all'
            USING ERRCODE = '22023';
    END IF;

    INSERT INTO shop.orders (user_id) VALUES (p_user_id) RETURNING * INTO v_order;

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

-- Schema api ---------------------------------------------------------------------------------

CREATE SCHEMA api AUTHORIZATION api_owner;
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

-- Anonymous visitors get the catalogue figures only: users, orders, revenue and items sold
-- are NULL without a signed-in user, so nobody outside can follow the shop's orders one by
-- one (each order would move them).
CREATE VIEW api.stats AS
    SELECT CASE WHEN signed_in THEN (SELECT count(*) FROM shop.users) END                                AS users,
           (SELECT count(*) FROM shop.products)                                                         AS products,
           CASE WHEN signed_in THEN (SELECT count(*) FROM shop.orders) END                               AS orders,
           CASE WHEN signed_in THEN (SELECT coalesce(sum(total), 0)::numeric(14,2) FROM shop.orders) END AS revenue,
           CASE WHEN signed_in THEN (SELECT coalesce(sum(quantity), 0) FROM shop.order_items) END        AS items_sold,
           (SELECT count(*) FROM shop.products WHERE stock < 5)                                         AS low_stock_products
      FROM (SELECT nullif(nullif(current_setting('request.jwt.claims', true), '')::json ->> 'user_id', '')::bigint IS NOT NULL AS signed_in) AS request;
COMMENT ON VIEW api.stats IS 'Shop-wide figures for the dashboard (one row); order figures for signed-in users only.';

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
        INSERT INTO shop.login_failures AS f (email, failures, window_start)
        VALUES (v_key, 1, now())
        ON CONFLICT ON CONSTRAINT login_failures_pkey DO UPDATE
           SET failures     = CASE WHEN f.window_start < now() - interval '15 minutes' THEN 1 ELSE f.failures + 1 END,
               window_start = CASE WHEN f.window_start < now() - interval '15 minutes' THEN now() ELSE f.window_start END,
               locked_until = NULL
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

-- Privileges ---------------------------------------------------------------------------------

-- Nothing for PUBLIC: functions are executable by PUBLIC by default, schemas are not usable.
REVOKE ALL ON SCHEMA shop FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA shop FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA shop FROM PUBLIC;
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA shop FROM PUBLIC;
REVOKE ALL ON SCHEMA api FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA api FROM PUBLIC;
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA api FROM PUBLIC;

-- web_anon: the catalogue, the figures, logging in.
GRANT USAGE ON SCHEMA api TO web_anon;
GRANT SELECT ON api.products, api.stats TO web_anon;
GRANT EXECUTE ON FUNCTION api.login(text, text) TO web_anon;

-- web_user: all of web_anon's rights, plus users, own orders and placing orders.
GRANT USAGE ON SCHEMA api TO web_user;
GRANT SELECT ON api.products, api.stats, api.users, api.orders TO web_user;
GRANT EXECUTE ON FUNCTION api.login(text, text), api.place_order(jsonb) TO web_user;
