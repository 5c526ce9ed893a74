package mocked

import (
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	corev1 "k8s.io/api/core/v1"

	"ecommerce-platform/tests/testkit"
)

// libpqTool matches a call of a program that connects with libpq.
var libpqTool = regexp.MustCompile(`(^|[\s/;|&(])(pg_isready|psql|pg_dump|pg_dumpall|pg_restore|pg_basebackup|pgbench|createdb|createuser|dropdb|dropuser|vacuumdb|reindexdb|clusterdb)(\s|$)`)

// namesUser: a libpq call names its user, so it works as a uid without a passwd entry.
var namesUser = regexp.MustCompile(`(--username[= ]|(^|\s)-U\s?\S)`)

// Every exec probe, lifecycle hook, command override and mounted script that calls a libpq
// tool names its user (--username, -U or PGUSER in the container's env): the containers run
// as a uid with no passwd entry, outside their image's entrypoint, where libpq cannot work out
// a default user and gives up before connecting (pg_isready exits 3).
func TestLibpqCallsNameTheirUser(t *testing.T) {
	for _, stack := range []string{"dev", "prod"} {
		r := testkit.MustRun(t, stack, nil)
		for _, w := range r.Workloads() {
			pod := testkit.TypedPod(t, w)
			for _, c := range testkit.TypedContainers(pod.Spec) {
				where := stack + "/" + w.K8sName() + "/" + c.Name
				if _, ok := testkit.EnvOf(c)["PGUSER"]; ok {
					continue
				}
				for what, argv := range execCommandsOf(c) {
					assertLibpqNamesUser(t, where+" "+what, strings.Join(argv, " "))
				}
				for path, script := range mountedScripts(t, r, pod.Spec, c) {
					assertLibpqNamesUser(t, where+" "+path, script)
				}
			}
		}
	}
}

func assertLibpqNamesUser(t *testing.T, where, text string) {
	t.Helper()
	for _, line := range shellLines(text) {
		if libpqTool.MatchString(line) {
			assert.Regexpf(t, namesUser, line, "%s calls a libpq tool without naming its user: %s", where, line)
		}
	}
}

// shellLines joins continued lines and drops comments.
func shellLines(text string) []string {
	var out []string
	for _, line := range strings.Split(strings.ReplaceAll(text, "\\\n", " "), "\n") {
		line = strings.TrimSpace(line)
		if line != "" && !strings.HasPrefix(line, "#") {
			out = append(out, line)
		}
	}
	return out
}

// execCommandsOf are the command lines a container runs: its command override (with args),
// its exec probes and its exec lifecycle hooks.
func execCommandsOf(c corev1.Container) map[string][]string {
	out := map[string][]string{}
	if len(c.Command) > 0 {
		out["command"] = append(append([]string(nil), c.Command...), c.Args...)
	}
	for name, p := range map[string]*corev1.Probe{"startupProbe": c.StartupProbe, "readinessProbe": c.ReadinessProbe, "livenessProbe": c.LivenessProbe} {
		if p != nil && p.Exec != nil {
			out[name] = p.Exec.Command
		}
	}
	if c.Lifecycle != nil {
		for name, h := range map[string]*corev1.LifecycleHandler{"postStart": c.Lifecycle.PostStart, "preStop": c.Lifecycle.PreStop} {
			if h != nil && h.Exec != nil {
				out[name] = h.Exec.Command
			}
		}
	}
	return out
}

// mountedScripts are the shell scripts (*.sh) a container mounts from the program's
// ConfigMaps, by mount path.
func mountedScripts(t *testing.T, r testkit.Run, pod corev1.PodSpec, c corev1.Container) map[string]string {
	out := map[string]string{}
	for _, m := range c.VolumeMounts {
		for _, v := range pod.Volumes {
			if v.Name != m.Name || v.ConfigMap == nil {
				continue
			}
			data := testkit.TypedConfigMap(t, r, v.ConfigMap.Name).Data
			for key, text := range data {
				if !strings.HasSuffix(key, ".sh") || (m.SubPath != "" && m.SubPath != key) {
					continue
				}
				out[m.MountPath+"/"+key] = text
			}
		}
	}
	return out
}
