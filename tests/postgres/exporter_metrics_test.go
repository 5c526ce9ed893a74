package postgres

import (
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"ecommerce-platform/tests/testkit"
	"ecommerce-platform/tests/testkit/pgtest"
)

// TestAlertMetricsExistInThePinnedExporter: every pg_* metric an alert or the dashboard uses
// appears in the
// real output of postgres_exporter v0.17.1 (the version databaseExporterImage pins, built
// by `make tools`), run with the recorded container's environment and the deployed queries
// file against PostgreSQL 15 with the archiver streaming, so a renamed metric fails here,
// not on a pager.
func TestAlertMetricsExistInThePinnedExporter(t *testing.T) {
	exporter := testkit.RequireTool(t, "postgres_exporter")
	primary, _ := archivedPrimary(t, nil)

	r := testkit.OperatorRun(t, "prod", nil)
	container := testkit.TypedContainer(t, testkit.TypedPod(t, r.Object(t, testkit.StatefulSet, "database")).Spec, "postgres-exporter")
	deployed := testkit.EnvOf(container)
	dir := pgtest.ServerDir(t) // the exporter runs as the servers' OS user
	queries := filepath.Join(dir, "queries.yaml")
	pgtest.WriteFile(t, queries, testkit.TypedConfigMap(t, r, "database-config").Data["exporter-queries.yaml"], 0o644)
	password := filepath.Join(dir, "password")
	// As deployed: the exporter's own role, with the password the credentials Job gave it.
	require.Contains(t, pgtest.RolePasswords, deployed["DATA_SOURCE_USER"], "the exporter logs in as a job role")
	pgtest.WriteFile(t, password, pgtest.RolePasswords[deployed["DATA_SOURCE_USER"]], 0o600)
	// The deployed URI names the pod's own port; here the server listens on another.
	uri := strings.Replace(deployed["DATA_SOURCE_URI"], ":5432/", fmt.Sprintf(":%d/", primary.Port), 1)
	require.NotEqual(t, deployed["DATA_SOURCE_URI"], uri, "the deployed URI names 127.0.0.1:5432")
	port := testkit.FreePort(t)
	pgtest.StartProcessEnv(t, "postgres_exporter", filepath.Join(dir, "exporter.log"), syscall.SIGTERM, []string{
		"DATA_SOURCE_URI=" + uri, "DATA_SOURCE_USER=" + deployed["DATA_SOURCE_USER"], "DATA_SOURCE_PASS_FILE=" + password,
		"PG_EXPORTER_EXTEND_QUERY_PATH=" + queries,
	}, exporter, fmt.Sprintf("--web.listen-address=127.0.0.1:%d", port))

	var text string
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", port)); err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			text = string(body)
			if strings.Contains(text, "pg_up 1") {
				break
			}
		}
		require.False(t, time.Now().After(deadline), "the exporter did not reach the database:\n%s", text)
	}
	samples := testkit.Samples(t, text)
	names := map[string]bool{}
	for key := range samples {
		names[strings.SplitN(key, "{", 2)[0]] = true
	}
	used := testkit.MonitoredMetrics(t, r, "pg_")
	require.NotEmpty(t, used)
	for _, name := range used {
		assert.True(t, names[name], "an alert or the dashboard uses %s, which postgres_exporter v0.17.1 does not export", name)
	}
	t.Logf("pg_* metrics of the alerts and the dashboard, each checked against v0.17.1: %s", strings.Join(used, ", "))
	assert.Equal(t, 1.0, testkit.SampleNamed(t, samples, "pg_archiver_streaming"), "the deployed query runs in the pinned exporter")
	assert.Equal(t, float64(pgtest.NewestVersion(t)), testkit.SampleNamed(t, samples, "shop_schema_version"), "the database reports its schema version")
	assert.Equal(t, 0.0, testkit.SampleNamed(t, samples, "shop_schema_dirty"))
}
