// Package monitoring unit-tests the stack's alert rules with promtool (`promtool check rules`,
// `promtool test rules`), over exactly the PrometheusRule the program registers.
package monitoring

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"

	"ecommerce-platform/tests/testkit"
)

// ns is prod's namespace (Pulumi.prod.yaml): every series below lives there.
const ns = "ecommerce-platform"

// series is one promtool input series: labels in PromQL notation and expanding values.
type series struct {
	Series string `json:"series"`
	Values string `json:"values"`
}

// alertCase is one alert's unit test: the series that fire it, when it fires (and, for
// alerts with `for`, a moment before it may), its labels, and healthy series that keep it
// silent at the same moment.
type alertCase struct {
	alert  string
	fire   []series
	at     string // eval time at which it fires
	before string // eval time at which it is still pending or not yet true ("" = none)
	labels map[string]string
	calm   []series
}

func s(metric, labels, values string) series {
	return series{Series: fmt.Sprintf(`%s{namespace=%q,%s}`, metric, ns, labels), Values: values}
}

// alertCases: prod's thresholds (databaseReplicaMaxLagSeconds 30, base backups every 24 h,
// off-site copies every 60 s, alertConnectionsPercent 80, alertApiErrorPercent 5, alertRestarts 3,
// alertHpaMaxMinutes 15). promtool's clock starts at 0, so time() at 15m is 900.
var alertCases = []alertCase{
	{alert: "DatabaseDown", fire: []series{s("pg_up", `pod="database-0"`, "0x10")}, at: "2m", before: "0m",
		labels: map[string]string{"pod": "database-0"}, calm: []series{s("pg_up", `pod="database-0"`, "1x10")}},
	{alert: "DatabaseConnectionsNearLimit",
		fire: []series{s("pg_stat_database_numbackends", `pod="database-0",datname="ecommerce"`, "50x10"),
			s("pg_stat_database_numbackends", `pod="database-0",datname="postgres"`, "35x10"),
			s("pg_settings_max_connections", `pod="database-0"`, "100x10")},
		at: "6m", before: "4m", labels: map[string]string{"pod": "database-0"},
		calm: []series{s("pg_stat_database_numbackends", `pod="database-0",datname="ecommerce"`, "50x10"),
			s("pg_stat_database_numbackends", `pod="database-0",datname="postgres"`, "30x10"),
			s("pg_settings_max_connections", `pod="database-0"`, "100x10")}},
	// prod runs Patroni: a replica member's slot on the leader is named after the member.
	{alert: "DatabaseReplicaNotStreaming",
		fire: []series{s("pg_replication_slots_active", `pod="database-0",slot_name="database_2"`, "0x10")},
		at:   "6m", before: "4m", labels: map[string]string{"pod": "database-0", "slot_name": "database_2"},
		// The archiver's slot away is ArchiverNotStreaming's business, not this alert's.
		calm: []series{s("pg_replication_slots_active", `pod="database-0",slot_name="database_2"`, "1x10"),
			s("pg_replication_slots_active", `pod="database-0",slot_name="database_archiver"`, "0x10")}},
	{alert: "DatabaseReplicaLagging", fire: []series{s("pg_replication_lag_seconds", `pod="database-1"`, "45x10")},
		at: "3m", before: "1m", labels: map[string]string{"pod": "database-1"},
		calm: []series{s("pg_replication_lag_seconds", `pod="database-1"`, "30x10")}},
	// Every member that answers is a replica (the leader is gone, none promoted yet): firing
	// after 1m; while one member is primary, silent. A member whose exporter is down (its
	// series missing) counts as neither: DatabaseDown is that alert.
	{alert: "DatabaseNoLeader",
		fire: []series{s("pg_replication_is_replica", `pod="database-1"`, "1x10"), s("pg_replication_is_replica", `pod="database-2"`, "1x10")},
		at:   "2m", before: "0m", labels: map[string]string{},
		calm: []series{s("pg_replication_is_replica", `pod="database-0"`, "1x10"), s("pg_replication_is_replica", `pod="database-1"`, "0x10"),
			s("pg_replication_is_replica", `pod="database-2"`, "1x10")}},
	// database-1 was a replica and became the primary at 3m: the alert names it at once.
	{alert: "DatabaseFailover",
		fire: []series{s("pg_replication_is_replica", `pod="database-1"`, "1 1 1 0 0 0 0 0 0 0")},
		at:   "4m", labels: map[string]string{"pod": "database-1"},
		calm: []series{s("pg_replication_is_replica", `pod="database-1"`, "1x10"), s("pg_replication_is_replica", `pod="database-0"`, "0x10")}},
	{alert: "DatabaseCronJobFailed", fire: []series{s("kube_job_status_failed", `job_name="database-release-unpaid-29412345"`, "1x5")},
		at: "1m", labels: map[string]string{"job_name": "database-release-unpaid-29412345"},
		calm: []series{s("kube_job_status_failed", `job_name="database-backup-29412345"`, "0x5"),
			s("kube_job_status_failed", `job_name="frontend-promotion-check-blue"`, "1x5")}},
	{alert: "ArchiverNotStreaming", fire: []series{s("pg_archiver_streaming", `pod="database-0",slot_name="database_archiver"`, "0x10")},
		at: "6m", before: "4m", labels: map[string]string{"pod": "database-0", "slot_name": "database_archiver"},
		calm: []series{s("pg_archiver_streaming", `pod="database-0",slot_name="database_archiver"`, "1x10")}},
	{alert: "ArchiveLagging", fire: []series{s("pg_archiver_lag_seconds", `pod="database-0",slot_name="database_archiver"`, "31x10")},
		at: "3m", before: "1m", labels: map[string]string{"pod": "database-0", "slot_name": "database_archiver"},
		calm: []series{s("pg_archiver_lag_seconds", `pod="database-0",slot_name="database_archiver"`, "0.2x10")}},
	// 24 h + 1 h = 90000 s: a backup made at -89500 is 90100 s old at 10m (firing from 20m
	// on, after its 10m `for`); one made at 0 is 1200 s old at 20m.
	{alert: "BaseBackupTooOld", fire: []series{s("archive_base_backup_last_verified_timestamp_seconds", `pod="database-archiver-0"`, "-89500x30")},
		at: "21m", before: "15m", labels: map[string]string{"pod": "database-archiver-0"},
		calm: []series{s("archive_base_backup_last_verified_timestamp_seconds", `pod="database-archiver-0"`, "0x30")}},
	// Written last at 0: more than 300 s old from 6m, firing from 11m; one rewritten every
	// minute never is.
	{alert: "ArchiverMetricsStale", fire: []series{s("archive_metrics_written_timestamp_seconds", `pod="database-archiver-0"`, "0x20")},
		at: "12m", before: "9m", labels: map[string]string{"pod": "database-archiver-0"},
		calm: []series{s("archive_metrics_written_timestamp_seconds", `pod="database-archiver-0"`, "0+60x20")}},
	// Three intervals: 180 s. Last good copy at 0: stale from 4m, firing from 9m.
	{alert: "OffsiteCopyStale", fire: []series{s("archive_offsite_last_success_timestamp_seconds", `pod="database-archiver-0"`, "0x20")},
		at: "10m", before: "7m", labels: map[string]string{"pod": "database-archiver-0"},
		calm: []series{s("archive_offsite_last_success_timestamp_seconds", `pod="database-archiver-0"`, "0+60x20")}},
	{alert: "ApiCircuitBreakerOpen",
		fire: []series{s("envoy_cluster_circuit_breakers_default_rq_pending_open", `pod="backend-1",envoy_cluster_name="api"`, "1x10"),
			s("envoy_cluster_circuit_breakers_default_cx_open", `pod="backend-1",envoy_cluster_name="api"`, "0x10")},
		at: "3m", before: "1m", labels: map[string]string{"pod": "backend-1"},
		// The admin cluster's breaker is not the API's.
		calm: []series{s("envoy_cluster_circuit_breakers_default_rq_pending_open", `pod="backend-1",envoy_cluster_name="api"`, "0x10"),
			s("envoy_cluster_circuit_breakers_default_cx_open", `pod="backend-1",envoy_cluster_name="api_admin"`, "1x10")}},
	{alert: "ApiPendingOverflow", fire: []series{s("envoy_cluster_upstream_rq_pending_overflow", `pod="backend-1",envoy_cluster_name="api"`, "0+30x20")},
		at: "11m", before: "4m", labels: map[string]string{"pod": "backend-1"},
		calm: []series{s("envoy_cluster_upstream_rq_pending_overflow", `pod="backend-1",envoy_cluster_name="api"`, "7x20")}},
	// 5 % (alertApiErrorPercent): 6 of 100 requests a second in 5xx fires, 4 does not.
	{alert: "ApiErrorRatio",
		fire: []series{s("envoy_http_downstream_rq_xx", `pod="backend-1",envoy_http_conn_manager_prefix="ingress_http",envoy_response_code_class="5"`, "0+360x20"),
			s("envoy_http_downstream_rq_total", `pod="backend-1",envoy_http_conn_manager_prefix="ingress_http"`, "0+6000x20")},
		at: "11m", before: "4m", labels: map[string]string{},
		calm: []series{s("envoy_http_downstream_rq_xx", `pod="backend-1",envoy_http_conn_manager_prefix="ingress_http",envoy_response_code_class="5"`, "0+240x20"),
			s("envoy_http_downstream_rq_total", `pod="backend-1",envoy_http_conn_manager_prefix="ingress_http"`, "0+6000x20")}},
	{alert: "NginxDown", fire: []series{s("nginx_up", `pod="frontend-blue-5d9c-abcde"`, "0x10")},
		at: "3m", before: "1m", labels: map[string]string{"pod": "frontend-blue-5d9c-abcde"},
		calm: []series{s("nginx_up", `pod="frontend-blue-5d9c-abcde"`, "1x10")}},
	{alert: "MetricsTargetDown", fire: []series{s("up", `job="ecommerce-platform/database",pod="database-0"`, "0x10")},
		at: "6m", before: "4m", labels: map[string]string{"job": "ecommerce-platform/database", "pod": "database-0"},
		calm: []series{s("up", `job="ecommerce-platform/database",pod="database-0"`, "1x10")}},
	{alert: "PodRestarting", fire: []series{s("kube_pod_container_status_restarts_total", `pod="backend-1",container="postgrest"`, "0 0 1 2 3 4 5 5 5 5")},
		at: "6m", labels: map[string]string{"pod": "backend-1", "container": "postgrest"},
		calm: []series{s("kube_pod_container_status_restarts_total", `pod="backend-1",container="postgrest"`, "0 0 1 1 1 1 1 1 2 2")}},
	{alert: "BackendAutoscalerAtMaximum",
		fire: []series{s("kube_horizontalpodautoscaler_status_current_replicas", `horizontalpodautoscaler="backend"`, "10x20"),
			s("kube_horizontalpodautoscaler_spec_max_replicas", `horizontalpodautoscaler="backend"`, "10x20")},
		at: "16m", before: "14m", labels: map[string]string{"horizontalpodautoscaler": "backend"},
		calm: []series{s("kube_horizontalpodautoscaler_status_current_replicas", `horizontalpodautoscaler="backend"`, "9x20"),
			s("kube_horizontalpodautoscaler_spec_max_replicas", `horizontalpodautoscaler="backend"`, "10x20")}},
}

