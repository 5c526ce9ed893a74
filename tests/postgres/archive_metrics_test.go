package postgres

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"ecommerce-platform/components/assets"
	"ecommerce-platform/components/database"
	"ecommerce-platform/tests/testkit"
	"ecommerce-platform/tests/testkit/pgtest"
)

// TestArchiveMetricsFile: archive-metrics.sh as the archiver's loops run it writes the newest
// verified backup's completion time, the counts, the last off-site copy's time (only where
// copies are made) and its own time, in Prometheus' text format.
func TestArchiveMetricsFile(t *testing.T) {
	_, archiver := archivedPrimary(t, nil)
	backups := archiver.Backups(t)
	require.Len(t, backups, 1)
	made, err := time.Parse("20060102T150405Z", backups[0])
	require.NoError(t, err)
	require.NoError(t, os.Mkdir(filepath.Join(archiver.Dir, "base", "20990101T000000Z.failed"), 0o755))

	status := t.TempDir()
	synced := time.Date(2026, 12, 4, 10, 30, 0, 0, time.UTC)
	require.NoError(t, os.WriteFile(filepath.Join(status, "synced"), nil, 0o644))
	require.NoError(t, os.Chtimes(filepath.Join(status, "synced"), synced, synced))

	for _, tc := range []struct {
		offsite string
		want    map[string]float64
	}{
		{"on", map[string]float64{"archive_offsite_last_success_timestamp_seconds": float64(synced.Unix())}},
		{"", map[string]float64{}},
	} {
		before := time.Now().Unix()
		archiver.MustRunScript(t, "archive-metrics.sh", "STATUS_DIR="+status, "OFFSITE_COPIES="+tc.offsite)
		text, err := os.ReadFile(filepath.Join(status, "metrics.prom"))
		require.NoError(t, err)
		samples := testkit.Samples(t, string(text))
		if tc.offsite == "on" {
			// Every archive_* metric the alerts and the dashboard use is one the script writes.
			for _, name := range testkit.MonitoredMetrics(t, testkit.OperatorRun(t, "prod", nil), "archive_") {
				assert.Contains(t, samples, name, "an alert or the dashboard uses %s", name)
			}
		}
		written := samples["archive_metrics_written_timestamp_seconds"]
		assert.GreaterOrEqual(t, written, float64(before))
		delete(samples, "archive_metrics_written_timestamp_seconds")
		want := map[string]float64{
			"archive_base_backup_last_verified_timestamp_seconds": float64(made.Unix()),
			"archive_base_backups_verified":                       1,
			"archive_base_backups_failed":                         1,
		}
		for k, v := range tc.want {
			want[k] = v
		}
		assert.Equal(t, want, samples, "off-site copies %q:\n%s", tc.offsite, text)
		leftovers, _ := filepath.Glob(filepath.Join(status, "metrics.prom.*"))
		assert.Empty(t, leftovers, "no temporary file is left behind")
	}
}

// archiverLag runs the exporter's pg_archiver query (exporter-queries.yaml, as deployed) on
// the primary: streaming, lag_bytes, lag_seconds (NaN for NULL), and how many rows.
func archiverLag(t *testing.T, conn *pgx.Conn) (rows int, streaming, lagBytes, lagSeconds float64) {
	t.Helper()
	var queries map[string]struct {
		Query string `yaml:"query"`
	}
	require.NoError(t, yaml.Unmarshal([]byte(assets.File("exporter-queries.yaml")), &queries))
	require.Contains(t, queries, "pg_archiver")
	result, err := conn.Query(context.Background(), queries["pg_archiver"].Query)
	require.NoError(t, err)
	defer result.Close()
	for result.Next() {
		var slot string
		var seconds *float64
		require.NoError(t, result.Scan(&slot, &streaming, &lagBytes, &seconds))
		assert.Equal(t, database.ArchiverSlot, slot)
		lagSeconds = math.NaN()
		if seconds != nil {
			lagSeconds = *seconds
		}
		rows++
	}
	require.NoError(t, result.Err())
	return rows, streaming, lagBytes, lagSeconds
}

// TestArchiveLagQuery: the exporter's query reports the archiver streaming and caught up,
// then, once it is away, not streaming, the WAL written since as lag in bytes, and no lag
// time (PostgreSQL measures it only while the archiver reports).
func TestArchiveLagQuery(t *testing.T) {
	primary, archiver := archivedPrimary(t, nil)
	admin := primary.Connect(t, "postgres")
	archiver.WaitCaughtUp(t)
	rows, streaming, lagBytes, lagSeconds := archiverLag(t, admin)
	require.Equal(t, 1, rows)
	assert.Equal(t, 1.0, streaming)
	assert.Less(t, lagBytes, float64(64<<10), "caught up: at most what was written since")
	assert.GreaterOrEqual(t, lagSeconds, 0.0)
	assert.Less(t, lagSeconds, 5.0)

	archiver.Stop(t)
	primary.Exec(t, pgtest.Database, "CREATE TABLE public.lag_filler AS SELECT g, repeat('x', 200) AS pad FROM generate_series(1, 20000) g")
	rows, streaming, lagBytes, lagSeconds = archiverLag(t, admin)
	require.Equal(t, 1, rows, "the slot stays while the archiver is away")
	assert.Equal(t, 0.0, streaming)
	assert.Greater(t, lagBytes, float64(4<<20), "the WAL of 20000 rows of 200 bytes is behind")
	assert.True(t, math.IsNaN(lagSeconds), "no lag time while away: %v", lagSeconds)
	assert.True(t, strings.Contains(assets.File("exporter-queries.yaml"), "'"+database.ArchiverSlot+"'"))
}
