package mocked

import (
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"ecommerce-platform/components/assets"
	"ecommerce-platform/components/database"
	"ecommerce-platform/tests/testkit"
)

// Each stack has the shape its users expect: dev small and cheap, prod as the seed says.
func TestStackShapes(t *testing.T) {
	cases := []struct {
		stack             string
		namespace         string
		blue, green       int
		backendReplicas   any // nil when an HPA owns the count
		hpa               []int
		storageClass      string
		storageSize       string
		retention         string
		protect           bool
		frontendType      string
		services          []string
		databaseMembers   int32 // the database StatefulSet: the primary, or Patroni's members
		seedScript        bool
		spreadsAcrossNode bool
	}{
		{
			stack: "dev", namespace: "ecommerce-dev", blue: 1, green: 1, backendReplicas: 1,
			storageClass: "standard", storageSize: "1Gi", retention: "Delete", protect: false,
			frontendType: "ClusterIP", seedScript: true, databaseMembers: 1,
			services: []string{
				"backend-nodeport", "backend-service", "database-archiver", "database-nodeport", "database-readonly", "database-service",
				"frontend-blue-preview", "frontend-green-preview", "frontend-internal", "frontend-nodeport", "frontend-service",
			},
		},
		{
			stack: "prod", namespace: "ecommerce-platform", blue: 3, green: 3, backendReplicas: nil, hpa: []int{2, 10, 70},
			storageClass: "fast-ssd", storageSize: "10Gi", retention: "Retain", protect: true,
			frontendType: "LoadBalancer", spreadsAcrossNode: true, databaseMembers: 3,
			services: []string{
				"backend-service", "database-archiver", "database-readonly", "database-service",
				"frontend-blue-preview", "frontend-green-preview", "frontend-internal", "frontend-service",
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.stack, func(t *testing.T) {
			r := testkit.MustRun(t, tc.stack, nil)

			ns := r.Object(t, testkit.Namespace, tc.namespace)
			assert.Equal(t, "restricted", testkit.ObjectMeta(t, ns).Labels["pod-security.kubernetes.io/enforce"])
			for _, obj := range r.Kubernetes() {
				if obj.Type != testkit.Namespace {
					assert.Equalf(t, tc.namespace, testkit.ObjectMeta(t, obj).Namespace, "%s %s", obj.Type, obj.K8sName())
				}
			}

			deployment := func(name string) appsv1.Deployment {
				return testkit.DecodeAs[appsv1.Deployment](t, r.Object(t, testkit.Deployment, name).Inputs)
			}
			assert.Equal(t, ptr(int32(tc.blue)), deployment("frontend-blue").Spec.Replicas)
			assert.Equal(t, ptr(int32(tc.green)), deployment("frontend-green").Spec.Replicas)
			backend := deployment("backend")
			if tc.backendReplicas == nil {
				assert.Nil(t, backend.Spec.Replicas, "the HPA owns the count: the Deployment must not set it")
				hpa := testkit.DecodeAs[autoscalingv2.HorizontalPodAutoscaler](t, r.Object(t, testkit.HorizontalPodAutoscaler, "backend").Inputs)
				assert.Equal(t, ptr(int32(tc.hpa[0])), hpa.Spec.MinReplicas)
				assert.Equal(t, int32(tc.hpa[1]), hpa.Spec.MaxReplicas)
				assert.Equal(t, ptr(int32(tc.hpa[2])), hpa.Spec.Metrics[0].Resource.Target.AverageUtilization)
				assert.Equal(t, autoscalingv2.CrossVersionObjectReference{Kind: "Deployment", Name: "backend", APIVersion: "apps/v1"}, hpa.Spec.ScaleTargetRef)
			} else {
				assert.Equal(t, ptr(int32(tc.backendReplicas.(int))), backend.Spec.Replicas)
				assert.Empty(t, r.OfType(testkit.HorizontalPodAutoscaler))
			}

			db := testkit.DecodeAs[appsv1.StatefulSet](t, r.Object(t, testkit.StatefulSet, "database").Inputs)
			assert.Equal(t, ptr(tc.databaseMembers), db.Spec.Replicas)
			assert.Equal(t, "database-service", db.Spec.ServiceName)
			require.Len(t, db.Spec.VolumeClaimTemplates, 1)
			claim := db.Spec.VolumeClaimTemplates[0]
			assert.Equal(t, ptr(tc.storageClass), claim.Spec.StorageClassName)
			assert.Equal(t, resource.MustParse(tc.storageSize), claim.Spec.Resources.Requests[corev1.ResourceStorage])
			retention := appsv1.PersistentVolumeClaimRetentionPolicyType(tc.retention)
			assert.Equal(t, &appsv1.StatefulSetPersistentVolumeClaimRetentionPolicy{WhenDeleted: retention, WhenScaled: retention},
				db.Spec.PersistentVolumeClaimRetentionPolicy)
			backups := testkit.DecodeAs[corev1.PersistentVolumeClaim](t, r.Object(t, testkit.PersistentVolumeClaim, "database-backups").Inputs)
			assert.Equal(t, ptr(tc.storageClass), backups.Spec.StorageClassName)

			// Protection: the database's data and the namespace holding it.
			for _, res := range r.Resources {
				inDatabase := strings.HasPrefix(res.Name, "database") || res.Type == testkit.Namespace
				if inDatabase && res.Type != "pulumi:pulumi:Stack" {
					assert.Equalf(t, tc.protect, res.Protect, "protect of %s %s", res.Type, res.Name)
				}
				if strings.HasPrefix(res.Name, "frontend") || strings.HasPrefix(res.Name, "backend") {
					assert.Falsef(t, res.Protect, "%s must not be protected", res.Name)
				}
			}

			assert.Equal(t, tc.services, r.Names(testkit.Service))
			assert.Equal(t, corev1.ServiceType(tc.frontendType), testkit.TypedService(t, r, "frontend-service").Spec.Type)

			// Demo data only in dev: the migrate Job's verify step gets the seed file only there.
			migrations := testkit.TypedConfigMap(t, r, "database-migrations").Data
			_, hasSeed := migrations["seed-dev.sql"]
			assert.Equal(t, tc.seedScript, hasSeed, "demo data only in dev")
			verify := testkit.TypedContainer(t, testkit.TypedPod(t, r.Object(t, testkit.Job, "database-migrate")).Spec, "verify")
			assert.Equal(t, tc.seedScript, slices.ContainsFunc(verify.Env, func(e corev1.EnvVar) bool { return e.Name == "SEED_SQL" }))

			for _, w := range r.Workloads() {
				if w.Type == testkit.CronJob || w.Type == testkit.Job {
					continue
				}
				spread := testkit.TypedPod(t, w).Spec.TopologySpreadConstraints
				assert.Equalf(t, tc.spreadsAcrossNode, spread != nil, "topology spread of %s", w.K8sName())
			}
		})
	}
}

// The seed's node ports and the preview ports 30180/30181 exist in dev only.
func TestDevNodePorts(t *testing.T) {
	r := testkit.MustRun(t, "dev", nil)
	want := map[string]int{
		"frontend-nodeport": 30080, "frontend-blue-preview": 30180, "frontend-green-preview": 30181,
		"backend-nodeport": 30081, "database-nodeport": 30432,
	}
	for name, port := range want {
		svc := testkit.TypedService(t, r, name)
		assert.Equal(t, corev1.ServiceTypeNodePort, svc.Spec.Type, name)
		assert.Equal(t, int32(port), svc.Spec.Ports[0].NodePort, name)
	}
	prod := testkit.MustRun(t, "prod", nil)
	for _, name := range []string{"frontend-blue-preview", "frontend-green-preview"} {
		assert.Equal(t, corev1.ServiceTypeClusterIP, testkit.TypedService(t, prod, name).Spec.Type)
	}
}

// Config reaches the objects: postgresql.conf, the backup schedule and retention, the
// headless Service's properties.
func TestDatabaseSettingsReachTheCluster(t *testing.T) {
	r := testkit.MustRun(t, "prod", map[string]string{"databaseMaxConnections": "250", "backupSchedule": "30 3 * * 1", "backupKeep": "14"})
	conf := testkit.TypedConfigMap(t, r, "database-config").Data["postgresql.conf"]
	assert.Contains(t, conf, "max_connections = 250")
	assert.Contains(t, conf, "shared_buffers = '256MB'")

	cron := r.Object(t, testkit.CronJob, "database-backup")
	typedCron := testkit.DecodeAs[batchv1.CronJob](t, cron.Inputs)
	assert.Equal(t, "30 3 * * 1", typedCron.Spec.Schedule)
	assert.Equal(t, batchv1.ForbidConcurrent, typedCron.Spec.ConcurrencyPolicy)
	c := testkit.TypedContainers(typedCron.Spec.JobTemplate.Spec.Template.Spec)
	require.Len(t, c, 1)
	assert.Equal(t, []string{"sh", "/scripts/backup.sh"}, c[0].Command)
	envs := testkit.EnvOf(c[0])
	assert.Equal(t, "14", envs["BACKUP_KEEP"])
	assert.Equal(t, "database-service", envs["PGHOST"])
	assert.Equal(t, database.BackupDir, envs["BACKUP_DIR"])
	assert.Equal(t, assets.BackupScript(), testkit.TypedConfigMap(t, r, "database-config").Data["backup.sh"])

	headless := testkit.TypedService(t, r, "database-service")
	assert.Equal(t, "None", headless.Spec.ClusterIP)
	assert.True(t, headless.Spec.PublishNotReadyAddresses)
	assert.Equal(t, corev1.ServiceTypeClusterIP, testkit.TypedService(t, r, "database-readonly").Spec.Type)

	database := testkit.TypedPod(t, r.Object(t, testkit.StatefulSet, "database"))
	pod, annotations := database.Spec, database.Annotations
	assert.Equal(t, "true", annotations["prometheus.io/scrape"])
	assert.Equal(t, "9187", annotations["prometheus.io/port"])
	pg := testkit.TypedContainer(t, pod, "postgres")
	assert.Equal(t, "/var/lib/postgresql/data/pgdata", testkit.EnvOf(pg)["PGDATA"])
	exporter := testkit.TypedContainer(t, pod, "postgres-exporter")
	assert.Equal(t, "/etc/database-secrets/monitor-password", testkit.EnvOf(exporter)["DATA_SOURCE_PASS_FILE"])
	assert.Equal(t, "shop_monitor", testkit.EnvOf(exporter)["DATA_SOURCE_USER"])
	assert.NotContains(t, testkit.EnvOf(exporter), "DATA_SOURCE_PASS", "exporter credentials come from a file")
}

// The optional Ingress publishes frontend-service under the configured host, with TLS when
// a Secret is named; it is off by default.
func TestIngressFromConfig(t *testing.T) {
	assert.Empty(t, testkit.MustRun(t, "prod", nil).OfType(testkit.Ingress))
	r := testkit.MustRun(t, "prod", map[string]string{
		"ingressEnabled": "true", "ingressHost": "shop.example.com", "ingressClass": "public", "ingressTlsSecret": "shop-tls",
		"trustedProxies": "10.244.0.0/16", // the ingress controller pods
	})
	ing := testkit.DecodeAs[networkingv1.Ingress](t, r.Object(t, testkit.Ingress, "frontend").Inputs)
	assert.Equal(t, ptr("public"), ing.Spec.IngressClassName)
	require.Len(t, ing.Spec.Rules, 1)
	assert.Equal(t, "shop.example.com", ing.Spec.Rules[0].Host)
	backend := ing.Spec.Rules[0].HTTP.Paths[0].Backend.Service
	assert.Equal(t, "frontend-service", backend.Name)
	assert.Equal(t, int32(80), backend.Port.Number)
	assert.Equal(t, []networkingv1.IngressTLS{{Hosts: []string{"shop.example.com"}, SecretName: "shop-tls"}}, ing.Spec.TLS)
	assert.NotContains(t, ing.Labels, "app.kubernetes.io/version", "a release must not touch the Ingress")
}

// The log collector is a native sidecar in every frontend pod: an init container with
// restartPolicy Always and a startup probe, so the kubelet starts it (and waits until it is
// up) before nginx, and stops it after nginx has drained; nginx's access log never goes to a
// closed port.
func TestLogCollectorIsANativeSidecar(t *testing.T) {
	for _, stack := range []string{"dev", "prod"} {
		r := testkit.MustRun(t, stack, nil)
		for _, color := range []string{"blue", "green"} {
			t.Run(stack+"/"+color, func(t *testing.T) {
				pod := testkit.TypedPod(t, r.Object(t, testkit.Deployment, "frontend-"+color)).Spec
				require.Len(t, pod.InitContainers, 1)
				collector := pod.InitContainers[0]
				assert.Equal(t, "log-collector", collector.Name)
				assert.Equal(t, ptr(corev1.ContainerRestartPolicyAlways), collector.RestartPolicy)
				require.NotNil(t, collector.StartupProbe, "nginx starts once the collector's startup probe passed")
				assert.Equal(t, "/api/v1/health", collector.StartupProbe.HTTPGet.Path)
				var names []string
				for _, c := range pod.Containers {
					names = append(names, c.Name)
				}
				assert.Equal(t, []string{"nginx", "metrics-exporter"}, names)
			})
		}
	}
}
