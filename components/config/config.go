package config

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	pulumiconfig "github.com/pulumi/pulumi/sdk/v3/go/pulumi/config"
)

// Config is the whole stack's configuration, typed. program.go loads it once, validates
// it and maps it into each component's Args; components never read stack config.
type Config struct {
	Namespace           string
	RunAsUser           int
	RunAsGroup          int
	FSGroup             int
	MonitoringNamespace string
	ExposeNodePorts     bool
	NodePortSources     string // comma-separated CIDRs that may reach the node ports
	SpreadAcrossNodes   bool
	Quota               Quota

	Database Database
	Backend  Backend
	Frontend Frontend

	// Secrets: only from `pulumi config set --secret`.
	DBPassword    pulumi.StringOutput
	APIDBPassword pulumi.StringOutput
	JWTSecret     pulumi.StringOutput
	// ReplicationPassword is "" when there are no replicas and none was set.
	ReplicationPassword pulumi.StringOutput
}

// Database configures the PostgreSQL tier.
type Database struct {
	Image              string
	ExporterImage      string
	Name               string
	User               string
	StorageClass       string
	StorageSize        string
	PVCRetention       string
	Protect            bool
	SeedData           bool
	MaxConnections     int
	SharedBuffers      string
	WorkMem            string
	EffectiveCacheSize string
	LogMinDurationMs   int
	Resources          Resources
	NodePort           int
	BackupSchedule     string
	BackupKeep         int
	BackupStorageSize  string
	BackupStorageClass string
	Replicas           int    // streaming read replicas
	ReplicaMaxLagSecs  int    // a replica further behind is not ready
	ReplicaWalKeepSize string // max_slot_wal_keep_size: WAL the primary keeps for a lagging replica
}

// Backend configures the API tier.
type Backend struct {
	Image                   string
	EnvoyImage              string
	PgBouncerImage          string
	Replicas                int
	Autoscale               bool
	MinReplicas             int
	MaxReplicas             int
	CPUTargetPercent        int
	APIRateLimit            int
	LogLevel                string
	DBPoolSize              int
	DBSchemas               string
	AnonRole                string
	PoolSize                int
	MaxClientConn           int
	CircuitMaxConnections   int
	CircuitMaxPending       int
	CircuitMaxRequests      int
	CircuitMaxRetries       int
	OutlierConsecutive5xx   int
	OutlierIntervalSeconds  int
	OutlierEjectionSeconds  int
	DBWaitTimeoutSeconds    int
	Resources               Resources
	NodePort                int
	TerminationGraceSeconds int
	RequestTimeoutSeconds   int
}

// Frontend configures the nginx tier and its blue/green releases.
type Frontend struct {
	ActiveColor            string
	Blue                   Release
	Green                  Release
	ServiceType            string
	NodePort               int
	BluePreviewNodePort    int
	GreenPreviewNodePort   int
	RateLimitPerSecond     int
	RateLimitBurst         int
	LoginRatePerMinute     int
	TrustedProxies         string // comma-separated CIDRs
	UpstreamTimeoutSeconds int
	FluentBitImage         string
	ExporterImage          string
	Resources              Resources
	TerminationGraceSec    int
	IngressEnabled         bool
	IngressHost            string
	IngressClass           string
	IngressTLSSecret       string
	TLSSecret              string // kubernetes.io/tls Secret nginx serves HTTPS with ("" = none)
	PromotionCheck         bool   // check a color through its preview Service before it goes live
	PromotionCheckTimeout  int    // seconds
	PromotionCheckImage    string // an image with sh and curl
}

// Quota sizes the namespace's ResourceQuota.
type Quota struct {
	RequestsCPU    string
	RequestsMemory string
	LimitsCPU      string
	LimitsMemory   string
	Storage        string
	Pods           int
}

// Release is one blue/green release: its own image, version and size.
type Release struct {
	Image    string
	Version  string
	Replicas int
}

// Resources are one container's requests and limits as Kubernetes quantities.
type Resources struct {
	CPURequest    string
	CPULimit      string
	MemoryRequest string
	MemoryLimit   string
}

type settingKind string

const (
	kindString settingKind = "string"
	kindInt    settingKind = "integer"
	kindBool   settingKind = "boolean"
)

// Key describes one stack config key. The table below is the single source of
// defaults; a test keeps Pulumi.yaml's declarations equal to it.
type Key struct {
	Key         string
	Type        string // string, integer or boolean, as Pulumi.yaml spells them
	Default     string
	Description string
	Secret      bool
	bind        func(*Config) any
	check       func(*problemList, *Config) // this key's own validation, if any
}

// between allows an integer key values from lo to hi.
func (k Key) between(lo, hi int) Key {
	k.check = func(p *problemList, c *Config) { p.intRange(k.Key, *k.bind(c).(*int), lo, hi) }
	return k
}

// checked validates a string key with one of problemList's checks.
func (k Key) checked(f func(p *problemList, key, value string)) Key {
	k.check = func(p *problemList, c *Config) { f(p, k.Key, *k.bind(c).(*string)) }
	return k
}

// quantity requires a positive Kubernetes quantity.
func (k Key) quantity() Key { return k.checked((*problemList).quantity) }

// memory requires a PostgreSQL memory size (kB, MB, GB, TB).
func (k Key) memory() Key { return k.checked((*problemList).pgMemory) }

// image requires a pinned image reference.
func (k Key) image() Key { return k.checked((*problemList).image) }

// cron requires a five-field cron schedule.
func (k Key) cron() Key { return k.checked((*problemList).cron) }

