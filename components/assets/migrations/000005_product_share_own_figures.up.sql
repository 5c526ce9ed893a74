-- 000005_product_share_own_figures: two findings of the third attack round (issue 27).
--
-- Finding 5: the unpaid cap (order_limits.max_open_units, 40) bounds a customer's units in
-- all, not per product: one account held every unit of the five scarcest products in two
-- orders and took them again as soon as the release job returned them. Now a customer may
-- hold unpaid at most max_product_share_percent (the stack's orderMaxProductSharePercent,
-- 50 by default; the database-credentials Job writes it) of a product's units in stock and
-- their own, at least one: shop.place_order checks it in the UPDATE that takes the stock.
--
-- Finding 8: every signed-in customer read the shop's users, orders, revenue and items sold
-- from api.stats and could follow other customers' orders by the difference. Now api.stats
-- shows a customer their own orders, spending and units, and users is NULL for everyone. No
-- API role reads the shop-wide figures; the shop's operators read them with SQL as the
-- database owner (docs/operations.md).
--
-- Expand only: api.stats keeps its columns and types (the previous release's dashboard reads
-- them), shop.place_order keeps its signature and its answers to every order within the
-- share, and the new column has a default, so the previous release's functions, which do not
-- read it, keep working. Written to be applied again safely (IF NOT EXISTS, OR REPLACE).

-- The strongest lock this migration takes, first (docs/upgrades.md): ACCESS EXCLUSIVE on the
-- one table it changes. Orders read order_limits and wait for the milliseconds this takes.
LOCK TABLE shop.order_limits IN ACCESS EXCLUSIVE MODE;

-- A constant default fills existing rows without rewriting the table.
ALTER TABLE shop.order_limits
    ADD COLUMN IF NOT EXISTS max_product_share_percent integer NOT NULL DEFAULT 50
        CONSTRAINT order_limits_max_product_share_percent_check CHECK (max_product_share_percent BETWEEN 1 AND 50);
COMMENT ON COLUMN shop.order_limits.max_product_share_percent IS
    'Most of a product one customer may hold unpaid: percent of its units in stock and theirs already (at least one unit); at most 50, so as many units stay for others.';

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
    v_share      integer;
    v_held       bigint[];
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
    -- Read in the same statement: the share of a product one customer may hold, and what the
    -- customer already holds unpaid of each product of this order: their own unpaid orders,
    -- each order's line of the product looked up by its key (a join on the product's lines
    -- was planned as a scan of every customer's lines of it).
    SELECT coalesce((SELECT l.max_open_units FROM shop.order_limits l), 40),
           coalesce((SELECT l.max_product_share_percent FROM shop.order_limits l), 50),
           (SELECT coalesce(sum((SELECT sum(i.quantity) FROM shop.order_items i WHERE i.order_id = o.id)), 0)
              FROM shop.orders o
             WHERE o.user_id = p_user_id AND o.status = 'placed'),
           (SELECT array_agg((SELECT coalesce(sum((SELECT i.quantity FROM shop.order_items i
                                                     WHERE i.order_id = o.id AND i.product_id = x.id)), 0)
                                FROM shop.orders o
                               WHERE o.user_id = p_user_id AND o.status = 'placed') ORDER BY x.n)
              FROM unnest(v_ids) WITH ORDINALITY AS x(id, n))
      INTO v_cap, v_share, v_open, v_held;
    IF v_open + v_units > v_cap THEN
        RAISE EXCEPTION 'too many unpaid items: % units of earlier orders are unpaid, and a customer may hold at most % unpaid units',
            v_open, v_cap
            USING ERRCODE = 'P0001',
                  HINT = 'pay for or wait for the release of earlier orders';
    END IF;

    -- The stock, product by product in id order: checked and taken by one UPDATE, which
    -- locks the row and returns the price the order is charged. The same UPDATE checks the
    -- customer's share of the product (issue 27, finding 5): what they hold unpaid of it, this
    -- order included, is at most max_product_share_percent of the units in stock and theirs
    -- already (at least one unit, so a product's last unit can be sold). At 50 percent or less
    -- at least as many units stay in stock as the customer holds: a scarce product can always
    -- be bought by someone else, and one account's orders, re-placed after each release of
    -- unpaid orders, never take it all. Only the customer's own holding is read: the bound
    -- does not grow with other customers' orders.
    FOR i IN 1 .. cardinality(v_ids) LOOP
        UPDATE shop.products p SET stock = p.stock - v_quantities[i]
         WHERE p.id = v_ids[i] AND p.stock >= v_quantities[i]
           AND v_held[i] + v_quantities[i] <= greatest(1, (p.stock + v_held[i]) * v_share / 100)
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
            IF v_held[i] + v_quantities[i] > greatest(1, (v_stock + v_held[i]) * v_share / 100) THEN
                RAISE EXCEPTION 'too many unpaid units of product "%" (id %): % unpaid with this order, and a customer may hold at most % (% percent of the % in stock and already theirs)',
                    v_name, v_ids[i], v_held[i] + v_quantities[i], greatest(1, (v_stock + v_held[i]) * v_share / 100),
                    v_share, v_stock + v_held[i]
                    USING ERRCODE = 'P0001',
                          HINT = 'the rest stays for other customers; order fewer, or pay for earlier orders';
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

-- A customer's own figures. users is NULL for everyone (the number of accounts is the shop's,
-- not a customer's); products and low_stock_products are the catalogue's, which
-- api.products shows anyone. Anonymous visitors get NULL for the order figures, as before.
CREATE OR REPLACE VIEW api.stats AS
    SELECT NULL::bigint                                                                    AS users,
           (SELECT count(*) FROM shop.products)                                             AS products,
           CASE WHEN r.user_id IS NOT NULL THEN
               (SELECT count(*) FROM shop.orders o WHERE o.user_id = r.user_id AND o.status <> 'cancelled') END AS orders,
           CASE WHEN r.user_id IS NOT NULL THEN
               (SELECT coalesce(sum(o.total), 0)::numeric(14,2) FROM shop.orders o
                 WHERE o.user_id = r.user_id AND o.status <> 'cancelled') END                AS revenue,
           CASE WHEN r.user_id IS NOT NULL THEN
               (SELECT coalesce(sum(i.quantity), 0) FROM shop.orders o JOIN shop.order_items i ON i.order_id = o.id
                 WHERE o.user_id = r.user_id AND o.status <> 'cancelled') END                AS items_sold,
           (SELECT count(*) FROM shop.products WHERE stock < 5)                             AS low_stock_products
      FROM (SELECT nullif(nullif(current_setting('request.jwt.claims', true), '')::json ->> 'user_id', '')::bigint AS user_id) AS r;
COMMENT ON VIEW api.stats IS 'The dashboard''s figures (one row): the catalogue''s, and the signed-in customer''s own orders, spending (revenue) and units (items_sold); never the shop''s.';
