package mocked

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"

	"ecommerce-platform/components/assets"
	"ecommerce-platform/tests/testkit"
)

// The off-site archive's encryption key (issue 27, finding 1) is required wherever object
// storage is used, named when missing, short or in plain text, alongside every other problem
// of the run; and a stack whose own off-site prefix and its recovery source contain one
// another (finding 2) is refused both ways, naming both keys and both values.
func TestOffsiteEncryptionAndPrefixConfig(t *testing.T) {
	const bucket = "ecommerce-archive-test" // testkit.TestObjectStorage's
	for _, tc := range []struct {
		name, stack string
		overrides   map[string]string
		plainKey    string   // a secret given in plain text
		want        []string // "" : the stack is valid
	}{
		{name: "copies without the key", stack: "prod", overrides: map[string]string{"databaseOffsiteEncryptionKey": testkit.Unset},
			want: []string{"databaseOffsiteEncryptionKey: is missing; set it with `pulumi config set --secret databaseOffsiteEncryptionKey <value>` (at least 32 characters)"}},
		{name: "every problem at once", stack: "prod", overrides: map[string]string{"databaseOffsiteEncryptionKey": testkit.Unset,
			"offsiteAccessKeyId": testkit.Unset, "databaseOffsiteBucket": ""},
			want: []string{"invalid stack config (3 problems)", "databaseOffsiteEncryptionKey: is missing", "offsiteAccessKeyId: is missing",
				`databaseOffsiteBucket: "" is not allowed`}},
		{name: "a recovery without the key", stack: "dev", overrides: map[string]string{"databaseRecoverFrom": "s3://old/prod",
			"databaseOffsiteEndpoint": "https://s3.example", "databaseOffsiteEncryptionKey": testkit.Unset},
			want: []string{"databaseOffsiteEncryptionKey: is missing"}},
		{name: "short key", stack: "prod", overrides: map[string]string{"databaseOffsiteEncryptionKey": "only-20-characters.."},
			want: []string{"databaseOffsiteEncryptionKey: is 20 characters long; it must be at least 32"}},
		{name: "key in plain text", stack: "prod", plainKey: "databaseOffsiteEncryptionKey",
			want: []string{"databaseOffsiteEncryptionKey: is stored in plain text"}},
		{name: "no object storage, no key needed", stack: "dev", overrides: map[string]string{"databaseOffsiteEncryptionKey": testkit.Unset}},
		{name: "own prefix holds the source", stack: "prod", overrides: map[string]string{"databaseOffsitePrefix": "archives",
			"databaseRecoverFrom": "s3://" + bucket + "/archives/prod"},
			want: []string{`databaseRecoverFrom: "s3://` + bucket + `/archives/prod" and this stack's own off-site archive (databaseOffsiteBucket "` + bucket + `", databaseOffsitePrefix "archives") contain one another`}},
		{name: "source holds own prefix", stack: "prod", overrides: map[string]string{"databaseOffsitePrefix": "archives/prod/recovered",
			"databaseRecoverFrom": "s3://" + bucket + "/archives/prod/"},
			want: []string{`databaseRecoverFrom: "s3://` + bucket + `/archives/prod/" and this stack's own off-site archive (databaseOffsiteBucket "` + bucket + `", databaseOffsitePrefix "archives/prod/recovered") contain one another`}},
		{name: "the same folder (the stack's name)", stack: "prod", overrides: map[string]string{"databaseRecoverFrom": "s3://" + bucket + "/prod"},
			want: []string{`databaseRecoverFrom: "s3://` + bucket + `/prod" and this stack's own off-site archive (databaseOffsiteBucket "` + bucket + `", databaseOffsitePrefix "prod") contain one another`}},
		// A recovery bootstraps the single primary: databaseFailover is refused with it.
		{name: "a sibling folder is not inside", stack: "prod", overrides: map[string]string{"databaseOffsitePrefix": "archives/prod-recovered",
			"databaseRecoverFrom": "s3://" + bucket + "/archives/prod", "databaseFailover": "false"}},
		{name: "another bucket", stack: "prod", overrides: map[string]string{"databaseRecoverFrom": "s3://other-bucket/prod", "databaseFailover": "false"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, secretKeys := testkit.StackConfig(t, tc.stack, tc.overrides)
			if tc.plainKey != "" {
				secretKeys = without(secretKeys, testkit.Project+":"+tc.plainKey)
			}
			r := testkit.RunWithConfig(t, tc.stack, cfg, secretKeys)
			if tc.want == nil {
				require.NoError(t, r.Err)
				return
			}
			require.Error(t, r.Err)
			for _, w := range tc.want {
				assert.Contains(t, r.Err.Error(), w)
			}
			assert.NotContains(t, r.Err.Error(), testkit.TestSecrets["databaseOffsiteEncryptionKey"], "an error never echoes the key")
			assert.Empty(t, r.Kubernetes())
		})
	}
}

