-- seed-dev.sql: demo data for the dev stack ONLY (config databaseSeedData).
--
-- The database-migrate Job runs this after the migrations, as the migrator (api_owner), in
-- every run of the dev stack: it loads users and products only into a shop that has none, so
-- running it again (or on a shop with real data) changes nothing. Its passwords are public:
-- never load it into a database that faces real users.
--
-- Log in with demo@example.com / demo-password (or alice@example.com / alice-password,
-- bob@example.com / bob-password). The rows below hold those passwords' bcrypt hashes (cost
-- 10, which the trigger users_hash_password keeps as they are), never the passwords: a slow
-- INSERT is logged with its text, and this file's would otherwise put them in the log.

INSERT INTO shop.users (email, name, password_hash)
SELECT email, name, password_hash FROM (VALUES
    ('demo@example.com',  'Demo Customer', '$2a$10$arax3iM2WZiUmNrdPVDHn.ie3GsS70PM25dnidyHOAXK60TSkHa9S'),
    ('alice@example.com', 'Alice Martin',  '$2a$10$MXY.I2IHxcv/Lo8fjKVmuelTBnx316j25Dbo3XTUu4W62pbUPMh9m'),
    ('bob@example.com',   'Bob Nguyen',    '$2a$10$QfYM5VS.LG266SwFEvL/E.kBmYti70KsmR.Uqu.Hg9riMutiCdERq')) AS demo (email, name, password_hash)
WHERE NOT EXISTS (SELECT 1 FROM shop.users);

-- Three products are low on stock (< 5) and the tamper is down to its last piece.
INSERT INTO shop.products (name, description, price, stock)
SELECT name, description, price, stock FROM (VALUES
    ('Espresso Mug',           'Double-walled porcelain mug, 80 ml.',          12.50,  40),
    ('Pour-Over Kettle',       'Gooseneck kettle, 1 l, stainless steel.',      39.90,  12),
    ('Coffee Grinder',         'Conical burr grinder with 40 settings.',       89.00,   3),
    ('Paper Filters',          'Pack of 100 unbleached paper filters.',         4.99, 200),
    ('Single-Origin Beans',    'Washed Ethiopian beans, 250 g.',               14.75,  25),
    ('Cold Brew Bottle',       'Glass cold-brew bottle with filter, 1 l.',     24.00,   8),
    ('Barista Apron',          'Waxed canvas apron with leather straps.',      29.95,   4),
    ('Limited Edition Tamper', 'Walnut and steel tamper, 58 mm, numbered.',    59.00,   1)) AS demo (name, description, price, stock)
WHERE NOT EXISTS (SELECT 1 FROM shop.products);
