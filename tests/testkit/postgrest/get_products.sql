-- GET /products?order=id (what the dashboard asks) as PostgREST 12.2 runs it for an anonymous
-- visitor: a read-only transaction, the same settings as any request, the read query.
BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY;
select set_config('search_path', :search_path, true), set_config(:role_setting, :role_setting_value, true), set_config('role', :role, true), set_config('request.jwt.claims', :claims, true), set_config('request.method', :method, true), set_config('request.path', :path, true), set_config('request.headers', :headers, true), set_config('request.cookies', :cookies, true);
WITH pgrst_source AS ( SELECT "api"."products".* FROM "api"."products"    ORDER BY "api"."products"."id"    )  SELECT null::bigint AS total_result_set, pg_catalog.count(_postgrest_t) AS page_total, coalesce(json_agg(_postgrest_t), '[]') AS body, nullif(current_setting('response.headers', true), '') AS response_headers, nullif(current_setting('response.status', true), '') AS response_status, '' AS response_inserted FROM ( SELECT * FROM pgrst_source ) _postgrest_t;
COMMIT;
