package mocked

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	networkingv1 "k8s.io/api/networking/v1"

	"ecommerce-platform/components/assets"
	"ecommerce-platform/components/database"
	"ecommerce-platform/tests/testkit"
)

// The archiver per stack: its containers, its own claim (never the database's), and the
// off-site copy only where it is on.
func TestArchiverPerStack(t *testing.T) {
	for _, tc := range []struct {
		stack, class, size string
		containers         []string
	}{
		{"dev", "standard", "2Gi", []string{"wal-receiver", "base-backup", "metrics"}},
		{"prod", "fast-ssd", "50Gi", []string{"wal-receiver", "base-backup", "metrics", "offsite-sync"}},
	} {
		t.Run(tc.stack, func(t *testing.T) {
			r := testkit.MustRun(t, tc.stack, nil)
			archiver := r.Object(t, testkit.StatefulSet, "database-archiver")
			pod := testkit.TypedPod(t, archiver).Spec
			var names []string
			for _, c := range pod.Containers {
				names = append(names, c.Name)
				for _, m := range c.VolumeMounts {
					assert.NotEqual(t, "data", m.Name, "%s mounts the database's claim", c.Name)
				}
			}
			assert.Equal(t, tc.containers, names)
			claims := testkit.DecodeAs[appsv1.StatefulSet](t, archiver.Inputs).Spec.VolumeClaimTemplates
			require.Len(t, claims, 1)
			assert.Equal(t, "archive", claims[0].Name)
			assert.Equal(t, tc.class, *claims[0].Spec.StorageClassName)
			assert.Equal(t, tc.size, claims[0].Spec.Resources.Requests.Storage().String())
			receiver := testkit.EnvOf(testkit.TypedContainer(t, pod, "wal-receiver"))
			assert.Equal(t, database.ArchiverSlot, receiver["SLOT"])
			assert.Equal(t, "database-service", receiver["PRIMARY_HOST"])

			primary := testkit.TypedPod(t, r.Object(t, testkit.StatefulSet, "database")).Spec
			for _, c := range primary.Containers {
				for _, m := range c.VolumeMounts {
					assert.NotEqual(t, "archive", m.Name, "the primary never mounts the archive")
				}
			}
			assert.Empty(t, primary.InitContainers, "no recovery without databaseRecoverFrom")
		})
	}
}

// Quorum commit only in prod: without Patroni ANY 1 of the replicas and the archiver in
// postgresql.conf; under Patroni (prod's default) the file leaves it empty and patroni.yml
// asks for quorum over the members (TestFailoverPatroniConfigFollowsStackConfig); dev stays
// asynchronous.
func TestQuorumCommitOnlyInProd(t *testing.T) {
	for _, tc := range []struct {
		stack     string
		overrides map[string]string
		want      string
	}{
		{"prod", map[string]string{"databaseFailover": "false"}, "synchronous_standby_names = 'ANY 1 (database_replica_0, database_replica_1, database_archiver)'"},
		{"prod", nil, "synchronous_standby_names = ''"},
		{"dev", nil, "synchronous_standby_names = ''"},
	} {
		conf := testkit.TypedConfigMap(t, testkit.MustRun(t, tc.stack, tc.overrides), "database-config").Data["postgresql.conf"]
		assert.Contains(t, conf, tc.want, tc.stack, tc.overrides)
	}
}

// The archiver reaches the primary and the object storage endpoint only; the primary admits
// it; only the monitoring namespace reaches it, on its metrics port.
func TestArchiverNetworkPolicy(t *testing.T) {
	r := testkit.MustRun(t, "prod", map[string]string{"databaseOffsiteEndpoint": "https://minio.storage.example:9000"})
	policy := testkit.DecodeAs[networkingv1.NetworkPolicy](t, r.Object(t, testkit.NetworkPolicy, "database-archiver").Inputs)
	require.Len(t, policy.Spec.Ingress, 1)
	require.Len(t, policy.Spec.Ingress[0].Ports, 1)
	assert.Equal(t, int32(9188), policy.Spec.Ingress[0].Ports[0].Port.IntVal)
	require.Len(t, policy.Spec.Ingress[0].From, 1)
	assert.Nil(t, policy.Spec.Ingress[0].From[0].PodSelector)
	assert.Equal(t, map[string]string{"kubernetes.io/metadata.name": "monitoring"}, policy.Spec.Ingress[0].From[0].NamespaceSelector.MatchLabels)
	require.Len(t, policy.Spec.Egress, 2)
	assert.Equal(t, int32(5432), policy.Spec.Egress[0].Ports[0].Port.IntVal)
	assert.Equal(t, "database", policy.Spec.Egress[0].To[0].PodSelector.MatchLabels["app.kubernetes.io/component"])
	assert.Equal(t, int32(9000), policy.Spec.Egress[1].Ports[0].Port.IntVal, "the endpoint's own port")
}