// readsOffsiteKey tells whether a container can read the off-site Secret's encryption key:
// through a mounted volume of that Secret holding the key (all keys, or an item of it), an
// env secretKeyRef or an envFrom of the Secret.
func readsOffsiteKey(pod corev1.PodSpec, c corev1.Container, secret string) bool {
	volumes := map[string]corev1.Volume{}
	for _, v := range pod.Volumes {
		volumes[v.Name] = v
	}
	for _, m := range c.VolumeMounts {
		v := volumes[m.Name]
		if v.Secret == nil || v.Secret.SecretName != secret {
			continue
		}
		if len(v.Secret.Items) == 0 {
			return true
		}
		for _, item := range v.Secret.Items {
			if item.Key == "encryption-key" && (m.SubPath == "" || m.SubPath == item.Path) {
				return true
			}
		}
	}
	for _, e := range c.Env {
		if ref := e.ValueFrom; ref != nil && ref.SecretKeyRef != nil && ref.SecretKeyRef.Name == secret && ref.SecretKeyRef.Key == "encryption-key" {
			return true
		}
	}
	for _, from := range c.EnvFrom {
		if from.SecretRef != nil && from.SecretRef.Name == secret {
			return true
		}
	}
	return false
}

// The encryption key is in the off-site Secret and mounted, as a file, only in the two
// containers that read it: the archiver's offsite-sync and a recovering primary's
// recovery-fetch, each pointed at it (ENCRYPTION_KEY_FILE) with offsite-crypt.sh beside its
// script. No other container of any workload can read it; a stack without object storage
// has neither the key nor a volume for it.
func TestOffsiteKeyMountedOnlyWhereRead(t *testing.T) {
	for _, tc := range []struct {
		name, stack string
		overrides   map[string]string
		readers     []string
	}{
		{"prod, copying and recovering", "prod", map[string]string{"databaseRecoverFrom": "s3://old-archive/prod", "databaseFailover": "false"},
			[]string{"database-archiver/offsite-sync", "database/recovery-fetch"}},
		{"prod, copying", "prod", nil, []string{"database-archiver/offsite-sync"}},
		{"dev, no object storage", "dev", nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := testkit.MustRun(t, tc.stack, tc.overrides)
			secret := ""
			for _, s := range r.OfType(testkit.Secret) {
				if _, ok := testkit.DecodeAs[corev1.Secret](t, s.Inputs).StringData["encryption-key"]; ok {
					require.Empty(t, secret, "one Secret holds the key")
					secret = s.K8sName()
				}
			}
			if tc.readers == nil {
				assert.Empty(t, secret, "no key without object storage")
			} else {
				require.Equal(t, "database-offsite", secret)
				assert.Equal(t, testkit.TestSecrets["databaseOffsiteEncryptionKey"], testkit.TypedSecret(t, r, secret).StringData["encryption-key"])
			}
			data := testkit.TypedConfigMap(t, r, "database-config").Data
			var readers []string
			for _, w := range r.Workloads() {
				pod := testkit.TypedPod(t, w).Spec
				for _, c := range testkit.TypedContainers(pod) {
					if secret == "" || !readsOffsiteKey(pod, c, secret) {
						continue
					}
					readers = append(readers, w.K8sName()+"/"+c.Name)
					keyFile := testkit.EnvOf(c)["ENCRYPTION_KEY_FILE"]
					scripts := map[string]string{}
					mounted := false
					for _, m := range c.VolumeMounts {
						if m.Name == "offsite-key" && strings.HasPrefix(keyFile, m.MountPath+"/") {
							mounted = m.ReadOnly
						}
						if m.Name == "config" && strings.HasPrefix(m.MountPath, "/scripts/") {
							scripts[m.MountPath] = m.SubPath
						}
					}
					assert.Truef(t, mounted, "%s: ENCRYPTION_KEY_FILE %q is not in its read-only key mount", c.Name, keyFile)
					assert.Equal(t, "offsite-crypt.sh", scripts["/scripts/offsite-crypt.sh"], "%s sources offsite-crypt.sh beside its script", c.Name)
					assert.Equal(t, assets.File("offsite-crypt.sh"), data["offsite-crypt.sh"])
					require.GreaterOrEqual(t, len(c.Command), 2)
					assert.Equal(t, fmt.Sprintf("/scripts/%s", scripts[c.Command[1]]), c.Command[1], "%s runs a mounted script", c.Name)
				}
				for _, v := range pod.Volumes {
					if v.Name == "offsite-key" {
						require.NotNil(t, v.Secret)
						assert.Len(t, v.Secret.Items, 1, "the key alone, not the storage keys")
					}
				}
			}
			slices.Sort(readers)
			assert.Equal(t, tc.readers, readers)
		})
	}
}
