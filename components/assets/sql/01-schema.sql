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

-- An order is 'placed' (unpaid: its units are taken from stock) until it is paid, or until
-- shop.release_unpaid_orders cancels it and puts its units back.
CREATE TABLE shop.orders (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id         bigint NOT NULL REFERENCES shop.users (id),
    status          text NOT NULL DEFAULT 'placed'
                    CHECK (status IN ('placed', 'paid', 'shipped', 'delivered', 'cancelled')),
    total           numeric(12,2) NOT NULL DEFAULT 0 CHECK (total >= 0),
    created_at      timestamptz NOT NULL DEFAULT now(),
    -- The client's Idempotency-Key of the request that placed it (NULL without one): a
    -- repeated request with the same key gets this order back instead of a second one.
    -- Unique per user (NULLs are distinct: orders without a key never conflict).
    idempotency_key text CHECK (idempotency_key ~ '^[!-~]{1,255}$'),
    CONSTRAINT orders_user_idempotency_key UNIQUE (user_id, idempotency_key)
);
-- api.orders lists the current user's orders, newest first.
CREATE INDEX orders_user_id_created_at_idx ON shop.orders (user_id, created_at DESC);
-- The unpaid orders only: shop.place_order sums a customer's unpaid units through it (a few
-- orders, however many the customer has paid), shop.release_unpaid_orders reads it for the
-- oldest ones.
CREATE INDEX orders_placed_user_id_idx ON shop.orders (user_id, created_at) WHERE status = 'placed';

