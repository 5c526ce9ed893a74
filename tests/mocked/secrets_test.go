package mocked

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"ecommerce-platform/components"
	"ecommerce-platform/tests/testkit"
)

// Secret values live in Secrets only: never in a pod spec, a ConfigMap, a label or any
// other object, and the pods read them as files or secretKeyRefs.
func TestSecretValuesStayInSecrets(t *testing.T) {
	for _, stack := range []string{"dev", "prod"} {
		t.Run(stack, func(t *testing.T) {
			r := testkit.MustRun(t, stack, nil)
			inSecrets := map[string]bool{}
			for _, res := range r.Kubernetes() {
				js, err := json.Marshal(res.Inputs)
				require.NoError(t, err)
				for key, value := range testkit.TestSecrets {
					if !containsString(string(js), value) {
						continue
					}
					if res.Type == testkit.Secret {
						inSecrets[key] = true
						continue
					}
					assert.Failf(t, "secret leaked", "%s %s contains the value of %s", res.Type, res.K8sName(), key)
				}
			}
			want := map[string]bool{"dbPassword": true, "apiDbPassword": true, "jwtSecret": true, "replicationPassword": true,
				"backupDbPassword": true, "releaseUnpaidDbPassword": true, "monitorDbPassword": true}
			if stack == "prod" { // the off-site copies' keys and the key they are encrypted with
				want["offsiteAccessKeyId"], want["offsiteSecretAccessKey"], want["databaseOffsiteEncryptionKey"] = true, true, true
			}
			assert.Equal(t, want, inSecrets)

			backend := testkit.TypedPod(t, r.Object(t, testkit.Deployment, "backend")).Spec
			env := testkit.EnvOf(testkit.TypedContainer(t, backend, "postgrest"))
			assert.Equal(t, "<ref>", env["PGPASSWORD"])
			assert.Equal(t, "<ref>", env["JWT_SECRET"])
			assert.Equal(t, "$(JWT_SECRET)", env["PGRST_JWT_SECRET"])
		})
	}
}

func containsString(haystack, needle string) bool {
	return len(needle) > 0 && json.Valid([]byte(haystack)) && strings.Contains(haystack, needle)
}

// The backend is wired to the database through Outputs: PostgREST talks only to its own
// PgBouncer, and PgBouncer to the database Service the Database component created.
func TestBackendWiring(t *testing.T) {
	r := testkit.MustRun(t, "dev", nil)
	pod := testkit.TypedPod(t, r.Object(t, testkit.Deployment, "backend")).Spec
	names := []string{}
	ports := map[string][]int32{}
	for _, c := range testkit.TypedContainers(pod) {
		names = append(names, c.Name)
		for _, p := range c.Ports {
			ports[c.Name] = append(ports[c.Name], p.ContainerPort)
		}
	}
	assert.Equal(t, []string{"wait-for-database", "envoy", "postgrest", "pgbouncer"}, names)
	assert.Equal(t, map[string][]int32{"envoy": {8080, 9902}, "pgbouncer": {6432}}, ports, "PostgREST listens on the pod's loopback only")

	api := testkit.EnvOf(testkit.TypedContainer(t, pod, "postgrest"))
	assert.Equal(t, "postgres://authenticator@127.0.0.1:6432/ecommerce", api["DATABASE_URL"])
	assert.Equal(t, components.DatabaseURL("ecommerce"), api["DATABASE_URL"])
	assert.Equal(t, "$(DATABASE_URL)", api["PGRST_DB_URI"])
	assert.Equal(t, "false", api["PGRST_DB_PREPARED_STATEMENTS"])
	assert.Equal(t, "false", api["PGRST_DB_CHANNEL_ENABLED"])
	assert.Equal(t, "3001", api["PGRST_ADMIN_SERVER_PORT"])
	assert.Equal(t, "api", api["PGRST_DB_SCHEMAS"])
	assert.Equal(t, "web_anon", api["PGRST_DB_ANON_ROLE"])
	assert.Equal(t, "info", api["LOG_LEVEL"])
	assert.Equal(t, "100", testkit.EnvOf(testkit.TypedContainer(t, pod, "envoy"))["API_RATE_LIMIT"])

	dbService := r.Object(t, testkit.Service, "database-service").K8sName()
	ini := testkit.TypedConfigMap(t, r, "backend-config").Data["pgbouncer.ini"]
	assert.Contains(t, ini, "host="+dbService)
	assert.Contains(t, ini, "listen_addr = 127.0.0.1")
	assert.Contains(t, ini, "pool_mode = transaction")
	wait := testkit.EnvOf(testkit.TypedContainer(t, pod, "wait-for-database"))
	assert.Equal(t, dbService, wait["DB_HOST"])
	assert.Equal(t, "120", wait["TIMEOUT_SECONDS"])

	nginx := testkit.TypedConfigMap(t, r, "frontend-blue-config").Data["nginx.conf"]
	assert.Contains(t, nginx, "server "+r.Object(t, testkit.Service, "backend-service").K8sName()+":8080")
}

// PgBouncer's auth_file quotes both fields and doubles a quote inside them.
func TestPgBouncerUserlistQuoting(t *testing.T) {
	cases := map[string]string{
		"plain":        `"authenticator" "plain"` + "\n",
		`with"quote`:   `"authenticator" "with""quote"` + "\n",
		`back\slash$1`: `"authenticator" "back\slash$1"` + "\n",
	}
	for password, want := range cases {
		assert.Equal(t, want, components.PgBouncerUserlist("authenticator", password))
	}
}
