package mocked

import (
	"encoding/json"
	"slices"
	"sort"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"ecommerce-platform/tests/testkit"
)

// scrapedPods are the pod templates that run an exporter, by workload.
var scrapedPods = []struct{ typ, name, port string }{
	{testkit.StatefulSet, "database", "9187"},
	{testkit.StatefulSet, "database-archiver", "9188"},
	{testkit.Deployment, "backend", "9902"},
	{testkit.Deployment, "frontend-blue", "9113"},
	{testkit.Deployment, "frontend-green", "9113"},
}

// Each monitoring mode: annotations only with `annotations`, PodMonitors and the
// PrometheusRule only with `prometheus-operator`, neither with `none`.
func TestMonitorModes(t *testing.T) {
	for _, tc := range []struct {
		mode                string
		annotated, operator bool
	}{
		{"annotations", true, false},
		{"prometheus-operator", false, true},
		{"none", false, false},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			r := testkit.MustRun(t, "prod", map[string]string{"monitoring": tc.mode})
			for _, p := range scrapedPods {
				annotations := testkit.TypedPod(t, r.Object(t, p.typ, p.name)).Annotations
				if tc.annotated {
					assert.Equal(t, "true", annotations["prometheus.io/scrape"], p.name)
					assert.Equal(t, p.port, annotations["prometheus.io/port"], p.name)
				} else {
					assert.NotContains(t, annotations, "prometheus.io/scrape", p.name)
				}
			}
			if !tc.operator {
				assert.Empty(t, r.OfType(testkit.PodMonitor))
				assert.Empty(t, r.OfType(testkit.PrometheusRule))
			}
		})
	}
}

// With the operator: one PodMonitor per exporter, each selecting exactly its exporter's
// pods (the recorded pod templates) on the "metrics" port, and one PrometheusRule, all with
// the release label the operator's Prometheus selects by.
func TestMonitorPodMonitorsSelectTheExporters(t *testing.T) {
	r := testkit.OperatorRun(t, "prod", map[string]string{"monitoringRelease": "prom"})
	// prod's replicas are Patroni members of database: one PodMonitor covers every member.
	assert.Equal(t, []string{"backend", "database", "database-archiver", "frontend"}, r.Names(testkit.PodMonitor))
	want := map[string][]string{
		"backend": {"backend"}, "database": {"database"}, "database-archiver": {"database-archiver"},
		"frontend": {"frontend-blue", "frontend-green"},
	}
	for _, rec := range r.OfType(testkit.PodMonitor) {
		monitor := testkit.DecodeAs[monitoringv1.PodMonitor](t, rec.Inputs)
		assert.Equal(t, "prom", monitor.Labels["release"])
		require.Len(t, monitor.Spec.PodMetricsEndpoints, 1)
		assert.Equal(t, "metrics", *monitor.Spec.PodMetricsEndpoints[0].Port)
		var selected []string
		for _, w := range r.Workloads() {
			pod := testkit.TypedPod(t, w)
			if !testkit.Selects(monitor.Spec.Selector.MatchLabels, pod.Labels) {
				continue
			}
			selected = append(selected, w.K8sName())
			ports := map[string]int32{}
			for _, c := range pod.Spec.Containers {
				for _, p := range c.Ports {
					ports[p.Name] = p.ContainerPort
				}
			}
			assert.Contains(t, ports, "metrics", "%s selects %s, which has no metrics port", monitor.Name, w.K8sName())
		}
		sort.Strings(selected)
		assert.Equal(t, want[monitor.Name], selected, monitor.Name)
	}
	rule := testkit.DecodeAs[monitoringv1.PrometheusRule](t, r.Object(t, testkit.PrometheusRule, "ecommerce-alerts").Inputs)
	assert.Equal(t, "prom", rule.Labels["release"])
}

