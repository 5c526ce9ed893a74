package postgres

// The program's rclone containers (the archiver's offsite-sync, a recovering primary's
// recovery-fetch) as recorded, run on this machine against the test's S3 server.

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"

	"ecommerce-platform/tests/testkit"
	"ecommerce-platform/tests/testkit/s3test"
)

// recordedOffsiteContainer is a container of prod's recorded pods that talks to object
// storage (prod copies off site; recovering from another prefix adds recovery-fetch), with
// the recorded run it comes from.
func recordedOffsiteContainer(t *testing.T, name string) (testkit.Run, corev1.PodSpec, corev1.Container) {
	t.Helper()
	// A recovery bootstraps the single primary: databaseFailover is refused with it.
	r := testkit.MustRun(t, "prod", map[string]string{"databaseRecoverFrom": "s3://" + s3test.Bucket + "/recorded-source", "databaseFailover": "false"})
	for _, set := range []string{"database-archiver", "database"} {
		pod := testkit.TypedPod(t, r.Object(t, testkit.StatefulSet, set)).Spec
		for _, c := range testkit.TypedContainers(pod) {
			if c.Name == name {
				return r, pod, c
			}
		}
	}
	require.FailNow(t, "no such container", name)
	return r, corev1.PodSpec{}, corev1.Container{}
}

// offsiteCommand runs one of them as its spec says: every file it mounts (its scripts from
// the recorded ConfigMap, keys of the recorded Secret, only the items the volume names) is
// written under a folder at its mount path, and its command and literal environment are moved
// there; the rclone remote "offsite" points at the test's server (its endpoint and keys are
// the storage owner's), and env (NAME=value: the archive, the remote path) comes last. args
// replace the container's own (offsite-sync's loop becomes once).
func offsiteCommand(t *testing.T, store *s3test.Server, container string, env []string, args ...string) *exec.Cmd {
	t.Helper()
	r, pod, c := recordedOffsiteContainer(t, container)
	root := t.TempDir()
	volumes := map[string]corev1.Volume{}
	for _, v := range pod.Volumes {
		volumes[v.Name] = v
	}
	var mounts []string
	for _, m := range c.VolumeMounts {
		v := volumes[m.Name]
		files := map[string]string{}
		switch {
		case v.ConfigMap != nil:
			files = testkit.TypedConfigMap(t, r, v.ConfigMap.Name).Data
		case v.Secret != nil:
			data := testkit.TypedSecret(t, r, v.Secret.SecretName).StringData
			if len(v.Secret.Items) == 0 {
				files = data
			}
			for _, item := range v.Secret.Items {
				files[item.Path] = data[item.Key]
			}
		default: // an emptyDir or a claim: a fresh folder
			require.NoError(t, os.MkdirAll(filepath.Join(root, m.MountPath), 0o755))
			mounts = append(mounts, m.MountPath)
			continue
		}
		if m.SubPath != "" {
			files = map[string]string{"": files[m.SubPath]}
		}
		for name, content := range files {
			path := filepath.Join(root, m.MountPath, name)
			require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
			require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
		}
		mounts = append(mounts, m.MountPath)
	}
	moved := func(value string) string {
		for _, m := range mounts {
			if value == m || strings.HasPrefix(value, m+"/") {
				return filepath.Join(root, value)
			}
		}
		return value
	}
	require.GreaterOrEqual(t, len(c.Command), 2, "sh and its script")
	cmd := exec.Command(c.Command[0], append([]string{moved(c.Command[1])}, args...)...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	for _, e := range c.Env {
		if e.ValueFrom == nil {
			cmd.Env = append(cmd.Env, e.Name+"="+moved(e.Value))
		}
	}
	cmd.Env = append(append(cmd.Env, store.Env("127.0.0.1")...), env...)
	return cmd
}

// runOffsiteScript runs it to success and returns what it printed.
func runOffsiteScript(t *testing.T, store *s3test.Server, container string, env []string, args ...string) string {
	t.Helper()
	out, err := offsiteCommand(t, store, container, env, args...).CombinedOutput()
	require.NoError(t, err, "%s:\n%s", container, out)
	return string(out)
}

// bucketObjects are the objects under a prefix of the test's bucket as stored (no
// decryption), each with its MD5 (the S3 ETag of a single-part upload).
func bucketObjects(t *testing.T, store *s3test.Server, prefix string) map[string]string {
	t.Helper()
	out, err := store.Rclone(t, "127.0.0.1", testkit.RequireEngine(t, "rclone"), "md5sum", "offsite:"+s3test.Bucket+"/"+prefix)
	require.NoError(t, err, out)
	objects := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if hash, name, ok := strings.Cut(line, "  "); ok {
			objects[name] = hash
		}
	}
	return objects
}