// promtool test file types (promtool's unit test format).
type (
	promtoolFile struct {
		RuleFiles          []string       `json:"rule_files"`
		EvaluationInterval string         `json:"evaluation_interval"`
		Tests              []promtoolTest `json:"tests"`
	}
	promtoolTest struct {
		Name          string          `json:"name"`
		Interval      string          `json:"interval"`
		InputSeries   []series        `json:"input_series"`
		AlertRuleTest []promtoolCheck `json:"alert_rule_test"`
	}
	promtoolCheck struct {
		EvalTime  string          `json:"eval_time"`
		AlertName string          `json:"alertname"`
		ExpAlerts []promtoolAlert `json:"exp_alerts"`
	}
	promtoolAlert struct {
		ExpLabels      map[string]string `json:"exp_labels"`
		ExpAnnotations map[string]string `json:"exp_annotations"`
	}
)

// writeRules writes the registered rule groups as a Prometheus rules file.
func writeRules(t *testing.T, dir string, groups []monitoringv1.RuleGroup) string {
	out, err := yaml.Marshal(map[string]any{"groups": groups})
	require.NoError(t, err)
	path := filepath.Join(dir, "rules.yaml")
	require.NoError(t, os.WriteFile(path, out, 0o644))
	return path
}

// TestAlertRulesCheck: promtool accepts the rules file of each stack as the program
// registers it.
func TestAlertRulesCheck(t *testing.T) {
	promtool := testkit.RequireTool(t, "promtool")
	for _, stack := range []string{"dev", "prod"} {
		rules := writeRules(t, t.TempDir(), testkit.AlertGroups(t, testkit.OperatorRun(t, stack, nil)))
		out, err := exec.Command(promtool, "check", "rules", rules).CombinedOutput()
		require.NoError(t, err, "%s:\n%s", stack, out)
		assert.Contains(t, string(out), "SUCCESS", stack)
	}
}

