package postgrest

import (
	"fmt"
	"strings"
)

// productsOrder is where PostgREST 12's read query ends its ORDER BY in get_products.sql.
const productsOrder = `ORDER BY "api"."products"."id"    )`

// GetProductsPage is GET /products?order=id as PostgREST 12.2 runs it with db-max-rows (or a
// limit) and an offset: its query builder adds "LIMIT n OFFSET m" to the read in pgrst_source
// (Query/SqlFragment.hs, limitOffsetF), n the smaller of the request's limit and db-max-rows.
func GetProductsPage(limit, offset int) Request {
	r := GetProducts()
	if !strings.Contains(r.Text, productsOrder) {
		panic("get_products.sql: no ORDER BY to page after")
	}
	r.Name = fmt.Sprintf("get_products.sql (LIMIT %d OFFSET %d)", limit, offset)
	r.Text = strings.Replace(r.Text, productsOrder,
		fmt.Sprintf(`ORDER BY "api"."products"."id" LIMIT %d OFFSET %d )`, limit, offset), 1)
	return r
}

// GetProductsAfter is GET /products?id=gt.<after>&order=id (a keyset page) as PostgREST 12.2
// runs it with the db-max-rows limit: the filter in pgrst_source's WHERE before the ORDER BY (the
// value inline; PostgREST binds it as an untyped parameter, which the planner sees alike in
// the unnamed statement's custom plan).
func GetProductsAfter(after, limit int) Request {
	r := GetProductsPage(limit, 0)
	const from = `FROM "api"."products"    ORDER BY`
	if !strings.Contains(r.Text, from) {
		panic("get_products.sql: no FROM to filter after")
	}
	r.Name = fmt.Sprintf("get_products.sql (id > %d LIMIT %d)", after, limit)
	r.Text = strings.Replace(r.Text, from,
		fmt.Sprintf(`FROM "api"."products"  WHERE  "api"."products"."id" > %d  ORDER BY`, after), 1)
	return r
}
