package tests

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"ecommerce-platform/components"
	"ecommerce-platform/components/assets"
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
		seedScript        bool
		spreadsAcrossNode bool
	}{
		{
			stack: "dev", namespace: "ecommerce-dev", blue: 1, green: 1, backendReplicas: 1,
			storageClass: "standard", storageSize: "1Gi", retention: "Delete", protect: false,
			frontendType: "ClusterIP", seedScript: true,
			services: []string{
				"backend-nodeport", "backend-service", "database-nodeport", "database-readonly", "database-service",
				"frontend-blue-preview", "frontend-green-preview", "frontend-internal", "frontend-nodeport", "frontend-service",
			},
		},
		{
			stack: "prod", namespace: "ecommerce-platform", blue: 3, green: 3, backendReplicas: nil, hpa: []int{2, 10, 70},
			storageClass: "fast-ssd", storageSize: "10Gi", retention: "Retain", protect: true,
			frontendType: "LoadBalancer", spreadsAcrossNode: true,
			services: []string{
				"backend-service", "database-readonly", "database-replica", "database-service",
				"frontend-blue-preview", "frontend-green-preview", "frontend-internal", "frontend-service",
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.stack, func(t *testing.T) {
			r := mustRun(t, tc.stack, nil)

			ns := r.object(t, tNamespace, tc.namespace)
			assert.Equal(t, "restricted", stringMap(dig(ns.Inputs, "metadata", "labels"))["pod-security.kubernetes.io/enforce"])
			for _, obj := range r.kubernetes() {
				if obj.Type != tNamespace {
					assert.Equalf(t, tc.namespace, dig(obj.Inputs, "metadata", "namespace"), "%s %s", obj.Type, obj.K8sName())
				}
			}

			assert.Equal(t, tc.blue, number(dig(r.object(t, tDeployment, "frontend-blue").Inputs, "spec", "replicas")))
			assert.Equal(t, tc.green, number(dig(r.object(t, tDeployment, "frontend-green").Inputs, "spec", "replicas")))
			backend := r.object(t, tDeployment, "backend")
			if tc.backendReplicas == nil {
				assert.Nil(t, dig(backend.Inputs, "spec", "replicas"), "the HPA owns the count: the Deployment must not set it")
				hpa := r.object(t, tHPA, "backend")
				assert.Equal(t, tc.hpa[0], number(dig(hpa.Inputs, "spec", "minReplicas")))
				assert.Equal(t, tc.hpa[1], number(dig(hpa.Inputs, "spec", "maxReplicas")))
				assert.Equal(t, tc.hpa[2], number(dig(hpa.Inputs, "spec", "metrics", 0, "resource", "target", "averageUtilization")))
				assert.Equal(t, "backend", dig(hpa.Inputs, "spec", "scaleTargetRef", "name"))
				assert.Equal(t, "Deployment", dig(hpa.Inputs, "spec", "scaleTargetRef", "kind"))
			} else {
				assert.Equal(t, tc.backendReplicas, number(dig(backend.Inputs, "spec", "replicas")))
				assert.Empty(t, r.ofType(tHPA))
			}

			db := r.object(t, tStatefulSet, "database")
			assert.Equal(t, 1, number(dig(db.Inputs, "spec", "replicas")))
			assert.Equal(t, "database-service", dig(db.Inputs, "spec", "serviceName"))
			claim := dig(db.Inputs, "spec", "volumeClaimTemplates", 0).(map[string]any)
			assert.Equal(t, tc.storageClass, dig(claim, "spec", "storageClassName"))
			assert.Equal(t, tc.storageSize, dig(claim, "spec", "resources", "requests", "storage"))
			assert.Equal(t, map[string]any{"whenDeleted": tc.retention, "whenScaled": tc.retention},
				dig(db.Inputs, "spec", "persistentVolumeClaimRetentionPolicy"))
			assert.Equal(t, tc.storageClass, dig(r.object(t, tPVC, "database-backups").Inputs, "spec", "storageClassName"))

			// Protection: the database's data and the namespace holding it.
			for _, res := range r.Resources {
				inDatabase := strings.HasPrefix(res.Name, "database") || res.Type == tNamespace
				if inDatabase && res.Type != "pulumi:pulumi:Stack" {
					assert.Equalf(t, tc.protect, res.Protect, "protect of %s %s", res.Type, res.Name)
				}
				if strings.HasPrefix(res.Name, "frontend") || strings.HasPrefix(res.Name, "backend") {
					assert.Falsef(t, res.Protect, "%s must not be protected", res.Name)
				}
			}

			assert.Equal(t, tc.services, r.names(tService))
			assert.Equal(t, tc.frontendType, dig(r.object(t, tService, "frontend-service").Inputs, "spec", "type"))

			initdb := stringMap(dig(r.object(t, tConfigMap, "database-initdb").Inputs, "data"))
			hasSeed := false
			for name := range initdb {
				hasSeed = hasSeed || strings.HasPrefix(name, assets.DevSeedPrefix)
			}
			assert.Equal(t, tc.seedScript, hasSeed, "demo data only in dev")

			for _, w := range r.workloads() {
				spread := dig(podTemplate(w), "spec", "topologySpreadConstraints")
				if w.Type == tCronJob || w.Type == tJob {
					continue
				}
				assert.Equalf(t, tc.spreadsAcrossNode, spread != nil, "topology spread of %s", w.K8sName())
			}
		})
	}
}

