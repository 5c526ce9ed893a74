-- catalog.sql: the shop's schema as sorted lines of text, for comparing two databases by query
-- (the upgrade tests: a migrated shop against a fresh install). Everything a migration or
-- bootstrap.sql decides: schemas, tables, columns, constraints, indexes, triggers, sequences,
-- functions (whole definitions), views, comments, owners and privileges, the roles, their
-- attributes, memberships and settings, default privileges and the database's privileges.
-- Identities that differ between two installs for no reason (oids) are left out; privileges
-- are compared as they take effect (a NULL ACL is its owner's defaults, as a restore leaves it).
WITH shop_schemas AS (
    SELECT oid, nspname FROM pg_namespace WHERE nspname IN ('shop', 'api', 'pool', 'migrations', 'public')
), shop_roles AS (
    SELECT oid, rolname FROM pg_roles WHERE rolname IN ('api_owner', 'migrator', 'authenticator', 'web_anon', 'web_user')
)
SELECT line FROM (
    SELECT format('schema %s owner=%s acl=%s comment=%s', n.nspname, pg_get_userbyid(s.nspowner), coalesce(s.nspacl, acldefault('n'::"char", s.nspowner)),
                  obj_description(n.oid, 'pg_namespace')) AS line
      FROM shop_schemas n JOIN pg_namespace s ON s.oid = n.oid
    UNION ALL
    SELECT format('relation %s.%s kind=%s owner=%s acl=%s options=%s comment=%s', n.nspname, c.relname, c.relkind,
                  pg_get_userbyid(c.relowner), coalesce(c.relacl, acldefault(CASE c.relkind WHEN 'S' THEN 's' ELSE 'r' END::"char", c.relowner)), c.reloptions, obj_description(c.oid, 'pg_class'))
      FROM pg_class c JOIN shop_schemas n ON n.oid = c.relnamespace
     WHERE n.nspname <> 'public' OR c.relkind <> 'i'
    UNION ALL
    SELECT format('column %s.%s.%s #%s type=%s notnull=%s default=%s identity=%s acl=%s', n.nspname, c.relname, a.attname,
                  row_number() OVER (PARTITION BY c.oid ORDER BY a.attnum), format_type(a.atttypid, a.atttypmod), a.attnotnull,
                  pg_get_expr(d.adbin, d.adrelid), a.attidentity, a.attacl)
      FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN shop_schemas n ON n.oid = c.relnamespace
      LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
     WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'v', 'p')
    UNION ALL
    SELECT format('constraint %s.%s %s: %s', n.nspname, c.relname, k.conname, pg_get_constraintdef(k.oid))
      FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid JOIN shop_schemas n ON n.oid = c.relnamespace
    UNION ALL
    SELECT format('index %s', pg_get_indexdef(i.indexrelid))
      FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid JOIN shop_schemas n ON n.oid = c.relnamespace
     WHERE n.nspname <> 'public'
    UNION ALL
    SELECT format('trigger %s', pg_get_triggerdef(t.oid))
      FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN shop_schemas n ON n.oid = c.relnamespace
     WHERE NOT t.tgisinternal
    UNION ALL
    SELECT format('view %s.%s: %s', n.nspname, c.relname, pg_get_viewdef(c.oid))
      FROM pg_class c JOIN shop_schemas n ON n.oid = c.relnamespace WHERE c.relkind = 'v'
    UNION ALL
    SELECT format('function %s owner=%s acl=%s comment=%s: %s', p.oid::regprocedure, pg_get_userbyid(p.proowner), coalesce(p.proacl, acldefault('f'::"char", p.proowner)),
                  obj_description(p.oid, 'pg_proc'), pg_get_functiondef(p.oid))
      FROM pg_proc p JOIN shop_schemas n ON n.oid = p.pronamespace
     WHERE n.nspname <> 'public' OR p.proacl IS NOT NULL OR p.proname IN ('crypt', 'gen_salt', 'hmac')
    UNION ALL
    SELECT format('role %s login=%s inherit=%s super=%s createdb=%s createrole=%s replication=%s bypassrls=%s',
                  r.rolname, r.rolcanlogin, r.rolinherit, r.rolsuper, r.rolcreatedb, r.rolcreaterole, r.rolreplication, r.rolbypassrls)
      FROM pg_roles r JOIN shop_roles s ON s.oid = r.oid
    UNION ALL
    SELECT format('member %s of %s admin=%s', pg_get_userbyid(m.member), pg_get_userbyid(m.roleid), m.admin_option)
      FROM pg_auth_members m WHERE m.member IN (SELECT oid FROM shop_roles) OR m.roleid IN (SELECT oid FROM shop_roles)
    UNION ALL
    SELECT format('setting %s in %s: %s', coalesce(pg_get_userbyid(NULLIF(st.setrole, 0)), '*'),
                  coalesce((SELECT CASE WHEN datname = current_database() THEN 'the shop database' ELSE datname END
                              FROM pg_database WHERE oid = st.setdatabase), '*'), st.setconfig)
      FROM pg_db_role_setting st
     WHERE st.setrole IN (SELECT oid FROM shop_roles)
    UNION ALL
    SELECT format('default acl of %s in %s for %s: %s', pg_get_userbyid(da.defaclrole), coalesce(da.defaclnamespace::regnamespace::text, '*'),
                  da.defaclobjtype, da.defaclacl)
      FROM pg_default_acl da
    UNION ALL
    SELECT format('database %s acl=%s', CASE WHEN d.datname = current_database() THEN 'the shop database' ELSE d.datname END, d.datacl)
      FROM pg_database d WHERE d.datname IN (current_database(), 'postgres')
    UNION ALL
    SELECT format('extension %s version=%s schema=%s', e.extname, e.extversion, e.extnamespace::regnamespace)
      FROM pg_extension e
) AS catalog
ORDER BY line;
