package testkit

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"ecommerce-platform/components/config"
)

// Project is the Pulumi project name, the prefix of every config key.
const Project = config.ProjectName

// Unset, as an override, removes a key from the stack's config.
const Unset = "<unset>"

// TestSecrets are the secret config values every mocked run gets unless a test removes one.
var TestSecrets = map[string]string{
	"dbPassword":          "db-owner-password-7f3a9c",
	"apiDbPassword":       "api-authenticator-password-51be",
	"jwtSecret":           "jwt-secret-that-is-at-least-32-characters-long-0c4d",
	"replicationPassword": "replicator-password-9e21",
	// The jobs' and exporters' own login roles (issue 27, finding 3).
	"backupDbPassword":        "backup-role-password-4c7e",
	"releaseUnpaidDbPassword": "release-unpaid-role-password-2b9d",
	"monitorDbPassword":       "monitor-role-password-6f10",
	"offsiteAccessKeyId":      "offsite-key-id-31",
	"offsiteSecretAccessKey":  "offsite-secret-access-key-8d",
	// The off-site archive's encryption key (rclone crypt): the engine tests encrypt with it.
	"databaseOffsiteEncryptionKey": "offsite-archive-encryption-key-of-40-chars-5a",
}

// TestObjectStorage are the plain settings of the off-site archive every stack's mocked run
// gets unless its file sets them: they name a storage owner's endpoint and bucket, which no
// committed stack file can know (prod requires them).
var TestObjectStorage = map[string]string{
	"databaseOffsiteEndpoint": "https://s3.test.example",
	"databaseOffsiteBucket":   "ecommerce-archive-test",
}

// StackConfig is a stack's real config (Pulumi.<stack>.yaml) with overrides applied: a
// value of unset removes the key. Secrets are the test secrets, marked secret.
func StackConfig(t testing.TB, stack string, overrides map[string]string) (map[string]string, []string) {
	t.Helper()
	return StackConfigFromFile(t, ProjectFile(t, "Pulumi."+stack+".yaml"), overrides)
}

// ProjectFile is the path of a file at the project's root (Pulumi.yaml, a stack file),
// found from the test's folder up to go.mod, so every test package reads the same files.
func ProjectFile(t testing.TB, name string) string {
	t.Helper()
	dir, err := os.Getwd()
	require.NoError(t, err)
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, name)
		}
		parent := filepath.Dir(dir)
		require.NotEqual(t, dir, parent, "no go.mod above the test's folder")
		dir = parent
	}
}

// StackConfigFromFile reads a stack file the way the Pulumi CLI does and applies overrides.
// Every required secret gets its test value, marked secret, whether or not the file sets it.
func StackConfigFromFile(t testing.TB, path string, overrides map[string]string) (map[string]string, []string) {
	t.Helper()
	file := ReadStackFile(t, path)
	cfg := file.Values
	secret := map[string]bool{}
	for k := range file.Secure {
		secret[k] = true
	}
	for k, v := range TestSecrets {
		cfg[Project+":"+k] = v
		secret[Project+":"+k] = true
	}
	for k, v := range TestObjectStorage {
		if _, ok := cfg[Project+":"+k]; !ok {
			cfg[Project+":"+k] = v
		}
	}
	for k, v := range overrides {
		full := Project + ":" + k
		if v == Unset {
			delete(cfg, full)
			delete(secret, full)
			continue
		}
		cfg[full] = v
	}
	var secretKeys []string
	for k := range secret {
		if _, ok := cfg[k]; ok {
			secretKeys = append(secretKeys, k)
		}
	}
	sort.Strings(secretKeys)
	return cfg, secretKeys
}

// StackFile is a Pulumi.<stack>.yaml as the CLI reads it.
type StackFile struct {
	Values map[string]string // every key, as the program sees it
	Secure map[string]bool   // keys stored as `secure:` ciphertext
}

// ReadStackFile reads a stack file the way the Pulumi CLI does: a string is itself, another
// scalar, list or object is its JSON text, and `{secure: <ciphertext>}` is a secret. The
// mocks cannot decrypt, so a secret reads as its test value (TestSecrets, or a fixed value
// for any other key), and is marked secret.
func ReadStackFile(t testing.TB, path string) StackFile {
	t.Helper()
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	var doc struct {
		Config map[string]any `yaml:"config"`
	}
	require.NoError(t, yaml.Unmarshal(raw, &doc), "parse %s", path)
	out := StackFile{Values: map[string]string{}, Secure: map[string]bool{}}
	for key, v := range doc.Config {
		switch val := v.(type) {
		case string:
			out.Values[key] = val
		case map[string]any:
			if cipher, ok := val["secure"].(string); ok && len(val) == 1 {
				require.NotEmptyf(t, cipher, "%s in %s: empty secure value", key, path)
				out.Values[key] = testSecretFor(key)
				out.Secure[key] = true
				continue
			}
			out.Values[key] = jsonText(t, val)
		default:
			out.Values[key] = jsonText(t, val)
		}
	}
	return out
}

// testSecretFor is the value a mocked run uses for a key stored as a secret.
func testSecretFor(fullKey string) string {
	if v, ok := TestSecrets[strings.TrimPrefix(fullKey, Project+":")]; ok {
		return v
	}
	return "test-secret-value-of-" + fullKey
}

func jsonText(t testing.TB, v any) string {
	t.Helper()
	js, err := json.Marshal(v)
	require.NoError(t, err)
	return string(js)
}
