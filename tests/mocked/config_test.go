package mocked

import (
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"ecommerce-platform/components/config"
	"ecommerce-platform/tests/testkit"
)

// Pulumi.yaml is generated from the key table: a key added to the table and not to the
// committed file (or edited by hand there) fails here with the command that fixes it.
func TestPulumiYAMLIsGeneratedFromTheKeyTable(t *testing.T) {
	committed, err := os.ReadFile(testkit.ProjectFile(t, "Pulumi.yaml"))
	require.NoError(t, err)
	assert.Equal(t, string(config.ProjectYAML()), string(committed),
		"Pulumi.yaml differs from the config key table: run `go generate .` (make pulumi-yaml)")
}

// Pulumi.yaml declares every key the program reads, with the program's own type, default
// and description, and nothing else: the Go table is the single source.
func TestPulumiYAMLDeclaresEveryConfigKey(t *testing.T) {
	raw, err := os.ReadFile(testkit.ProjectFile(t, "Pulumi.yaml"))
	require.NoError(t, err)
	var projectFile struct {
		Name    string `yaml:"name"`
		Runtime string `yaml:"runtime"`
		Config  map[string]struct {
			Type        string `yaml:"type"`
			Description string `yaml:"description"`
			Default     any    `yaml:"default"`
			Secret      bool   `yaml:"secret"`
		} `yaml:"config"`
	}
	require.NoError(t, yaml.Unmarshal(raw, &projectFile))
	assert.Equal(t, "ecommerce-platform", projectFile.Name)
	assert.Equal(t, "go", projectFile.Runtime)

	var schema []config.Key
	for _, key := range config.Schema() {
		if key.Issued {
			// Object storage keys: needed only when used, so not declared (the CLI would
			// require them in every stack); the program names them when they are missing.
			assert.NotContainsf(t, projectFile.Config, key.Key, "%s is issued: not declared", key.Key)
			continue
		}
		schema = append(schema, key)
	}
	require.Len(t, projectFile.Config, len(schema), "Pulumi.yaml declares a key the program does not read, or misses one")
	for _, key := range schema {
		declared, ok := projectFile.Config[key.Key]
		if !assert.Truef(t, ok, "Pulumi.yaml does not declare %s", key.Key) {
			continue
		}
		assert.Equal(t, key.Type, declared.Type, key.Key)
		assert.Equal(t, key.Description, declared.Description, key.Key)
		assert.Equal(t, key.Secret, declared.Secret, key.Key)
		if key.Secret {
			assert.Nilf(t, declared.Default, "%s is a secret: no default", key.Key)
			continue
		}
		assert.Equalf(t, key.Default, yamlScalar(declared.Default), "default of %s", key.Key)
	}
}

func yamlScalar(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case bool:
		if x {
			return "true"
		}
		return "false"
	case int:
		return strconv.Itoa(x)
	}
	return "?"
}

// Every key a stack file sets is one the program declares, and no stack file holds a secret
// in plain text.
func TestStackFilesSetOnlyDeclaredPlainKeys(t *testing.T) {
	declared := map[string]bool{}
	secret := map[string]bool{}
	for _, k := range config.Schema() {
		declared[testkit.Project+":"+k.Key] = true
		secret[testkit.Project+":"+k.Key] = k.Secret
	}
	for _, stack := range []string{"dev", "prod"} {
		cfg, _ := testkit.StackConfig(t, stack, nil)
		for key := range cfg {
			assert.Truef(t, declared[key], "Pulumi.%s.yaml sets undeclared key %s", stack, key)
		}
		file := testkit.ReadStackFile(t, testkit.ProjectFile(t, "Pulumi."+stack+".yaml"))
		for key := range file.Values {
			bare := strings.TrimPrefix(key, testkit.Project+":")
			if _, isSecret := testkit.TestSecrets[bare]; isSecret {
				assert.Truef(t, file.Secure[key], "Pulumi.%s.yaml holds %s in plain text", stack, bare)
			}
		}
	}
}