// The seed's node ports and the preview ports 30180/30181 exist in dev only.
func TestDevNodePorts(t *testing.T) {
	r := mustRun(t, "dev", nil)
	want := map[string]int{
		"frontend-nodeport": 30080, "frontend-blue-preview": 30180, "frontend-green-preview": 30181,
		"backend-nodeport": 30081, "database-nodeport": 30432,
	}
	for name, port := range want {
		svc := r.object(t, tService, name)
		assert.Equal(t, "NodePort", dig(svc.Inputs, "spec", "type"), name)
		assert.Equal(t, port, number(dig(svc.Inputs, "spec", "ports", 0, "nodePort")), name)
	}
	prod := mustRun(t, "prod", nil)
	for _, name := range []string{"frontend-blue-preview", "frontend-green-preview"} {
		assert.Equal(t, "ClusterIP", dig(prod.object(t, tService, name).Inputs, "spec", "type"))
	}
}

// Config reaches the objects: postgresql.conf, the backup schedule and retention, the
// headless Service's properties.
func TestDatabaseSettingsReachTheCluster(t *testing.T) {
	r := mustRun(t, "prod", map[string]string{"databaseMaxConnections": "250", "backupSchedule": "30 3 * * 1", "backupKeep": "14"})
	conf := stringMap(dig(r.object(t, tConfigMap, "database-config").Inputs, "data"))["postgresql.conf"]
	assert.Contains(t, conf, "max_connections = 250")
	assert.Contains(t, conf, "shared_buffers = '256MB'")

	cron := r.object(t, tCronJob, "database-backup")
	assert.Equal(t, "30 3 * * 1", dig(cron.Inputs, "spec", "schedule"))
	assert.Equal(t, "Forbid", dig(cron.Inputs, "spec", "concurrencyPolicy"))
	c := containersOf(podTemplate(cron))
	require.Len(t, c, 1)
	assert.Equal(t, []any{"sh", "/scripts/backup.sh"}, c[0].Spec["command"])
	envs := envOf(c[0])
	assert.Equal(t, "14", envs["BACKUP_KEEP"])
	assert.Equal(t, "database-service", envs["PGHOST"])
	assert.Equal(t, components.BackupDir, envs["BACKUP_DIR"])
	assert.Equal(t, assets.BackupScript(), stringMap(dig(r.object(t, tConfigMap, "database-config").Inputs, "data"))["backup.sh"])

	headless := r.object(t, tService, "database-service")
	assert.Equal(t, "None", dig(headless.Inputs, "spec", "clusterIP"))
	assert.Equal(t, true, dig(headless.Inputs, "spec", "publishNotReadyAddresses"))
	assert.Equal(t, "ClusterIP", dig(r.object(t, tService, "database-readonly").Inputs, "spec", "type"))

	pod := podTemplate(r.object(t, tStatefulSet, "database"))
	annotations := stringMap(dig(pod, "metadata", "annotations"))
	assert.Equal(t, "true", annotations["prometheus.io/scrape"])
	assert.Equal(t, "9187", annotations["prometheus.io/port"])
	pg := containerNamed(t, pod, "postgres")
	assert.Equal(t, "/var/lib/postgresql/data/pgdata", envOf(pg)["PGDATA"])
	exporter := containerNamed(t, pod, "postgres-exporter")
	assert.Equal(t, "/etc/database-secrets/password", envOf(exporter)["DATA_SOURCE_PASS_FILE"])
	assert.NotContains(t, envOf(exporter), "DATA_SOURCE_PASS", "exporter credentials come from a file")
}

// envOf maps a container's literal env values (valueFrom entries map to "<ref>").
func envOf(c container) map[string]string {
	out := map[string]string{}
	for _, e := range list(c.Spec["env"]) {
		m := e.(map[string]any)
		name := m["name"].(string)
		if v, ok := m["value"].(string); ok {
			out[name] = v
		} else {
			out[name] = "<ref>"
		}
	}
	return out
}

func containerNamed(t testing.TB, tmpl map[string]any, name string) container {
	t.Helper()
	for _, c := range containersOf(tmpl) {
		if c.Name() == name {
			return c
		}
	}
	require.Failf(t, "no such container", "%s", name)
	return container{}
}

// The optional Ingress publishes frontend-service under the configured host, with TLS when
// a Secret is named; it is off by default.
func TestIngressFromConfig(t *testing.T) {
	assert.Empty(t, mustRun(t, "prod", nil).ofType(tIngress))
	r := mustRun(t, "prod", map[string]string{
		"ingressEnabled": "true", "ingressHost": "shop.example.com", "ingressClass": "public", "ingressTlsSecret": "shop-tls",
	})
	ing := r.object(t, tIngress, "frontend")
	assert.Equal(t, "public", dig(ing.Inputs, "spec", "ingressClassName"))
	assert.Equal(t, "shop.example.com", dig(ing.Inputs, "spec", "rules", 0, "host"))
	assert.Equal(t, "frontend-service", dig(ing.Inputs, "spec", "rules", 0, "http", "paths", 0, "backend", "service", "name"))
	assert.Equal(t, 80, number(dig(ing.Inputs, "spec", "rules", 0, "http", "paths", 0, "backend", "service", "port", "number")))
	assert.Equal(t, []any{map[string]any{"hosts": []any{"shop.example.com"}, "secretName": "shop-tls"}}, dig(ing.Inputs, "spec", "tls"))
	assert.NotContains(t, stringMap(dig(ing.Inputs, "metadata", "labels")), "app.kubernetes.io/version", "a release must not touch the Ingress")
}
