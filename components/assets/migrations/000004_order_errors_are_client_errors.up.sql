-- 000004_order_errors_are_client_errors: every client mistake in an order is a 4xx through
-- PostgREST 12's documented mapping of SQLSTATEs to HTTP statuses (issue 27, finding 9). An
-- unknown product id raised P0002 (no_data_found), which PostgREST answers 500: a client error
-- reported as a server fault, counted by the API error-ratio alert. Now:
--   22023  a malformed order (items, quantities, the Idempotency-Key)        -> 400
--   P0001  an order the shop refuses: unknown product, stock, the unpaid cap -> 400
--   28000  a token of an account that no longer exists                       -> 403
--   42501  no signed-in customer (api.place_order)                           -> 401/403
--   23505  an Idempotency-Key raced by a request written around the function -> 409
-- The messages are unchanged ("unknown product 9999" names the product).
-- Expand only: shop.place_order is replaced whole with the same signature and the same
-- answers to every call that succeeded; no table is changed, so no table lock is taken.

CREATE OR REPLACE FUNCTION shop.place_order(p_user_id bigint, p_items jsonb, p_idempotency_key text) RETURNS shop.orders
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
        -- A token of an account that no longer exists: the client must sign in again
        -- (28000: PostgREST answers 403, a client error).
        RAISE EXCEPTION 'unknown user %', p_user_id
            USING ERRCODE = '28000',
                  HINT = 'sign in again';
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
                -- A product id not in the catalogue is the client's mistake: P0001, which
                -- PostgREST answers 400 (P0002 was answered 500, a server fault).
                RAISE EXCEPTION 'unknown product %', v_ids[i]
                    USING ERRCODE = 'P0001',
                          HINT = 'the catalogue is GET /api/products';
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
