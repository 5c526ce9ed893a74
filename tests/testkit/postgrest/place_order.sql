-- POST /rpc/place_order {"items": [...]} as PostgREST 12.2 runs it (db-prepared-statements
-- false: every statement an unnamed extended-protocol statement, one round trip each), for a
-- signed-in customer. :name is a parameter ($n on the wire); only the body's json type, which
-- PostgREST gives in the Bind message, is written here as a cast, since neither pgbench nor a
-- plain driver can type a parameter otherwise.
BEGIN ISOLATION LEVEL READ COMMITTED READ WRITE;
select set_config('search_path', :search_path, true), set_config(:role_setting, :role_setting_value, true), set_config('role', :role, true), set_config('request.jwt.claims', :claims, true), set_config('request.method', :method, true), set_config('request.path', :path, true), set_config('request.headers', :headers, true), set_config('request.cookies', :cookies, true);
WITH pgrst_source AS (SELECT pgrst_call.pgrst_scalar FROM (SELECT :body::json AS json_data) pgrst_payload, LATERAL (SELECT "items" FROM json_to_record(pgrst_payload.json_data) AS _("items" jsonb) LIMIT 1) pgrst_body , LATERAL (SELECT "api"."place_order"("items" := pgrst_body."items") pgrst_scalar) pgrst_call) SELECT null::bigint AS total_result_set, 1 AS page_total, coalesce(json_agg(_postgrest_t.pgrst_scalar)->0, 'null') AS body, nullif(current_setting('response.headers', true), '') AS response_headers, nullif(current_setting('response.status', true), '') AS response_status, '' AS response_inserted FROM (SELECT "place_order".* FROM "pgrst_source" AS "place_order"     ) _postgrest_t;
COMMIT;
