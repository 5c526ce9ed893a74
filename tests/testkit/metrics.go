package testkit

import (
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// Samples parses Prometheus' text exposition format into sample -> value, the sample keyed as
// it is written (name and labels, e.g. `pg_archiver_streaming{slot_name="database_archiver"}`).
// Comment lines are skipped; a line that is not `sample value [timestamp]` fails the test.
func Samples(t testing.TB, text string) map[string]float64 {
	t.Helper()
	samples := map[string]float64{}
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		// Label values may hold spaces: the value follows the closing brace, if any.
		rest := line
		if i := strings.LastIndex(line, "}"); i >= 0 {
			rest = line[i+1:]
		}
		fields := strings.Fields(rest)
		require.NotEmpty(t, fields, "not a sample line: %q", line)
		name := strings.TrimSpace(strings.TrimSuffix(line, rest))
		if name == "" {
			name, fields = fields[0], fields[1:]
		}
		require.NotEmpty(t, fields, "no value: %q", line)
		value, err := strconv.ParseFloat(fields[0], 64)
		require.NoError(t, err, "sample line %q", line)
		samples[name] = value
	}
	return samples
}

// SampleNamed returns the value of the one sample of metric name whose labels include all of
// labels (e.g. `slot_name="database_archiver"`), failing when none or several match.
func SampleNamed(t testing.TB, samples map[string]float64, name string, labels ...string) float64 {
	t.Helper()
	var found []string
	for key := range samples {
		if key != name && !strings.HasPrefix(key, name+"{") {
			continue
		}
		all := true
		for _, l := range labels {
			all = all && strings.Contains(key, l)
		}
		if all {
			found = append(found, key)
		}
	}
	require.Len(t, found, 1, "samples of %s with %v: %v", name, labels, found)
	return samples[found[0]]
}