// Bad input fails before anything is created: the message names the key, the bad value and
// what is allowed, and no Kubernetes object (nor any component) is registered.
func TestInvalidConfigFailsBeforeAnythingIsRegistered(t *testing.T) {
	cases := []struct {
		name      string
		stack     string
		overrides map[string]string
		dropKey   string // a secret to leave out
		plainKey  string // a secret given in plain text
		want      []string
	}{
		{name: "unknown color", stack: "prod", overrides: map[string]string{"activeColor": "purple"}, want: []string{"activeColor", `"purple"`, "blue or green"}},
		{name: "zero backend replicas", stack: "dev", overrides: map[string]string{"backendReplicas": "0"}, want: []string{"backendReplicas", `"0"`, "from 1 to 100"}},
		{name: "negative blue replicas", stack: "prod", overrides: map[string]string{"blueReplicas": "-2"}, want: []string{"blueReplicas", `"-2"`, "from 0 to 100"}},
		{name: "active color scaled to zero", stack: "prod", overrides: map[string]string{"activeColor": "green", "greenReplicas": "0"}, want: []string{"activeColor", "greenReplicas = 0", "at least 1 replica"}},
		{name: "replicas not a number", stack: "dev", overrides: map[string]string{"greenReplicas": "two"}, want: []string{"greenReplicas", `"two"`, "a whole number"}},
		{name: "malformed storage quantity", stack: "prod", overrides: map[string]string{"databaseStorageSize": "10Gb"}, want: []string{"databaseStorageSize", `"10Gb"`, "Kubernetes quantity"}},
		{name: "malformed memory limit", stack: "dev", overrides: map[string]string{"backendMemoryLimit": "256MB"}, want: []string{"backendMemoryLimit", `"256MB"`, "Kubernetes quantity"}},
		{name: "request above limit", stack: "dev", overrides: map[string]string{"frontendCpuRequest": "2", "frontendCpuLimit": "500m"}, want: []string{"frontendCpuRequest", `"2"`, "must not exceed its limit"}},
		{name: "empty image", stack: "dev", overrides: map[string]string{"databaseImage": ""}, want: []string{"databaseImage", `""`, "pinned tag"}},
		{name: "latest tag", stack: "prod", overrides: map[string]string{"envoyImage": "envoyproxy/envoy:latest"}, want: []string{"envoyImage", `"envoyproxy/envoy:latest"`, "pinned tag"}},
		{name: "untagged image", stack: "prod", overrides: map[string]string{"blueImage": "nginxinc/nginx-unprivileged"}, want: []string{"blueImage", "explicit tag"}},
		{name: "missing database password", stack: "prod", dropKey: "dbPassword", want: []string{"dbPassword", "is missing", "pulumi config set --secret dbPassword"}},
		{name: "missing jwt secret", stack: "dev", dropKey: "jwtSecret", want: []string{"jwtSecret", "is missing", "pulumi config set --secret jwtSecret"}},
		{name: "secret in plain text", stack: "dev", plainKey: "apiDbPassword", want: []string{"apiDbPassword", "plain text", "pulumi config set --secret apiDbPassword"}},
		{name: "short jwt secret", stack: "dev", overrides: map[string]string{"jwtSecret": "too-short"}, want: []string{"jwtSecret", "at least 32"}},
		{name: "unknown storage policy", stack: "prod", overrides: map[string]string{"databasePvcRetention": "Keep"}, want: []string{"databasePvcRetention", `"Keep"`, "Retain or Delete"}},
		{name: "unknown service type", stack: "prod", overrides: map[string]string{"frontendServiceType": "External"}, want: []string{"frontendServiceType", `"External"`, "LoadBalancer, ClusterIP or NodePort"}},
		{name: "bad cron schedule", stack: "dev", overrides: map[string]string{"backupSchedule": "every night"}, want: []string{"backupSchedule", `"every night"`, "five-field cron"}},
		{name: "bad release schedule", stack: "prod", overrides: map[string]string{"releaseUnpaidSchedule": "every 5 minutes"}, want: []string{"releaseUnpaidSchedule", `"every 5 minutes"`, "five-field cron"}},
		{name: "unpaid age too short", stack: "prod", overrides: map[string]string{"unpaidOrderMaxAgeMinutes": "1"}, want: []string{"unpaidOrderMaxAgeMinutes", `"1"`, "from 5 to 43200"}},
		{name: "open units below one order", stack: "prod", overrides: map[string]string{"orderMaxOpenUnits": "10"}, want: []string{"orderMaxOpenUnits", `"10"`, "from 20 to 1000000"}},
		{name: "a customer's share above half a product", stack: "prod", overrides: map[string]string{"orderMaxProductSharePercent": "60"}, want: []string{"orderMaxProductSharePercent", `"60"`, "from 1 to 50"}},
		{name: "bad log level", stack: "dev", overrides: map[string]string{"logLevel": "verbose"}, want: []string{"logLevel", `"verbose"`, "crit, error, warn or info"}},
		{name: "hpa max below min", stack: "prod", overrides: map[string]string{"backendMinReplicas": "5", "backendMaxReplicas": "3"}, want: []string{"backendMaxReplicas", `"3"`, "from 5 to 100"}},
		{name: "node port out of range", stack: "dev", overrides: map[string]string{"bluePreviewNodePort": "8080"}, want: []string{"bluePreviewNodePort", `"8080"`, "from 30000 to 32767"}},
		{name: "node ports collide", stack: "dev", overrides: map[string]string{"greenPreviewNodePort": "30180"}, want: []string{"30180 is already used by bluePreviewNodePort"}},
		{name: "bad postgres memory", stack: "prod", overrides: map[string]string{"databaseSharedBuffers": "256Mi"}, want: []string{"databaseSharedBuffers", `"256Mi"`, "128MB"}},
		{name: "bad namespace", stack: "dev", overrides: map[string]string{"namespace": "Ecommerce_Dev"}, want: []string{"namespace", `"Ecommerce_Dev"`, "DNS label"}},
		{name: "ingress without host", stack: "prod", overrides: map[string]string{"ingressEnabled": "true"}, want: []string{"ingressHost", "required when ingressEnabled"}},
		{name: "bad boolean", stack: "prod", overrides: map[string]string{"databaseProtect": "yes please"}, want: []string{"databaseProtect", `"yes please"`, "true or false"}},
		{name: "zero rate limit", stack: "dev", overrides: map[string]string{"apiRateLimit": "0"}, want: []string{"apiRateLimit", `"0"`, "from 1 to"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, secretKeys := testkit.StackConfig(t, tc.stack, tc.overrides)
			if tc.dropKey != "" {
				delete(cfg, testkit.Project+":"+tc.dropKey)
			}
			if tc.plainKey != "" {
				secretKeys = without(secretKeys, testkit.Project+":"+tc.plainKey)
			}
			r := testkit.RunWithConfig(t, tc.stack, cfg, secretKeys)
			require.Error(t, r.Err)
			for _, want := range tc.want {
				assert.Contains(t, r.Err.Error(), want)
			}
			assert.Empty(t, r.Kubernetes(), "no Kubernetes object may be registered when config is invalid")
			for _, res := range r.Resources {
				assert.Falsef(t, strings.HasPrefix(res.Type, "ecommerce:"), "component %s registered with invalid config", res.Name)
			}
		})
	}
}

