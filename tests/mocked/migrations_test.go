package mocked

import (
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	batchv1 "k8s.io/api/batch/v1"

	"ecommerce-platform/components/assets"
	"ecommerce-platform/tests/testkit"
)

// The database-migrate Job runs after the database and before everything that uses the
// schema: the credentials Job (which writes shop.jwt_keys and shop.order_limits) and, through
// it, both CronJobs (backup, release-unpaid: they log in as roles whose passwords it sets) and
// the backend, whose pods carry the migration set's hash so a new set rolls them (PostgREST
// reads the new schema).
func TestMigrationJobOrdering(t *testing.T) {
	for _, stack := range []string{"dev", "prod"} {
		t.Run(stack, func(t *testing.T) {
			r := testkit.MustRun(t, stack, nil)
			job := r.Object(t, testkit.Job, "database-migrate")
			assert.True(t, dependsOn(job, testkit.StatefulSet+"::database-statefulset"), "after the database: %v", job.Deps)
			credentials := r.Object(t, testkit.Job, "database-credentials")
			assert.True(t, dependsOn(credentials, testkit.Job+"::database-migrate"), "the credentials Job waits for the migrations: %v", credentials.Deps)
			for _, dependent := range []testkit.Recorded{
				r.Object(t, testkit.CronJob, "database-backup"),
				r.Object(t, testkit.CronJob, "database-release-unpaid"),
			} {
				assert.True(t, dependsOn(dependent, testkit.Job+"::database-credentials-job"), "%s waits for the credentials (and so the migrations): %v", dependent.K8sName(), dependent.Deps)
			}
			backend := r.Object(t, testkit.Deployment, "backend")
			assert.True(t, dependsOn(backend, testkit.Job+"::database-credentials-job"), "%v", backend.Deps)
			jobPod, backendPod := testkit.TypedPod(t, job), testkit.TypedPod(t, backend)
			require.Len(t, jobPod.Annotations["checksum/migrations"], 64)
			assert.Equal(t, jobPod.Annotations["checksum/migrations"], backendPod.Annotations["checksum/migrations"])

			// Three containers in order, each with only what it reads: the superuser's
			// password for the bootstrap alone, no Secret for golang-migrate and verify.
			names := []string{}
			for _, c := range testkit.TypedContainers(jobPod.Spec) {
				names = append(names, c.Name)
			}
			assert.Equal(t, []string{"bootstrap", "migrate", "verify"}, names)
			for _, v := range jobPod.Spec.Volumes {
				if v.Secret != nil {
					require.Len(t, v.Secret.Items, 1, "volume %s", v.Name)
					assert.Equal(t, "password", v.Secret.Items[0].Key)
				}
			}
			migrate := testkit.TypedContainer(t, jobPod.Spec, "migrate")
			assert.Equal(t, "migrate/migrate:v4.20.1", migrate.Image)
			assert.Equal(t, assets.MigrateArgs(assets.MigrationsDir), migrate.Args)
			for _, m := range migrate.VolumeMounts {
				assert.NotEqual(t, "superuser", m.Name, "golang-migrate never sees the superuser's password")
			}
		})
	}
}

// The Job runs again exactly when the migration set changes: its pod template carries the
// set's hash and the newest version, and the version is on its labels and in the outputs.
func TestMigrationJobRunsAgainOnlyForANewSet(t *testing.T) {
	_, newest, err := assets.Migrations()
	require.NoError(t, err)
	base := testkit.MustRun(t, "prod", nil)
	same := testkit.MustRun(t, "prod", map[string]string{"frontendRateLimit": "30", "backendReplicas": "3"})
	seeded := testkit.MustRun(t, "prod", map[string]string{"databaseSeedData": "true", "frontendServiceType": "ClusterIP"}) // not published
	pod := func(r testkit.Run) map[string]string {
		return testkit.TypedPod(t, r.Object(t, testkit.Job, "database-migrate")).Annotations
	}
	assert.Equal(t, pod(base), pod(same), "other config leaves the migration run alone")
	assert.NotEqual(t, pod(base)["checksum/migrations"], pod(seeded)["checksum/migrations"], "the set (with the dev seed) changed")
	assert.Equal(t, strconv.Itoa(newest), pod(base)["schema/version"])
	job := testkit.DecodeAs[batchv1.Job](t, base.Object(t, testkit.Job, "database-migrate").Inputs)
	assert.Equal(t, strconv.Itoa(newest), job.Labels["app.kubernetes.io/version"])
}