// Recovery from an archive as stack config: the primary gets the fetch and the bootstrap init
// containers with the source and the target, and egress to the endpoint.
func TestRecoveryBootstrapsFromTheArchive(t *testing.T) {
	target := "2026-12-01T14:03:00Z"
	// A recovery bootstraps the single primary (databaseFailover is refused with it).
	r := testkit.MustRun(t, "prod", map[string]string{"databaseRecoverFrom": "s3://old-archive/prod", "databaseRecoveryTarget": target, "databaseFailover": "false"})
	primary := testkit.TypedPod(t, r.Object(t, testkit.StatefulSet, "database")).Spec
	require.Len(t, primary.InitContainers, 2)
	fetch, bootstrap := primary.InitContainers[0], primary.InitContainers[1]
	assert.Equal(t, "recovery-fetch", fetch.Name)
	assert.Equal(t, "rclone/rclone:1.68.2", fetch.Image)
	assert.Equal(t, "offsite:old-archive/prod", testkit.EnvOf(fetch)["REMOTE"])
	assert.Equal(t, "recovery-bootstrap", bootstrap.Name)
	assert.Equal(t, target, testkit.EnvOf(bootstrap)["RECOVERY_TARGET"])
	assert.Equal(t, testkit.EnvOf(fetch)["RESTORE_DIR"], testkit.EnvOf(bootstrap)["RESTORE_DIR"])
	policy := testkit.DecodeAs[networkingv1.NetworkPolicy](t, r.Object(t, testkit.NetworkPolicy, "database").Inputs)
	require.Len(t, policy.Spec.Egress, 1)
	assert.Equal(t, int32(443), policy.Spec.Egress[0].Ports[0].Port.IntVal)
}