// TestAlertFiresAndStaysSilent: for every alert of prod, promtool shows it firing at the
// right time with the right labels, not yet before its `for` has passed, and silent over
// healthy series. Every alert the program registers has a case.
func TestAlertFiresAndStaysSilent(t *testing.T) {
	promtool := testkit.RequireTool(t, "promtool")
	groups := testkit.AlertGroups(t, testkit.OperatorRun(t, "prod", nil))
	alerts := testkit.Alerts(groups)
	var tested []string
	for _, c := range alertCases {
		tested = append(tested, c.alert)
	}
	var registered []string
	for name := range alerts {
		registered = append(registered, name)
	}
	sort.Strings(tested)
	sort.Strings(registered)
	require.Equal(t, registered, tested, "every alert has a firing and a silent case")

	dir := t.TempDir()
	writeRules(t, dir, groups)
	for _, c := range alertCases {
		t.Run(c.alert, func(t *testing.T) {
			rule := alerts[c.alert]
			labels := map[string]string{"namespace": ns, "severity": rule.Labels["severity"]}
			for k, v := range c.labels {
				labels[k] = v
			}
			fire := []promtoolCheck{{EvalTime: c.at, AlertName: c.alert, ExpAlerts: []promtoolAlert{{ExpLabels: labels, ExpAnnotations: rule.Annotations}}}}
			if c.before != "" {
				fire = append(fire, promtoolCheck{EvalTime: c.before, AlertName: c.alert, ExpAlerts: []promtoolAlert{}})
			}
			file := promtoolFile{RuleFiles: []string{"rules.yaml"}, EvaluationInterval: "1m", Tests: []promtoolTest{
				{Name: "fires", Interval: "1m", InputSeries: c.fire, AlertRuleTest: fire},
				{Name: "silent", Interval: "1m", InputSeries: c.calm,
					AlertRuleTest: []promtoolCheck{{EvalTime: c.at, AlertName: c.alert, ExpAlerts: []promtoolAlert{}}}},
			}}
			out, err := yaml.Marshal(file)
			require.NoError(t, err)
			path := filepath.Join(dir, strings.ToLower(c.alert)+"_test.yaml")
			require.NoError(t, os.WriteFile(path, out, 0o644))
			cmd := exec.Command(promtool, "test", "rules", filepath.Base(path))
			cmd.Dir = dir
			result, err := cmd.CombinedOutput()
			require.NoError(t, err, "promtool test rules %s:\n%s\n%s", c.alert, result, out)
			assert.Contains(t, string(result), "SUCCESS")
		})
	}
}
