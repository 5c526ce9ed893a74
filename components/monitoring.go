package components

import (
	"encoding/json"
	"fmt"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes"
	"github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/apiextensions"
	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"ecommerce-platform/components/assets"
	"ecommerce-platform/components/config"
	"ecommerce-platform/components/kube"
)

// monitoringAPIVersion is the Prometheus Operator's API group and version.
const monitoringAPIVersion = "monitoring.coreos.com/v1"

// ScrapeTarget is one exporter's pods: a PodMonitor scrapes their "metrics" port.
type ScrapeTarget struct {
	Name     string            // the PodMonitor's name
	Selector map[string]string // the exporter's pods
}

// MonitoringArgs configure the Prometheus Operator objects of a stack.
type MonitoringArgs struct {
	Namespace pulumi.StringInput
	Labels    pulumi.StringMap // the standard labels of the monitoring objects
	Settings  config.Monitoring
	Targets   []ScrapeTarget
	Alerts    assets.AlertSettings
}

// Monitoring holds a stack's PodMonitors (one per exporter), its PrometheusRule (the alerts)
// and its Grafana dashboard, for clusters that run the Prometheus Operator (kube-prometheus-stack). The
// objects are built from the operator's own API types, so a field the operator does not
// know fails to compile rather than to apply.
type Monitoring struct {
	pulumi.ResourceState
}

// NewMonitoring registers the PodMonitors and the PrometheusRule, labelled with the release
// the operator's Prometheus selects them by.
func NewMonitoring(ctx *pulumi.Context, name string, args *MonitoringArgs, opts ...pulumi.ResourceOption) (*Monitoring, error) {
	m := &Monitoring{}
	if err := ctx.RegisterComponentResourceV2("ecommerce:index:Monitoring", name, nil, m, opts...); err != nil {
		return nil, err
	}
	parent := pulumi.Parent(m)
	labels := pulumi.StringMap{"release": pulumi.String(args.Settings.Release)}
	for k, v := range args.Labels {
		labels[k] = v
	}
	for _, target := range args.Targets {
		if err := newOperatorObject(ctx, name+"-"+target.Name, "PodMonitor", target.Name, args.Namespace, labels, podMonitorSpec(target), parent); err != nil {
			return nil, err
		}
	}
	rules, err := alertRules(args.Alerts)
	if err != nil {
		return nil, err
	}
	if err := newOperatorObject(ctx, name+"-rules", "PrometheusRule", "ecommerce-alerts", args.Namespace, labels, rules, parent); err != nil {
		return nil, err
	}
	if err := newDashboardConfigMap(ctx, name+"-dashboard", args.Namespace, labels, args.Alerts.Namespace, parent); err != nil {
		return nil, err
	}
	return m, ctx.RegisterResourceOutputs(m, pulumi.Map{})
}

// newDashboardConfigMap holds the stack's Grafana dashboard, labelled grafana_dashboard=1 so
// kube-prometheus-stack's Grafana sidecar loads it.
func newDashboardConfigMap(ctx *pulumi.Context, resource string, ns pulumi.StringInput, labels pulumi.StringMap, scope string, opts ...pulumi.ResourceOption) error {
	board, err := DashboardJSON(scope)
	if err != nil {
		return err
	}
	dashboardLabels := pulumi.StringMap{"grafana_dashboard": pulumi.String("1")}
	for k, v := range labels {
		dashboardLabels[k] = v
	}
	if _, err := corev1.NewConfigMap(ctx, resource, &corev1.ConfigMapArgs{
		Metadata: kube.Meta("ecommerce-dashboard", ns, dashboardLabels),
		Data:     pulumi.StringMap{"ecommerce-platform.json": pulumi.String(board)},
	}, opts...); err != nil {
		return fmt.Errorf("dashboard config map: %w", err)
	}
	return nil
}

// podMonitorSpec scrapes the target's pods on their "metrics" port every 30 s.
func podMonitorSpec(target ScrapeTarget) monitoringv1.PodMonitorSpec {
	port := "metrics"
	return monitoringv1.PodMonitorSpec{
		Selector:            metav1.LabelSelector{MatchLabels: target.Selector},
		PodMetricsEndpoints: []monitoringv1.PodMetricsEndpoint{{Port: &port, Path: "/metrics", Interval: "30s"}},
	}
}

// alertRules renders alerts.yaml.tmpl and decodes it into the operator's rule types.
func alertRules(s assets.AlertSettings) (monitoringv1.PrometheusRuleSpec, error) {
	text, err := assets.RenderAlerts(s)
	if err != nil {
		return monitoringv1.PrometheusRuleSpec{}, err
	}
	var groups []monitoringv1.RuleGroup
	if err := yaml.UnmarshalStrict([]byte(text), &groups); err != nil {
		return monitoringv1.PrometheusRuleSpec{}, fmt.Errorf("alerts.yaml.tmpl: %w", err)
	}
	return monitoringv1.PrometheusRuleSpec{Groups: groups}, nil
}

// newOperatorObject registers one of the operator's custom resources from its typed spec.
func newOperatorObject(ctx *pulumi.Context, resource, kind, name string, ns pulumi.StringInput, labels pulumi.StringMap, spec any, opts ...pulumi.ResourceOption) error {
	raw, err := json.Marshal(spec)
	if err != nil {
		return fmt.Errorf("%s %s: %w", kind, name, err)
	}
	var fields map[string]any
	if err := json.Unmarshal(raw, &fields); err != nil {
		return fmt.Errorf("%s %s: %w", kind, name, err)
	}
	if _, err := apiextensions.NewCustomResource(ctx, resource, &apiextensions.CustomResourceArgs{
		ApiVersion:  pulumi.String(monitoringAPIVersion),
		Kind:        pulumi.String(kind),
		Metadata:    kube.Meta(name, ns, labels),
		OtherFields: kubernetes.UntypedArgs{"spec": fields},
	}, opts...); err != nil {
		return fmt.Errorf("%s %s: %w", kind, name, err)
	}
	return nil
}
