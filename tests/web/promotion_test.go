package web

import (
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"ecommerce-platform/components/assets"
	"ecommerce-platform/tests/testkit"
	"ecommerce-platform/tests/testkit/nginxtest"
)

// The promotion check, exactly as deployed (the script and the Job's recorded env, only
// TARGET pointed at a real nginx with the project's config instead of the preview Service),
// against a stand-in API: it passes on a good color and names the check that fails.
func TestPromotionCheckScript(t *testing.T) {
	curl := testkit.RequireEngine(t, "curl")
	r := testkit.MustRun(t, "dev", nil)
	job := testkit.TypedPod(t, r.Object(t, testkit.Job, "frontend-promotion-check"))
	env := map[string]string{}
	for _, e := range job.Spec.Containers[0].Env {
		env[e.Name] = e.Value
	}
	require.Equal(t, "blue", env["EXPECTED_COLOR"])
	require.Equal(t, "1.0.0", env["EXPECTED_VERSION"])
	require.Equal(t, "http://frontend-blue-preview:80", env["TARGET"])
	script := filepath.Join(t.TempDir(), "promotion-check.sh")
	require.NoError(t, os.WriteFile(script, []byte(assets.PromotionCheckScript()), 0o600))

	healthy := func(apiHealth int) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch r.URL.Path {
			case "/health":
				w.WriteHeader(apiHealth)
			case "/products":
				w.Header().Set("Content-Type", "application/json; charset=utf-8")
				_, _ = w.Write([]byte(`[{"id":1,"name":"Espresso Beans","price":19.99,"stock":12}]`))
			default:
				http.NotFound(w, r)
			}
		})
	}
	run := func(t *testing.T, api http.Handler, servedVersion string) (int, string) {
		ngx, _ := nginxtest.BackedBy(t, api, nil)
		nginxtest.WriteRelease(t, ngx.Dirs, "blue", servedVersion)
		cmd := exec.Command("sh", script)
		cmd.Env = []string{"PATH=" + filepath.Dir(curl) + ":/usr/bin:/bin", "TARGET=" + ngx.Base,
			"EXPECTED_COLOR=" + env["EXPECTED_COLOR"], "EXPECTED_VERSION=" + env["EXPECTED_VERSION"], "WAIT_SECONDS=5"}
		out, err := cmd.CombinedOutput()
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode(), string(out)
		}
		require.NoError(t, err)
		return 0, string(out)
	}

	t.Run("a good color passes", func(t *testing.T) {
		code, out := run(t, healthy(http.StatusOK), "1.0.0")
		require.Zero(t, code, out)
		assert.Contains(t, out, "promotion check passed for blue 1.0.0")
	})
	t.Run("an API answering 500 fails, named", func(t *testing.T) {
		code, out := run(t, healthy(http.StatusInternalServerError), "1.0.0")
		assert.Equal(t, 1, code)
		assert.Contains(t, out, "promotion check FAILED for blue")
		assert.Contains(t, out, "/api/health answered 500")
	})
	t.Run("another version fails, named", func(t *testing.T) {
		code, out := run(t, healthy(http.StatusOK), "0.9.0")
		assert.Equal(t, 1, code)
		assert.Contains(t, out, `/release/version answered 200 "0.9.0", expected "1.0.0"`)
	})
	t.Run("products that are not JSON fail, named", func(t *testing.T) {
		html := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/health" {
				return
			}
			w.Header().Set("Content-Type", "text/html")
			_, _ = w.Write([]byte("<html>oops</html>"))
		})
		code, out := run(t, html, "1.0.0")
		assert.Equal(t, 1, code)
		assert.True(t, strings.Contains(out, "/api/products answered text/html, not JSON"), out)
	})
}