// Every problem is reported in one run, so a user fixes them all at once.
func TestInvalidConfigListsEveryProblem(t *testing.T) {
	cfg, secretKeys := testkit.StackConfig(t, "prod", map[string]string{
		"activeColor":         "purple",
		"backendReplicas":     "0",
		"databaseStorageSize": "10Gb",
		"fluentBitImage":      "fluent/fluent-bit:latest",
	})
	delete(cfg, testkit.Project+":dbPassword")
	r := testkit.RunWithConfig(t, "prod", cfg, secretKeys)
	require.Error(t, r.Err)
	msg := r.Err.Error()
	assert.Contains(t, msg, "invalid stack config (5 problems)")
	for _, key := range []string{"activeColor", "backendReplicas", "databaseStorageSize", "fluentBitImage", "dbPassword"} {
		assert.Contains(t, msg, key+":")
	}
	for _, v := range testkit.TestSecrets {
		assert.NotContains(t, msg, v, "an error message must never echo a secret")
	}
	assert.Empty(t, r.Kubernetes())
}

// The defaults alone are a valid configuration (prod-shaped, the seed's values).
func TestDefaultsAreValid(t *testing.T) {
	cfg := config.Defaults()
	assert.Empty(t, cfg.Validate())
}

func without(list []string, drop string) []string {
	var out []string
	for _, s := range list {
		if s != drop {
			out = append(out, s)
		}
	}
	return out
}

