package mocked

import (
	"go/ast"
	"go/parser"
	"go/token"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"ecommerce-platform/tests/testkit"
)

// The program's code stays easy to walk: short functions, packages that import only
// downward, and files within a package that depend on each other in one direction (a
// component file uses its containers' file, never the other way round).

// houseDirs are the program's own packages (the tests are not held to these rules).
var houseDirs = []string{"components", "components/database", "components/kube", "components/config", "components/assets", "deploy", "cmd/platform", "cmd/pulumi-yaml", "."}

const maxFunctionLines = 80

type goPackage struct {
	dir   string
	fset  *token.FileSet
	files map[string]*ast.File // by base name
}

func parsePackage(t *testing.T, dir string) goPackage {
	t.Helper()
	abs := testkit.ProjectFile(t, dir)
	entries, err := os.ReadDir(abs)
	require.NoError(t, err)
	p := goPackage{dir: dir, fset: token.NewFileSet(), files: map[string]*ast.File{}}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".go") || strings.HasSuffix(e.Name(), "_test.go") {
			continue
		}
		f, err := parser.ParseFile(p.fset, filepath.Join(abs, e.Name()), nil, parser.SkipObjectResolution)
		require.NoError(t, err)
		p.files[e.Name()] = f
	}
	require.NotEmpty(t, p.files, dir)
	return p
}

func TestFunctionsAreShort(t *testing.T) {
	for _, dir := range houseDirs {
		p := parsePackage(t, dir)
		for name, f := range p.files {
			for _, d := range f.Decls {
				fn, ok := d.(*ast.FuncDecl)
				if !ok || fn.Body == nil {
					continue
				}
				lines := p.fset.Position(fn.End()).Line - p.fset.Position(fn.Pos()).Line + 1
				assert.LessOrEqualf(t, lines, maxFunctionLines, "%s/%s: %s is %d lines", dir, name, fn.Name.Name, lines)
			}
		}
	}
}

// Packages import downward: config and assets use nothing of the project, kube (the shared
// builders) only config, the database tier kube and the two below it, components all of
// them; nothing of the program imports the driver, the commands or the tests.
func TestPackagesImportDownward(t *testing.T) {
	allowed := map[string][]string{
		"components/config":   {},
		"components/assets":   {},
		"components/kube":     {"components/config"},
		"components/database": {"components/kube", "components/config", "components/assets"},
		"components":          {"components/database", "components/kube", "components/config", "components/assets"},
		"deploy":              {"components", "components/config"},
		"cmd/platform":        {"components", "deploy"},
		"cmd/pulumi-yaml":     {"components/config"},
		".":                   {"components"},
	}
	for _, dir := range houseDirs {
		p := parsePackage(t, dir)
		for name, f := range p.files {
			for _, imp := range f.Imports {
				path, err := strconv.Unquote(imp.Path.Value)
				require.NoError(t, err)
				local, ok := strings.CutPrefix(path, testkit.Project+"/")
				if !ok {
					continue
				}
				assert.Containsf(t, allowed[dir], local, "%s/%s imports %s", dir, name, path)
			}
		}
	}
}

// No two files of a package use each other, directly or around a circle: each file's
// top-level names are looked up in the others (methods, fields and parameters aside; a
// local name that shadows a top-level one counts as a use), and the graph
// of files must have no cycle.
func TestFilesDependInOneDirection(t *testing.T) {
	for _, dir := range houseDirs {
		p := parsePackage(t, dir)
		deps := fileDependencies(p)
		for _, cycle := range fileCycles(deps) {
			assert.Failf(t, "files use each other", "%s: %s", dir, strings.Join(cycle, " -> "))
		}
	}
}

// fileDependencies maps each file to the files whose top-level names it uses.
func fileDependencies(p goPackage) map[string][]string {
	declaredIn := map[string]string{}
	for name, f := range p.files {
		for _, d := range f.Decls {
			for _, id := range declaredNames(d) {
				if id != "_" {
					declaredIn[id] = name
				}
			}
		}
	}
	deps := map[string][]string{}
	for name, f := range p.files {
		var visit func(ast.Node) bool
		visit = func(n ast.Node) bool {
			switch x := n.(type) {
			case *ast.SelectorExpr:
				ast.Inspect(x.X, visit)
				return false // x.Sel is a field or method, or another package's name
			case *ast.Field: // its names are fields or parameters, not uses
				ast.Inspect(x.Type, visit)
				return false
			case *ast.KeyValueExpr:
				if _, isField := x.Key.(*ast.Ident); isField {
					ast.Inspect(x.Value, visit)
					return false
				}
			case *ast.Ident:
				if other, ok := declaredIn[x.Name]; ok && other != name && !slices.Contains(deps[name], other) {
					deps[name] = append(deps[name], other)
				}
			}
			return true
		}
		ast.Inspect(f, visit)
	}
	return deps
}

// declaredNames are a declaration's package-level names (not methods).
func declaredNames(d ast.Decl) []string {
	switch x := d.(type) {
	case *ast.FuncDecl:
		if x.Recv == nil {
			return []string{x.Name.Name}
		}
	case *ast.GenDecl:
		var names []string
		for _, s := range x.Specs {
			switch s := s.(type) {
			case *ast.TypeSpec:
				names = append(names, s.Name.Name)
			case *ast.ValueSpec:
				for _, n := range s.Names {
					names = append(names, n.Name)
				}
			}
		}
		return names
	}
	return nil
}

// fileCycles returns one path around each cycle found by a depth-first walk.
func fileCycles(deps map[string][]string) [][]string {
	const (
		unseen = iota
		open
		done
	)
	state := map[string]int{}
	var path []string
	var cycles [][]string
	var walk func(string)
	walk = func(f string) {
		state[f] = open
		path = append(path, f)
		for _, next := range slices.Sorted(slices.Values(deps[f])) {
			switch state[next] {
			case unseen:
				walk(next)
			case open:
				start := slices.Index(path, next)
				cycles = append(cycles, append(slices.Clone(path[start:]), next))
			}
		}
		path = path[:len(path)-1]
		state[f] = done
	}
	for _, f := range slices.Sorted(maps.Keys(deps)) {
		if state[f] == unseen {
			walk(f)
		}
	}
	return cycles
}
