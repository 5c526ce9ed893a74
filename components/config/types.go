package config

import (
	"strings"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// Config is the whole stack's configuration, typed. program.go loads it once, validates
// it and maps it into each component's Args; components never read stack config.
type Config struct {
	Namespace           string
	RunAsUser           int
	RunAsGroup          int
	FSGroup             int
	MonitoringNamespace string
	Monitoring          Monitoring
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
	// ReplicationPassword is "" when there are no replicas, no archiver and none was set.
	ReplicationPassword pulumi.StringOutput
	// Object storage keys of the off-site copies and recoveries ("" when neither is used).
	OffsiteAccessKeyID     pulumi.StringOutput
	OffsiteSecretAccessKey pulumi.StringOutput
	// OffsiteEncryptionKey encrypts the archive's off-site copies and decrypts a recovery's
	// ("" when neither is used and none was set).
	OffsiteEncryptionKey pulumi.StringOutput
	// RolePasswords are the passwords of the jobs' and exporters' own login roles.
	RolePasswords RolePasswords
}

// Database configures the PostgreSQL tier.
type Database struct {
	Image              string
	ExporterImage      string
	MigrateImage       string
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
	// The order path's bounds: unpaid units per customer (shop.order_limits), and when and
	// after how long unpaid orders give their units back (the release-unpaid CronJob).
	OrderMaxOpenUnits        int
	UnpaidOrderMaxAgeMinutes int
	ReleaseUnpaidSchedule    string
	Replicas                 int    // streaming read replicas
	ReplicaMaxLagSeconds     int    // a replica further behind is not ready
	ReplicaWalKeepSize       string // max_slot_wal_keep_size: WAL the primary keeps for a lagging replica
	Archive                  Archive
	SyncStandbys             int // quorum commit: ANY n of the replicas and the archiver; 0: asynchronous
	Offsite                  Offsite
	Recovery                 Recovery
	Failover                 Failover

	// OrderMaxProductSharePercent bounds what one customer holds unpaid of each product
	// (shop.order_limits), so a scarce product stays for others (issue 27, finding 5).
	OrderMaxProductSharePercent int
}

// Failover configures Patroni over the database members: one StatefulSet of 1 +
// databaseReplicas members whose leader is elected through the cluster's own API server, so
// a lost primary is replaced without a person.
type Failover struct {
	Enabled bool
	Image   string // ships Patroni 4.x with PostgreSQL 15
	// The leader lock's time to live, Patroni's loop and how long it retries the API server
	// and PostgreSQL: a dead leader is replaced after about TTL + LoopWait seconds.
	TTLSeconds, LoopWaitSeconds, RetryTimeoutSeconds int
}

// Archive configures continuous WAL archiving and base backups (the database-archiver pod).
type Archive struct {
	Enabled                 bool
	StorageClass            string
	StorageSize             string
	BaseBackupIntervalHours int
	BaseBackupKeep          int
	MetricsImage            string
}

// Offsite configures the copies of the archive in S3-compatible object storage; recovery
// from object storage uses its endpoint, region, image and credentials too.
type Offsite struct {
	Enabled         bool
	Endpoint        string
	Bucket          string
	Prefix          string // "" until Load fills in the stack's name
	Region          string
	IntervalSeconds int
	Image           string
	// AllowInsecureHTTP admits a plain-http Endpoint outside the cluster
	// (databaseOffsiteAllowInsecureHttp); without it http is for loopback and cluster-internal
	// endpoints only.
	AllowInsecureHTTP bool
}

// Recovery bootstraps the database from an archive instead of initdb (From "" = a new
// database).
type Recovery struct {
	From   string // s3://bucket/prefix
	Target string // latest or an RFC 3339 time
}

// Remote is the rclone path of this stack's off-site archive (remote "offsite").
func (o Offsite) Remote() string { return "offsite:" + o.Bucket + "/" + o.Prefix }

// Remote is the rclone path of the archive a recovery reads ("" without one).
func (r Recovery) Remote() string {
	if rest, ok := strings.CutPrefix(r.From, "s3://"); ok {
		return "offsite:" + rest
	}
	return ""
}

// UsesObjectStorage tells whether anything talks to the S3 endpoint (copies or a recovery),
// so its settings and credentials are needed.
func (d Database) UsesObjectStorage() bool { return d.Offsite.Enabled || d.Recovery.From != "" }

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
	PostgRESTPoolSize       int // PostgREST's connections to its PgBouncer
	DBSchemas               string
	AnonRole                string
	MaxRows                 int // PostgREST db-max-rows: the most rows one read answers
	PgBouncerPoolSize       int // PgBouncer's server connections per pod
	PgBouncerMaxClientConn  int
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
	ActiveColor                  string
	Blue                         Release
	Green                        Release
	ServiceType                  string
	NodePort                     int
	BluePreviewNodePort          int
	GreenPreviewNodePort         int
	RateLimitPerSecond           int
	RateLimitBurst               int
	LoginRatePerMinute           int
	TrustedProxies               string // comma-separated CIDRs
	UpstreamTimeoutSeconds       int
	FluentBitImage               string
	ExporterImage                string
	Resources                    Resources
	TerminationGraceSeconds      int
	IngressEnabled               bool
	IngressHost                  string
	IngressClass                 string
	IngressTLSSecret             string
	TLSSecret                    string // kubernetes.io/tls Secret nginx serves HTTPS with ("" = none)
	PromotionCheck               bool   // check a color through its preview Service before it goes live
	PromotionCheckTimeoutSeconds int
	PromotionCheckImage          string // an image with sh and curl
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

// The two blue/green colors.
const (
	Blue  = "blue"
	Green = "green"
)

// Color returns the release config of a color, or nil for an unknown color.
func (f *Frontend) Color(color string) *Release {
	switch color {
	case Blue:
		return &f.Blue
	case Green:
		return &f.Green
	}
	return nil
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

// ImageTag is the tag of an image reference ("" when it has none).
func ImageTag(image string) string {
	_, tag := splitImage(image)
	return tag
}

// splitImage splits "registry:port/repo:tag" into name and tag (the tag is after the last
// ':' that follows the last '/').
func splitImage(ref string) (name, tag string) {
	slash := strings.LastIndex(ref, "/")
	colon := strings.LastIndex(ref, ":")
	if colon <= slash {
		return ref, ""
	}
	return ref[:colon], ref[colon+1:]
}

// Monitoring modes: how Prometheus finds the metrics.
const (
	MonitoringAnnotations = "annotations"         // prometheus.io/* pod annotations
	MonitoringOperator    = "prometheus-operator" // PodMonitors and a PrometheusRule
	MonitoringNone        = "none"
)

// Monitoring chooses how the stack is scraped and the alerts' thresholds that are not
// another setting's (replica lag, backup and copy intervals).
type Monitoring struct {
	Mode               string
	Release            string // label release=<this> on monitors and rules (operator mode)
	ConnectionsPercent int
	ErrorPercent       int
	Restarts           int
	HPAMaxMinutes      int
}

// Annotate says whether pods carry the prometheus.io/* scrape annotations.
func (m Monitoring) Annotate() bool { return m.Mode == MonitoringAnnotations }