// Every plain key is validated: a value of the wrong shape for each one fails with an
// error that names that key, and nothing is registered.
func TestEveryKeyRejectsABadValue(t *testing.T) {
	// Switch on the features whose keys are only checked when they are in use.
	base := map[string]string{"ingressEnabled": "true", "ingressHost": "shop.example.com", "backendAutoscale": "true", "exposeNodePorts": "true"}
	bad := map[string]string{"integer": "-1000000", "boolean": "maybe", "string": "Not Valid!"}
	for _, key := range config.Schema() {
		if key.Secret {
			continue
		}
		t.Run(key.Key, func(t *testing.T) {
			overrides := map[string]string{}
			for k, v := range base {
				overrides[k] = v
			}
			overrides[key.Key] = bad[key.Type]
			r := testkit.RunProgram(t, "dev", overrides)
			require.Error(t, r.Err)
			assert.Contains(t, r.Err.Error(), "- "+key.Key+": ")
			assert.Empty(t, r.Kubernetes())
		})
	}
}

// Every key is validated whatever the other keys say: a key that is unused in a stack today
// (HPA sizes with autoscaling off, node ports with exposeNodePorts off, Ingress settings with
// the Ingress off) is still refused when wrong, so switching a feature on later cannot
// surface an old mistake.
func TestConfigKeysCheckedWhateverTheOthersSay(t *testing.T) {
	cases := []struct {
		stack, key, value, want string
	}{
		{"dev", "backendMinReplicas", "-1", `backendMinReplicas: "-1" is not allowed`},
		{"dev", "backendCpuTargetPercent", "0", `backendCpuTargetPercent: "0" is not allowed`},
		{"prod", "databaseNodePort", "80", `databaseNodePort: "80" is not allowed`},
		{"prod", "ingressClass", "Not_A_Class", `ingressClass: "Not_A_Class" is not allowed`},
		{"prod", "ingressHost", "bad host", `ingressHost: "bad host" is not allowed`},
		{"dev", "trustedProxies", "10.0.0.0/8,not-a-cidr", `trustedProxies: "not-a-cidr" is not allowed`},
		{"prod", "nodePortSourceRanges", "", `nodePortSourceRanges: "" is not allowed`},
	}
	for _, tc := range cases {
		t.Run(tc.stack+"/"+tc.key, func(t *testing.T) {
			r := testkit.RunProgram(t, tc.stack, map[string]string{tc.key: tc.value})
			require.Error(t, r.Err)
			assert.Contains(t, r.Err.Error(), tc.want)
			assert.Empty(t, r.Kubernetes(), "nothing registered")
		})
	}
}

// Read replicas: a negative count, replicas without their secret, a lag bound of zero: each
// a clear error, nothing registered. Without replicas the secret is not required.
func TestReplicaConfig(t *testing.T) {
	for _, tc := range []struct {
		name      string
		overrides map[string]string
		want      string
	}{
		{"negative", map[string]string{"databaseReplicas": "-1"}, `databaseReplicas: "-1" is not allowed`},
		{"no secret", map[string]string{"replicationPassword": testkit.Unset}, "replicationPassword: is missing; set it with `pulumi config set --secret replicationPassword"},
		{"zero lag bound", map[string]string{"databaseReplicaMaxLagSeconds": "0"}, `databaseReplicaMaxLagSeconds: "0" is not allowed`},
		{"bad WAL size", map[string]string{"databaseReplicaWalKeepSize": "lots"}, `databaseReplicaWalKeepSize: "lots" is not allowed`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := testkit.RunProgram(t, "prod", tc.overrides)
			require.Error(t, r.Err)
			assert.Contains(t, r.Err.Error(), tc.want)
			assert.Empty(t, r.Kubernetes())
		})
	}
	dev := testkit.MustRun(t, "dev", map[string]string{"replicationPassword": testkit.Unset, "databaseArchive": "false"})
	assert.Equal(t, []string{"database"}, dev.Names(testkit.StatefulSet), "dev without the archiver: the primary only")
	assert.Equal(t, []string{"database", "database-archiver"}, testkit.MustRun(t, "dev", nil).Names(testkit.StatefulSet))
	assert.Equal(t, []string{"database", "database-archiver"}, testkit.MustRun(t, "prod", nil).Names(testkit.StatefulSet), "prod: the replicas are Patroni members of database")
	assert.Equal(t, []string{"database", "database-archiver", "database-replica"},
		testkit.MustRun(t, "prod", map[string]string{"databaseFailover": "false"}).Names(testkit.StatefulSet), "without Patroni the replicas have their own StatefulSet")
}
