package attack

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"ecommerce-platform/tests/testkit"
)

// 3. The backup and release-unpaid CronJobs and both postgres_exporters logged in as the
// image's superuser (POSTGRES_USER), whose password let `COPY ... TO PROGRAM` run a command on
// the database server. As deployed now: each logs in as a role of its own (what that role may
// do is proven on a real PostgreSQL 15 by TestAttackRound3JobRolesDoTheirJobOnly in
// tests/postgres), and the superuser's name is the login of no CronJob and no exporter.
func TestAttackRound3JobsAndExportersAreNotTheSuperuser(t *testing.T) {
	for name, tc := range stacksOfRound3 {
		t.Run(name, func(t *testing.T) {
			r := testkit.MustRun(t, tc.stack, tc.overrides)
			superuser := testkit.TypedSecret(t, r, credentialsSecret).StringData["username"] // databaseUser
			assert.NotEmpty(t, superuser)
			logins := map[string]string{}
			for _, w := range r.Workloads() {
				pod := testkit.TypedPod(t, w).Spec
				for _, c := range testkit.TypedContainers(pod) {
					env := testkit.EnvOf(c)
					for _, user := range []string{env["PGUSER"], env["DATA_SOURCE_USER"]} {
						if user != "" {
							logins[w.K8sName()+"/"+c.Name] = user
						}
					}
				}
			}
			want := map[string]string{
				"database-backup/pg-dump":                "shop_backup",
				"database-release-unpaid/release-unpaid": "shop_release_unpaid",
				"database/postgres-exporter":             "shop_monitor",
			}
			for _, w := range r.Workloads() { // every exporter: the primary's, the replicas', members'
				for _, c := range testkit.TypedContainers(testkit.TypedPod(t, w).Spec) {
					if c.Name == "postgres-exporter" {
						want[w.K8sName()+"/"+c.Name] = "shop_monitor"
					}
				}
			}
			for where, role := range want {
				assert.Equal(t, role, logins[where], "%s logs in as", where)
			}
			for where, user := range logins {
				if user == superuser {
					assert.Contains(t, []string{"database-credentials/credentials-sync", "database-migrate/bootstrap"}, where,
						"%s logs in as the superuser %s", where, superuser)
				}
			}
		})
	}
}