// Bad durability config fails naming the key, the value and what is allowed; nothing is
// registered. Prod's off-site copies need their settings.
func TestDurabilityConfig(t *testing.T) {
	future := time.Now().Add(48 * time.Hour).UTC().Format(time.RFC3339)
	for _, tc := range []struct {
		name, stack string
		overrides   map[string]string
		want        []string
	}{
		{"prod without object storage", "prod", map[string]string{"databaseOffsiteEndpoint": "", "databaseOffsiteBucket": "",
			"offsiteAccessKeyId": testkit.Unset, "offsiteSecretAccessKey": testkit.Unset}, []string{
			`databaseOffsiteEndpoint: "" is not allowed; use an http(s) URL of the S3 endpoint`,
			`databaseOffsiteBucket: "" is not allowed; use an S3 bucket name (required with databaseOffsite)`,
			"offsiteAccessKeyId: is missing", "offsiteSecretAccessKey: is missing"}},
		{"target in the future", "dev", map[string]string{"databaseRecoverFrom": "s3://old/dev", "databaseOffsiteEndpoint": "https://s3.example",
			"databaseRecoveryTarget": future}, []string{`databaseRecoveryTarget: "` + future + `" is in the future`}},
		{"target not a time", "dev", map[string]string{"databaseRecoveryTarget": "yesterday"},
			[]string{`databaseRecoveryTarget: "yesterday" is not allowed; use latest or an RFC 3339 time`}},
		{"source not s3", "dev", map[string]string{"databaseRecoverFrom": "/mnt/archive", "databaseOffsiteEndpoint": "https://s3.example"},
			[]string{`databaseRecoverFrom: "/mnt/archive" is not allowed; use s3://<bucket>/<prefix>`}},
		{"recovering from its own archive", "prod", map[string]string{"databaseRecoverFrom": "s3://ecommerce-archive-test/prod"},
			[]string{`databaseRecoverFrom: "s3://ecommerce-archive-test/prod" and this stack's own off-site archive (databaseOffsiteBucket "ecommerce-archive-test", databaseOffsitePrefix "prod") contain one another`}},
		{"quorum larger than the candidates", "prod", map[string]string{"databaseSyncStandbys": "4", "databaseFailover": "false"},
			[]string{"databaseSyncStandbys: 4 is more than the 3 synchronous standby candidates (databaseReplicas plus 1 with databaseArchive)"}},
		{"quorum that blocks on one loss", "prod", map[string]string{"databaseSyncStandbys": "3", "databaseFailover": "false"},
			[]string{"databaseSyncStandbys: 3 equals the number of candidates"}},
		{"quorum larger than the other members", "prod", map[string]string{"databaseSyncStandbys": "3"},
			[]string{"databaseSyncStandbys: 3 is more than the 2 synchronous standby candidates (databaseReplicas with databaseFailover: Patroni counts only members, never the archiver)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := testkit.RunProgram(t, tc.stack, tc.overrides)
			require.Error(t, r.Err)
			for _, w := range tc.want {
				assert.Contains(t, r.Err.Error(), w)
			}
			assert.Empty(t, r.Kubernetes())
		})
	}
	ok := testkit.MustRun(t, "dev", map[string]string{"databaseRecoverFrom": "s3://old/dev", "databaseOffsiteEndpoint": "http://minio.storage.svc:9000"})
	assert.Len(t, testkit.TypedPod(t, ok.Object(t, testkit.StatefulSet, "database")).Spec.InitContainers, 2)
}

// The archive's metrics, exported where Prometheus scrapes: the archiver pod's metrics
// container (scrape annotations on its port, the file its loops write, with the off-site
// metric only where copies are made) and the primary's exporter (the lag queries).
func TestArchiveMetricsAreScraped(t *testing.T) {
	for stack, offsite := range map[string]string{"dev": "", "prod": "on"} {
		r := testkit.MustRun(t, stack, nil)
		set := testkit.DecodeAs[appsv1.StatefulSet](t, r.Object(t, testkit.StatefulSet, "database-archiver").Inputs)
		assert.Equal(t, map[string]string{"prometheus.io/scrape": "true", "prometheus.io/port": "9188", "prometheus.io/path": "/metrics"},
			set.Spec.Template.Annotations, stack)
		pod := set.Spec.Template.Spec
		metrics := testkit.TypedContainer(t, pod, "metrics")
		assert.Equal(t, "nginxinc/nginx-unprivileged:1.27.4-alpine", metrics.Image)
		assert.Equal(t, int32(9188), metrics.Ports[0].ContainerPort)
		assert.Equal(t, "/metrics", metrics.ReadinessProbe.HTTPGet.Path, "ready once the file is written")
		assert.Equal(t, offsite, testkit.EnvOf(testkit.TypedContainer(t, pod, "base-backup"))["OFFSITE_COPIES"], stack)
		data := testkit.TypedConfigMap(t, r, "database-config").Data
		assert.Equal(t, assets.File("archive-metrics.sh"), data["archive-metrics.sh"])
		assert.Equal(t, assets.File("archive-metrics-nginx.conf"), data["archive-metrics-nginx.conf"])

		exporter := testkit.TypedContainer(t, testkit.TypedPod(t, r.Object(t, testkit.StatefulSet, "database")).Spec, "postgres-exporter")
		path := testkit.EnvOf(exporter)["PG_EXPORTER_EXTEND_QUERY_PATH"]
		assert.Equal(t, "/etc/postgres-exporter/queries.yaml", path)
		mounted := false
		for _, m := range exporter.VolumeMounts {
			mounted = mounted || (m.MountPath == path && m.SubPath == "exporter-queries.yaml" && m.Name == "config")
		}
		assert.True(t, mounted, "the queries file is mounted where the exporter reads it")
		assert.Equal(t, assets.File("exporter-queries.yaml"), data["exporter-queries.yaml"])
	}
}
