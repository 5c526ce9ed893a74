package testkit

import (
	"encoding/json"
	"regexp"
	"sort"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"github.com/stretchr/testify/require"
)

// OperatorRun runs a stack's program with monitoring=prometheus-operator plus overrides.
func OperatorRun(t testing.TB, stack string, overrides map[string]string) Run {
	t.Helper()
	cfg := map[string]string{"monitoring": "prometheus-operator"}
	for k, v := range overrides {
		cfg[k] = v
	}
	return MustRun(t, stack, cfg)
}

// AlertGroups are the rule groups of the stack's PrometheusRule, as the program registered it.
func AlertGroups(t testing.TB, r Run) []monitoringv1.RuleGroup {
	t.Helper()
	rule := DecodeAs[monitoringv1.PrometheusRule](t, r.Object(t, PrometheusRule, "ecommerce-alerts").Inputs)
	require.NotEmpty(t, rule.Spec.Groups)
	return rule.Spec.Groups
}

// Alerts are the alerting rules of the groups by name.
func Alerts(groups []monitoringv1.RuleGroup) map[string]monitoringv1.Rule {
	alerts := map[string]monitoringv1.Rule{}
	for _, g := range groups {
		for _, rule := range g.Rules {
			if rule.Alert != "" {
				alerts[rule.Alert] = rule
			}
		}
	}
	return alerts
}

// DashboardQueries are the PromQL expressions of the stack's Grafana dashboard (the
// ConfigMap the program registers), in panel order.
func DashboardQueries(t testing.TB, r Run) []string {
	t.Helper()
	cm := TypedConfigMap(t, r, "ecommerce-dashboard")
	var board map[string]any
	require.NoError(t, json.Unmarshal([]byte(cm.Data["ecommerce-platform.json"]), &board))
	var exprs []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if e, ok := v["expr"].(string); ok {
				exprs = append(exprs, e)
			}
			for _, k := range sortedKeys(v) {
				walk(v[k])
			}
		case []any:
			for _, e := range v {
				walk(e)
			}
		}
	}
	walk(board["panels"])
	return exprs
}

// MonitoredMetrics are the metric names with one of prefixes that the stack's alerts and
// dashboard use (operator mode), sorted and without repeats.
func MonitoredMetrics(t testing.TB, r Run, prefixes ...string) []string {
	t.Helper()
	var exprs []string
	for _, rule := range Alerts(AlertGroups(t, r)) {
		exprs = append(exprs, rule.Expr.StrVal)
	}
	exprs = append(exprs, DashboardQueries(t, r)...)
	seen := map[string]bool{}
	for _, e := range exprs {
		for _, name := range metricName.FindAllString(e, -1) {
			for _, p := range prefixes {
				if strings.HasPrefix(name, p) {
					seen[name] = true
				}
			}
		}
	}
	return sortedKeys(seen)
}

// metricName matches identifiers in PromQL (metric, label and function names alike; callers
// keep those with a metric prefix such as pg_).
var metricName = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
