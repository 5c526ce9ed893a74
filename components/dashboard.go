package components

import (
	"encoding/json"
	"fmt"

	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"
	"sigs.k8s.io/yaml"

	"ecommerce-platform/components/assets"
)

// dashboardSpec is dashboard.yaml.tmpl: rows of one-query panels.
type dashboardSpec struct {
	Title string `json:"title"`
	UID   string `json:"uid"`
	Rows  []struct {
		Title  string `json:"title"`
		Panels []struct {
			Title  string `json:"title"`
			Unit   string `json:"unit"`
			Expr   string `json:"expr"`
			Legend string `json:"legend"`
		} `json:"panels"`
	} `json:"rows"`
}

// DashboardJSON builds the stack's Grafana dashboard with Grafana's typed builder from
// dashboard.yaml.tmpl, as the JSON Grafana's dashboard sidecar loads.
func DashboardJSON(namespace string) (string, error) {
	text, err := assets.RenderDashboard(namespace)
	if err != nil {
		return "", err
	}
	var spec dashboardSpec
	if err := yaml.UnmarshalStrict([]byte(text), &spec); err != nil {
		return "", fmt.Errorf("dashboard.yaml.tmpl: %w", err)
	}
	builder := dashboard.NewDashboardBuilder(spec.Title).Uid(spec.UID).Tags([]string{"ecommerce-platform"}).
		Refresh("1m").Time("now-6h", "now")
	for _, row := range spec.Rows {
		builder = builder.WithRow(dashboard.NewRowBuilder(row.Title))
		for _, p := range row.Panels {
			builder = builder.WithPanel(timeseries.NewPanelBuilder().Title(p.Title).Unit(p.Unit).Span(8).Height(8).
				WithTarget(prometheus.NewDataqueryBuilder().Expr(p.Expr).LegendFormat(p.Legend)))
		}
	}
	built, err := builder.Build()
	if err != nil {
		return "", fmt.Errorf("dashboard: %w", err)
	}
	out, err := json.MarshalIndent(built, "", "  ")
	if err != nil {
		return "", fmt.Errorf("dashboard: %w", err)
	}
	return string(out), nil
}
