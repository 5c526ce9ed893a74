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
