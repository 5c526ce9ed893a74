package mocked

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"ecommerce-platform/tests/testkit"
)

// withSecretsSet copies a stack file and stores every required secret in it the way
// `pulumi config set --secret` (and so `make up`) writes them: an encryption salt at the top
// and `secure:` ciphertext under config, keys re-sorted, comments dropped.
func withSecretsSet(t *testing.T, stack string) string {
	t.Helper()
	raw, err := os.ReadFile(testkit.ProjectFile(t, "Pulumi."+stack+".yaml"))
	require.NoError(t, err)
	var doc map[string]any
	require.NoError(t, yaml.Unmarshal(raw, &doc))
	cfg, _ := doc["config"].(map[string]any)
	require.NotNil(t, cfg)
	for key := range testkit.TestSecrets {
		cfg[testkit.Project+":"+key] = map[string]any{"secure": "v1:3q2+7w==:v1:AAAAAAAAAAAAAAAA:ZmFrZS1jaXBoZXJ0ZXh0LW9mLQ=="}
	}
	doc["encryptionsalt"] = "v1:c2FsdHNhbHQ=:v1:AAAAAAAAAAAAAAAA:c2FsdHk="
	out, err := yaml.Marshal(doc)
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "Pulumi."+stack+".yaml")
	require.NoError(t, os.WriteFile(path, out, 0o600))
	return path
}

// A stack file whose secrets were set with `pulumi config set --secret` (what `make up`
// leaves behind) runs the same program as one without: the same objects with the same
// inputs, and the secrets still arrive marked secret (the program refuses plain ones).
func TestStackFileWithSecureEntriesRunsTheSameProgram(t *testing.T) {
	for _, stack := range []string{"dev", "prod"} {
		t.Run(stack, func(t *testing.T) {
			path := withSecretsSet(t, stack)
			file := testkit.ReadStackFile(t, path)
			for key := range testkit.TestSecrets {
				assert.Truef(t, file.Secure[testkit.Project+":"+key], "%s is read as a secure value", key)
			}

			cfg, secretKeys := testkit.StackConfigFromFile(t, path, nil)
			withSecrets := testkit.RunWithConfig(t, stack, cfg, secretKeys)
			require.NoError(t, withSecrets.Err)
			plain := testkit.MustRun(t, stack, nil)
			require.Equal(t, testkit.Snapshot(plain), testkit.Snapshot(withSecrets))
		})
	}
}

// Values are read as the Pulumi CLI reads them: strings as they are, other scalars, lists
// and objects as JSON text, `secure:` entries as secrets.
func TestStackFileValues(t *testing.T) {
	path := filepath.Join(t.TempDir(), "Pulumi.x.yaml")
	require.NoError(t, os.WriteFile(path, []byte(`encryptionsalt: v1:abc
config:
  ecommerce-platform:text: blue
  ecommerce-platform:quoted: "3"
  ecommerce-platform:number: 3
  ecommerce-platform:flag: true
  ecommerce-platform:object:
    a: 1
    b: [x, y]
  ecommerce-platform:dbPassword:
    secure: v1:cipher
  ecommerce-platform:other:
    secure: v1:cipher
`), 0o600))
	file := testkit.ReadStackFile(t, path)
	assert.Equal(t, map[string]string{
		testkit.Project + ":text":       "blue",
		testkit.Project + ":quoted":     "3",
		testkit.Project + ":number":     "3",
		testkit.Project + ":flag":       "true",
		testkit.Project + ":object":     `{"a":1,"b":["x","y"]}`,
		testkit.Project + ":dbPassword": testkit.TestSecrets["dbPassword"],
		testkit.Project + ":other":      "test-secret-value-of-" + testkit.Project + ":other",
	}, file.Values)
	assert.Equal(t, map[string]bool{testkit.Project + ":dbPassword": true, testkit.Project + ":other": true}, file.Secure)
}