// cidrList requires comma-separated CIDRs (none at all only when emptyOK).
func (k Key) cidrList(emptyOK bool) Key {
	return k.checked(func(p *problemList, key, value string) { p.cidrs(key, value, emptyOK) })
}

func str(key, def, desc string, bind func(*Config) *string) Key {
	return Key{Key: key, Type: string(kindString), Default: def, Description: desc, bind: func(c *Config) any { return bind(c) }}
}

func num(key string, def int, desc string, bind func(*Config) *int) Key {
	return Key{Key: key, Type: string(kindInt), Default: strconv.Itoa(def), Description: desc, bind: func(c *Config) any { return bind(c) }}
}

func flag(key string, def bool, desc string, bind func(*Config) *bool) Key {
	return Key{Key: key, Type: string(kindBool), Default: strconv.FormatBool(def), Description: desc, bind: func(c *Config) any { return bind(c) }}
}

// secretKeys are required and must be set with `pulumi config set --secret`.
var secretKeys = []struct {
	key      string
	minLen   int
	desc     string
	bind     func(*Config) *pulumi.StringOutput
	required func(*Config) bool // nil: always
}{
	{"dbPassword", 12, "Password of the database owner (postgres superuser of the instance)", func(c *Config) *pulumi.StringOutput { return &c.DBPassword }, nil},
	{"apiDbPassword", 12, "Password of the API's `authenticator` login role, used by PgBouncer", func(c *Config) *pulumi.StringOutput { return &c.APIDBPassword }, nil},
	{"jwtSecret", 32, "HS256 secret that signs and verifies the API's JWTs (PostgREST needs at least 32 characters)", func(c *Config) *pulumi.StringOutput { return &c.JWTSecret }, nil},
	{"replicationPassword", 12, "Password of the `replicator` role the read replicas stream with (required when databaseReplicas > 0)",
		func(c *Config) *pulumi.StringOutput { return &c.ReplicationPassword }, func(c *Config) bool { return c.Database.Replicas > 0 }},
}

// Schema lists every config key with its type, default and description.
func Schema() []Key {
	keys := append([]Key(nil), configKeys...)
	for _, s := range secretKeys {
		keys = append(keys, Key{Key: s.key, Type: string(kindString), Description: s.desc, Secret: true})
	}
	return keys
}

// Load reads and validates the stack config. It reports every problem at once.
func Load(ctx *pulumi.Context) (*Config, error) {
	var problems problemList
	cfg := &Config{}
	for _, k := range configKeys {
		raw, err := pulumiconfig.Try(ctx, k.Key)
		if err != nil {
			raw = k.Default
		}
		if ctx.IsConfigSecret(ctx.Project() + ":" + k.Key) {
			problems.add(k.Key, "<secret>", "a plain value (it is not a secret; set it without --secret)")
			continue
		}
		switch target := k.bind(cfg).(type) {
		case *string:
			*target = raw
		case *int:
			n, err := strconv.Atoi(raw)
			if err != nil {
				problems.add(k.Key, raw, "a whole number")
			}
			*target = n
		case *bool:
			b, err := strconv.ParseBool(raw)
			if err != nil {
				problems.add(k.Key, raw, "true or false")
			}
			*target = b
		}
	}
	for _, s := range secretKeys {
		full := ctx.Project() + ":" + s.key
		raw, err := pulumiconfig.Try(ctx, s.key)
		switch {
		case (err != nil || raw == "") && s.required != nil && !s.required(cfg):
			*s.bind(cfg) = pulumi.ToSecret(pulumi.String("")).(pulumi.StringOutput)
			continue
		case err != nil || raw == "":
			problems.addf(s.key, "is missing; set it with `pulumi config set --secret %s <value>` (at least %d characters)", s.key, s.minLen)
			continue
		case !ctx.IsConfigSecret(full):
			problems.addf(s.key, "is stored in plain text; remove it and set it with `pulumi config set --secret %s <value>`", s.key)
		case len(raw) < s.minLen:
			problems.addf(s.key, "is %d characters long; it must be at least %d", len(raw), s.minLen)
		}
		*s.bind(cfg) = pulumi.ToSecret(pulumi.String(raw)).(pulumi.StringOutput)
	}
	problems = append(problems, cfg.Validate()...)
	if err := problems.err(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// Defaults is the config with every key at its default and no secrets, for tests and
// documentation.
func Defaults() Config {
	cfg := Config{}
	for _, k := range configKeys {
		switch target := k.bind(&cfg).(type) {
		case *string:
			*target = k.Default
		case *int:
			*target, _ = strconv.Atoi(k.Default)
		case *bool:
			*target, _ = strconv.ParseBool(k.Default)
		}
	}
	return cfg
}

// CIDRList splits a comma-separated list of CIDRs (config text) into its entries.
func CIDRList(text string) []string {
	var out []string
	for _, part := range strings.Split(text, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}

// problemList collects every config problem so the user fixes them in one pass.
type problemList []string

func (p *problemList) add(key, value, allowed string) {
	*p = append(*p, fmt.Sprintf("%s: %q is not allowed; use %s", key, value, allowed))
}

func (p *problemList) addf(key, format string, args ...any) {
	*p = append(*p, key+": "+fmt.Sprintf(format, args...))
}

func (p problemList) err() error {
	if len(p) == 0 {
		return nil
	}
	msg := fmt.Sprintf("invalid stack config (%d problems):", len(p))
	for _, line := range p {
		msg += "\n  - " + line
	}
	return fmt.Errorf("%s", msg)
}

// The two blue/green colors.
const (
	Blue  = "blue"
	Green = "green"
)

// ImageTag is the tag of an image reference ("" when it has none).
func ImageTag(image string) string {
	_, tag := splitImage(image)
	return tag
}