-- What one customer may hold unpaid, across all their orders (one row). 40 units until the
-- database-credentials job (credentials-sync.sh) writes the stack's orderMaxOpenUnits.
CREATE TABLE shop.order_limits (
    id             boolean PRIMARY KEY DEFAULT true CHECK (id),
    max_open_units integer NOT NULL CHECK (max_open_units BETWEEN 20 AND 1000000),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
INSERT INTO shop.order_limits (max_open_units) VALUES (40);

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
--         not a positive integer of at most 10 per line, more than 20 units in all), an
--         invalid idempotency key, or a key already used for an order of other items
--   P0002 unknown product or user
--   P0001 insufficient stock ("insufficient stock for product ..." names the product), or
--         the customer's unpaid units would pass shop.order_limits.max_open_units
-- p_idempotency_key (NULL: none) is the client's Idempotency-Key: when the user already has
-- an order with that key, that order is returned and nothing changes (a retried request
-- never places a second order). Two requests with one key wait for each other (the user's
-- row lock below); the unique constraint orders_user_idempotency_key stays the last word.
-- The user's row is locked first, so a customer's orders are placed one at a time and two
-- parallel orders cannot both pass the cap on unpaid units.
-- Each product's stock is taken by one UPDATE that checks it (stock >= quantity) and locks the
-- row: when orders race for the last items, the UPDATE waits for the winner, then reads the
-- stock the winner left, so stock never goes below zero and only the orders that fit succeed.
-- Products are taken in id order, so two orders with the same products cannot deadlock. The
-- order is written once, with its total, and its lines in one statement; every statement
-- keeps its plan for the session (plan_cache_mode): measured by `make bench-orders`, which
-- README's "Orders per second" explains.
CREATE FUNCTION shop.place_order(p_user_id bigint, p_items jsonb, p_idempotency_key text) RETURNS shop.orders
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    v_order      shop.orders;
    v_elem       jsonb;
    v_pos        integer;
    v_units      integer;
    v_open       bigint;
    v_cap        integer;
    v_ids        bigint[];
    v_quantities integer[];
    v_prices     numeric(10,2)[] := '{}';
    v_price      numeric(10,2);
    v_total      numeric(12,2) := 0;
    v_name       text;
    v_stock      integer;
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

    -- Element by element in PL/pgSQL expressions (no query: the valid order's path runs as
    -- few statements as it can).
    FOR v_pos IN 1 .. jsonb_array_length(p_items) LOOP
        v_elem := p_items -> (v_pos - 1);
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

    -- The order's lines, one per product (repeated products merged), in product id order.
    SELECT array_agg(i.product_id ORDER BY i.product_id), array_agg(i.quantity ORDER BY i.product_id), sum(i.quantity)
      INTO v_ids, v_quantities, v_units
      FROM (SELECT (e ->> 'product_id')::numeric::bigint AS product_id,
                   sum((e ->> 'quantity')::numeric)::integer AS quantity
              FROM jsonb_array_elements(p_items) AS e
             GROUP BY 1) i;
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

    -- A repeated request: the first order, as long as it asked for the same items. Under the
    -- user's row lock a request sees every order committed before it, so the key's unique
    -- constraint below can only fail for an order written around this function: that request
    -- then fails (23505) and nothing changes.
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
    -- (Each order's lines are summed by its key: the plan kept for the session never joins
    -- all lines, however many unpaid orders other customers hold.)
    SELECT coalesce((SELECT l.max_open_units FROM shop.order_limits l), 40),
           (SELECT coalesce(sum((SELECT sum(i.quantity) FROM shop.order_items i WHERE i.order_id = o.id)), 0)
              FROM shop.orders o
             WHERE o.user_id = p_user_id AND o.status = 'placed')
      INTO v_cap, v_open;
    IF v_open + v_units > v_cap THEN
        RAISE EXCEPTION 'too many unpaid items: % units of earlier orders are unpaid, and a customer may hold at most % unpaid units',
            v_open, v_cap
            USING ERRCODE = 'P0001',
                  HINT = 'pay for or wait for the release of earlier orders';
    END IF;

    -- The stock, product by product in id order: checked and taken by one UPDATE, which
    -- locks the row and returns the price the order is charged.
    FOR i IN 1 .. cardinality(v_ids) LOOP
        UPDATE shop.products p SET stock = p.stock - v_quantities[i]
         WHERE p.id = v_ids[i] AND p.stock >= v_quantities[i]
        RETURNING p.price INTO v_price;
        IF NOT FOUND THEN
            -- Unknown, or short of stock: read (and lock) the row to say which.
            SELECT p.name, p.stock INTO v_name, v_stock FROM shop.products p WHERE p.id = v_ids[i] FOR NO KEY UPDATE;
            IF NOT FOUND THEN
                RAISE EXCEPTION 'unknown product %', v_ids[i] USING ERRCODE = 'P0002';
            END IF;
            IF v_stock < v_quantities[i] THEN
                RAISE EXCEPTION 'insufficient stock for product "%" (id %): requested %, available %',
                    v_name, v_ids[i], v_quantities[i], v_stock
                    USING ERRCODE = 'P0001';
            END IF;
            -- Restocked between the two statements: the row is locked now.
            UPDATE shop.products p SET stock = p.stock - v_quantities[i]
             WHERE p.id = v_ids[i]
            RETURNING p.price INTO STRICT v_price;
        END IF;
        v_prices := v_prices || v_price;
        v_total := v_total + v_price * v_quantities[i];
    END LOOP;

    -- The order and its lines, in one statement.
    WITH o AS (
        INSERT INTO shop.orders (user_id, idempotency_key, total) VALUES (p_user_id, p_idempotency_key, v_total)
        RETURNING *
    ), lines AS (
        INSERT INTO shop.order_items (order_id, product_id, quantity, unit_price)
        SELECT o.id, l.product_id, l.quantity, l.price
          FROM o, unnest(v_ids, v_quantities, v_prices) AS l(product_id, quantity, price)
    )
    SELECT * INTO v_order FROM o;

    RETURN v_order;
END
$$;

-- An order without an idempotency key (the callers that have none).
CREATE FUNCTION shop.place_order(p_user_id bigint, p_items jsonb) RETURNS shop.orders
    LANGUAGE sql
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT * FROM shop.place_order(p_user_id, p_items, NULL::text)
$$;

-- A key names one order: a request that reuses it for other items is refused (22023) rather
-- than answered with an order it did not ask for. Items compare as place_order merges them.
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

-- release_unpaid_orders ---------------------------------------------------------------------

-- Cancels the orders left unpaid (status 'placed') for longer than p_older_than and puts
-- their units back in stock; returns how many it cancelled. The database-release-unpaid
-- CronJob runs it (release-unpaid.sh, config unpaidOrderMaxAgeMinutes and
-- releaseUnpaidSchedule). Safe beside place_order and itself: the orders are taken with
-- FOR UPDATE SKIP LOCKED (an order another run is releasing is skipped, a concurrent payment
-- that committed first keeps its order: the status is checked again under the lock), and the
-- products are locked in id order, as place_order locks them, so the two cannot deadlock.
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

RESET ROLE;
