-- 01-schema.sql: the private data model (schema "shop") and its business logic.
--
-- Run once by the postgres:15 image from /docker-entrypoint-initdb.d, as POSTGRES_USER
-- (ecommerce) in POSTGRES_DB (ecommerce), with psql -v ON_ERROR_STOP=1. Nothing here is
-- reachable by the API roles: PostgREST serves only the views and functions of schema "api"
-- (02-api.sql), and 03-roles.sh grants exactly those.
--
-- Every object of schemas shop and api belongs to api_owner, a role that cannot log in and
-- is not a superuser: the views and SECURITY DEFINER functions run with its rights, never
-- with a superuser's, so a flaw in one of them cannot reach beyond these two schemas.

-- crypt()/gen_salt() hash passwords; hmac() signs the JWTs that api.login issues.
CREATE EXTENSION IF NOT EXISTS pgcrypto WITH SCHEMA public;

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'api_owner') THEN
        CREATE ROLE api_owner NOLOGIN NOINHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
    END IF;
END
$$;

CREATE SCHEMA shop AUTHORIZATION api_owner;
COMMENT ON SCHEMA shop IS 'Private tables and business logic; only schema api is exposed by the REST API.';
SET ROLE api_owner;

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
CREATE INDEX login_failures_window_start ON shop.login_failures (window_start);

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

RESET ROLE;
