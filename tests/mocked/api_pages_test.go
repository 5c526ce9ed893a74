package mocked

import (
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"ecommerce-platform/tests/testkit"
)

// Every API read answers one bounded page (issue 27, finding 10): the backend's PostgREST
// runs with db-max-rows from apiMaxRows (100 unless a stack says otherwise), which is checked
// (25, the dashboard's page and one row more, to 1000) before anything is registered; each
// color's nginx lets offsets below 10000 through only and drops the Range header, PostgREST's
// other way to ask for an offset.
func TestAPIReadsAreBoundedPages(t *testing.T) {
	for _, tc := range []struct {
		stack     string
		overrides map[string]string
		maxRows   string
	}{
		{"dev", nil, "100"},
		{"prod", nil, "100"},
		{"prod", map[string]string{"apiMaxRows": "250"}, "250"},
		{"dev", map[string]string{"apiMaxRows": "25"}, "25"},
	} {
		t.Run(tc.stack+" "+tc.maxRows, func(t *testing.T) {
			r := testkit.MustRun(t, tc.stack, tc.overrides)
			backend := testkit.TypedPod(t, r.Object(t, testkit.Deployment, "backend")).Spec
			assert.Equal(t, tc.maxRows, testkit.EnvOf(testkit.TypedContainer(t, backend, "postgrest"))["PGRST_DB_MAX_ROWS"])

			for _, color := range []string{"blue", "green"} {
				conf := testkit.TypedConfigMap(t, r, "frontend-"+color+"-config").Data["nginx.conf"]
				require.NotEmpty(t, conf, color)
				offsets := regexp.MustCompile(`offset=\[0-9\]\{1,(\d+)\}`).FindAllStringSubmatch(conf, -1)
				require.NotEmpty(t, offsets, "%s: the query allow-list names offset", color)
				for _, m := range offsets {
					assert.Equal(t, "4", m[1], "%s: offsets of at most 4 digits (below 10000)", color)
				}
				assert.Regexp(t, `(?m)^\s*proxy_set_header Range\s+"";`, conf, color)
				assert.Regexp(t, `(?m)^\s*proxy_set_header Range-Unit\s+"";`, conf, color)
			}
		})
	}

	for _, bad := range []string{"0", "24", "1001", "-1", "all"} {
		t.Run("apiMaxRows="+bad, func(t *testing.T) {
			r := testkit.RunProgram(t, "prod", map[string]string{"apiMaxRows": bad})
			require.Error(t, r.Err)
			assert.Contains(t, r.Err.Error(), "apiMaxRows")
			assert.Contains(t, r.Err.Error(), `"`+bad+`"`)
			assert.True(t, strings.Contains(r.Err.Error(), "from 25 to 1000") || strings.Contains(r.Err.Error(), "a whole number"), r.Err.Error())
			assert.Empty(t, r.Kubernetes(), "no Kubernetes object with an invalid apiMaxRows")
		})
	}
}