// The alerts per stack: exactly the set each stack's parts call for, scoped to its
// namespace, with thresholds from its config.
func TestAlertSetPerStack(t *testing.T) {
	base := []string{"ApiCircuitBreakerOpen", "ApiErrorRatio", "ApiPendingOverflow",
		"DatabaseCronJobFailed", "DatabaseConnectionsNearLimit", "DatabaseDown", "MetricsTargetDown", "NginxDown", "PodRestarting"}
	archive := []string{"ArchiveLagging", "ArchiverMetricsStale", "ArchiverNotStreaming", "BaseBackupTooOld"}
	replicas := []string{"DatabaseReplicaLagging", "DatabaseReplicaNotStreaming"}
	for _, tc := range []struct {
		stack     string
		overrides map[string]string
		want      []string
	}{
		// prod: replicas, the archive, off-site copies, the autoscaler.
		{"prod", nil, slices.Concat(base, archive, replicas, []string{"DatabaseNoLeader", "DatabaseFailover", "OffsiteCopyStale", "BackendAutoscalerAtMaximum"})},
		{"prod", map[string]string{"databaseFailover": "false"}, slices.Concat(base, archive, replicas, []string{"OffsiteCopyStale", "BackendAutoscalerAtMaximum"})},
		// dev: the archive, no replica, no off-site copy, a fixed backend.
		{"dev", nil, slices.Concat(base, archive)},
		{"dev", map[string]string{"databaseArchive": "false"}, base},
	} {
		alerts := testkit.Alerts(testkit.AlertGroups(t, testkit.OperatorRun(t, tc.stack, tc.overrides)))
		var names []string
		for name, rule := range alerts {
			names = append(names, name)
			assert.NotEmpty(t, rule.Annotations["runbook"], name)
			assert.Contains(t, []string{"critical", "warning"}, rule.Labels["severity"], name)
		}
		sort.Strings(names)
		sort.Strings(tc.want)
		assert.Equal(t, tc.want, names, "%s %v", tc.stack, tc.overrides)
	}
	alerts := testkit.Alerts(testkit.AlertGroups(t, testkit.OperatorRun(t, "prod", map[string]string{
		"databaseReplicaMaxLagSeconds": "45", "alertConnectionsPercent": "90", "alertHpaMaxMinutes": "20",
	})))
	assert.Contains(t, alerts["DatabaseReplicaLagging"].Expr.StrVal, `pg_replication_lag_seconds{namespace="ecommerce-platform"} > 45`)
	assert.Contains(t, alerts["DatabaseConnectionsNearLimit"].Expr.StrVal, "> 90")
	assert.Equal(t, monitoringv1.Duration("20m"), *alerts["BackendAutoscalerAtMaximum"].For)
}

// Bad monitoring config fails naming the key, the value and what is allowed.
func TestMonitoringConfig(t *testing.T) {
	r := testkit.RunProgram(t, "dev", map[string]string{"monitoring": "prometheus", "monitoringRelease": "bad release", "alertConnectionsPercent": "0"})
	require.Error(t, r.Err)
	for _, want := range []string{
		`monitoring: "prometheus" is not allowed; use annotations, prometheus-operator or none`,
		`monitoringRelease: "bad release" is not allowed`,
		`alertConnectionsPercent: "0" is not allowed; use a whole number from 1 to 100`,
	} {
		assert.Contains(t, r.Err.Error(), want)
	}
	assert.Empty(t, r.Kubernetes())
}

// With the operator, the Grafana dashboard: a ConfigMap the kube-prometheus-stack sidecar
// loads (grafana_dashboard=1), Grafana's dashboard model with the panels in order, every
// query scoped to the stack's namespace.
func TestDashboardPanels(t *testing.T) {
	r := testkit.OperatorRun(t, "prod", nil)
	cm := testkit.TypedConfigMap(t, r, "ecommerce-dashboard")
	assert.Equal(t, "1", cm.Labels["grafana_dashboard"])
	var board struct {
		UID    string `json:"uid"`
		Title  string `json:"title"`
		Panels []struct {
			Type  string `json:"type"`
			Title string `json:"title"`
		} `json:"panels"`
	}
	require.NoError(t, json.Unmarshal([]byte(cm.Data["ecommerce-platform.json"]), &board))
	assert.Equal(t, "ecommerce-ecommerce-platform", board.UID)
	var titles []string
	for _, p := range board.Panels {
		titles = append(titles, p.Type+": "+p.Title)
	}
	assert.Equal(t, []string{
		"row: Traffic", "timeseries: Orders per second", "timeseries: Requests per second per color", "timeseries: Active connections per color",
		"row: API (Envoy)", "timeseries: API requests ending in 5xx", "timeseries: Pods with the circuit breaker open",
		"timeseries: API request latency p95 (PostgREST through Envoy)",
		"row: Database", "timeseries: Connections (share of max_connections)", "timeseries: Replica lag", "timeseries: Archive lag",
		"row: Backups", "timeseries: Age of the newest verified base backup", "timeseries: Age of the last off-site copy",
	}, titles)
	queries := testkit.DashboardQueries(t, r)
	require.Len(t, queries, 11)
	for _, q := range queries {
		assert.Contains(t, q, `namespace="ecommerce-platform"`, q)
	}
	for _, name := range testkit.MustRun(t, "prod", nil).Names(testkit.ConfigMap) {
		assert.NotEqual(t, "ecommerce-dashboard", name, "no dashboard without the operator")
	}
}

// The monitoring objects carry the platform's standard labels besides the release label.
func TestMonitoringObjectsLabelled(t *testing.T) {
	r := testkit.OperatorRun(t, "dev", nil)
	for _, typ := range []string{testkit.PodMonitor, testkit.PrometheusRule} {
		require.NotEmpty(t, r.OfType(typ), typ)
		for _, rec := range r.OfType(typ) {
			meta := testkit.DecodeAs[monitoringv1.PodMonitor](t, map[string]any{"metadata": rec.Inputs["metadata"]}).ObjectMeta
			assert.Equal(t, "monitoring", meta.Labels["app.kubernetes.io/component"], rec.K8sName())
			assert.Equal(t, "dev", meta.Labels["app.kubernetes.io/instance"], rec.K8sName())
			assert.Equal(t, "kube-prometheus-stack", meta.Labels["release"], rec.K8sName())
		}
	}
}
