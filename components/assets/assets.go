// Package assets holds every piece of configuration text the program deploys (SQL,
// nginx.conf, envoy.yaml, pgbouncer.ini, postgresql.conf, pg_hba.conf, the scripts, the
// dashboard) as embedded files, with their renderers. Keeping the text in files rather than Go
// strings lets the engine and contract tests run exactly what is deployed; keeping it in a
// package of its own lets them (and the components) use it without the rest of the program.
package assets

import (
	"bytes"
	"embed"
	"fmt"
	"io/fs"
	"text/template"
)

//go:embed *.tmpl *.sh *.conf *.yaml *.sql migrations dashboard
var embedded embed.FS

// renderTemplate executes one embedded text/template. Unknown keys are errors so a typo
// in a template fails the tests instead of silently rendering "<no value>".
func renderTemplate(name string, data any) (string, error) {
	tmpl, err := template.New(name).Option("missingkey=error").ParseFS(embedded, name)
	if err != nil {
		return "", fmt.Errorf("parse template %s: %w", name, err)
	}
	var out bytes.Buffer
	if err := tmpl.ExecuteTemplate(&out, name, data); err != nil {
		return "", fmt.Errorf("render template %s: %w", name, err)
	}
	return out.String(), nil
}

// Files returns the embedded files of one asset folder by base name, for ConfigMaps that
// mount a whole folder (the SQL init scripts, the dashboard).
func Files(dir string) (map[string]string, error) {
	entries, err := fs.ReadDir(embedded, dir)
	if err != nil {
		return nil, fmt.Errorf("read assets/%s: %w", dir, err)
	}
	files := make(map[string]string, len(entries))
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		b, err := embedded.ReadFile(dir + "/" + e.Name())
		if err != nil {
			return nil, fmt.Errorf("read assets/%s/%s: %w", dir, e.Name(), err)
		}
		files[e.Name()] = string(b)
	}
	return files, nil
}

// File returns an embedded file that is known to exist (a missing one is a build bug that
// every test catches).
func File(name string) string {
	b, err := embedded.ReadFile(name)
	if err != nil {
		panic(fmt.Sprintf("embedded asset %s: %v", name, err))
	}
	return string(b)
}

// WaitForDatabaseScript is the backend init container's bounded wait for the database.
func WaitForDatabaseScript() string { return File("wait-for-database.sh") }
