package components

import (
	"bytes"
	"embed"
	"fmt"
	"io/fs"
	"sort"
	"text/template"
)

// assets holds every piece of configuration text the program deploys (SQL, nginx.conf,
// envoy.yaml, pgbouncer.ini, the dashboard). Keeping it in files rather than Go strings
// lets the engine tests run exactly what is deployed.
//
//go:embed assets
var assets embed.FS

// renderTemplate executes one embedded text/template. Unknown keys are errors so a typo
// in a template fails the tests instead of silently rendering "<no value>".
func renderTemplate(name string, data any) (string, error) {
	tmpl, err := template.New(name).Option("missingkey=error").ParseFS(assets, "assets/"+name)
	if err != nil {
		return "", fmt.Errorf("parse template %s: %w", name, err)
	}
	var out bytes.Buffer
	if err := tmpl.ExecuteTemplate(&out, name, data); err != nil {
		return "", fmt.Errorf("render template %s: %w", name, err)
	}
	return out.String(), nil
}

// assetFiles returns the embedded files of one asset folder by base name, for ConfigMaps
// that mount a whole folder (the SQL init scripts, the dashboard).
func assetFiles(dir string) (map[string]string, error) {
	entries, err := fs.ReadDir(assets, "assets/"+dir)
	if err != nil {
		return nil, fmt.Errorf("read assets/%s: %w", dir, err)
	}
	files := make(map[string]string, len(entries))
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		b, err := assets.ReadFile("assets/" + dir + "/" + e.Name())
		if err != nil {
			return nil, fmt.Errorf("read assets/%s/%s: %w", dir, e.Name(), err)
		}
		files[e.Name()] = string(b)
	}
	return files, nil
}

// sortedKeys gives map keys in a stable order, so rendered text and hashes are stable.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// mustAsset reads an embedded file that is known to exist (a missing one is a build bug
// that every test catches).
func mustAsset(name string) string {
	b, err := assets.ReadFile("assets/" + name)
	if err != nil {
		panic(fmt.Sprintf("embedded asset %s: %v", name, err))
	}
	return string(b)
}

// WaitForDatabaseScript is the backend init container's bounded wait for the database.
func WaitForDatabaseScript() string { return mustAsset("wait-for-database.sh") }
