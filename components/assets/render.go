package assets

// NginxSettings are the values nginx.conf is rendered with. The paths are settings so the
// engine tests can run the same file outside a container.
type NginxSettings struct {
	ListenPort             int    // public port (nginx-unprivileged listens on 8080)
	TLSPort                int    // HTTPS with HSTS (0: no TLS listener)
	RedirectPort           int    // answers every request with a redirect to HTTPS (with TLSPort)
	TLSDir                 string // tls.crt and tls.key (a kubernetes.io/tls Secret)
	StatusPort             int    // stub_status, bound to 127.0.0.1 for the exporter only
	BackendHost            string // backend Service DNS name (from the Backend's Output)
	BackendPort            int
	RateLimitPerSecond     int // per client IP, for /api/
	RateLimitBurst         int
	LoginRatePerMinute     int      // sign-in attempts per client address
	TrustedProxies         []string // CIDRs whose X-Forwarded-For gives the client address
	UpstreamTimeoutSeconds int
	Color                  string // this Deployment's color, in every access log line
	ReleaseDir             string // the pod's own color and version labels (downward API), served at /release/
	HTMLRoot               string // dashboard files
	AccessLogSyslog        string // host:port of the log collector's syslog input (UDP, loopback)
	RuntimeDir             string // pid file and temp paths (an emptyDir at /tmp)
}

// RenderNginxConf renders the frontend's complete nginx.conf.
func RenderNginxConf(s NginxSettings) (string, error) { return renderTemplate("nginx.conf.tmpl", s) }

// PgBouncerSettings are the values pgbouncer.ini is rendered with.
type PgBouncerSettings struct {
	ListenAddr      string // 127.0.0.1: the ambassador serves its own pod only
	ListenPort      int    // 6432
	DatabaseName    string
	DatabaseHost    string // database Service DNS name (from the Database's Output)
	DatabasePort    int
	AuthFile        string // userlist.txt, mounted from a Secret
	DefaultPoolSize int
	MinPoolSize     int
	ReservePoolSize int
	MaxClientConn   int
	MaxDBConns      int
	// Limits a session cannot lift (issue 27, finding 7): a query still running after
	// QueryTimeoutSeconds, or a transaction idle for IdleTransactionTimeoutSeconds, ends its
	// client's and its server's connection.
	QueryTimeoutSeconds           int
	IdleTransactionTimeoutSeconds int
}

// RenderPgBouncerIni renders the connection-pool ambassador's pgbouncer.ini.
func RenderPgBouncerIni(s PgBouncerSettings) (string, error) {
	return renderTemplate("pgbouncer.ini.tmpl", s)
}

// PostgresSettings are the values postgresql.conf is rendered with.
type PostgresSettings struct {
	Port                    int
	MaxConnections          int
	SharedBuffers           string // PostgreSQL memory units, e.g. 128MB
	WorkMem                 string
	EffectiveCacheSize      string
	LogMinDurationStatement int // milliseconds; -1 disables
	UnixSocketDir           string
	HBAFile                 string // pg_hba.conf (the embedded one, mounted)
	ReplicaWalKeepSize      string // max_slot_wal_keep_size
	SynchronousStandbys     string // synchronous_standby_names, e.g. ANY 1 (a, b); "" asynchronous
}

// RenderPostgresConf renders postgresql.conf for the database StatefulSet.
func RenderPostgresConf(s PostgresSettings) (string, error) {
	return renderTemplate("postgresql.conf.tmpl", s)
}

// EnvoySettings are the values envoy.yaml is rendered with.
type EnvoySettings struct {
	ListenPort             int // inbound, the Service's target
	AdminPort              int // bound to 127.0.0.1 only
	MetricsPort            int // /stats/prometheus of the admin server, and nothing else
	APIPort                int // PostgREST on 127.0.0.1
	APIAdminPort           int // PostgREST's /live and /ready
	RateLimitPerSecond     int // API_RATE_LIMIT: local token bucket; over it Envoy answers 429
	MaxConnections         int
	MaxPendingRequests     int
	MaxRequests            int
	MaxRetries             int
	Consecutive5xx         int
	OutlierIntervalSeconds int
	BaseEjectionSeconds    int
	RequestTimeoutSeconds  int
}

// RenderEnvoyYAML renders the circuit-breaker sidecar's bootstrap config.
func RenderEnvoyYAML(s EnvoySettings) (string, error) { return renderTemplate("envoy.yaml.tmpl", s) }

// AlertSettings are the values alerts.yaml.tmpl needs: the stack's namespace, which parts it
// runs and the thresholds.
type AlertSettings struct {
	Namespace               string
	Replicas                bool   // read replicas run (Patroni's replica members, or the replica StatefulSet)
	ReplicaSlots            string // regular expression of the replicas' slot names on the primary
	Failover                bool   // Patroni runs the members: leader and role-change alerts
	ReplicaMaxLagSeconds    int
	ConnectionsPercent      int
	ErrorPercent            int
	Archive                 bool
	BaseBackupMaxAgeSeconds int
	Offsite                 bool
	OffsiteMaxAgeSeconds    int
	Restarts                int
	Autoscale               bool
	HPAName                 string
	HPAMaxMinutes           int
}

// RenderAlerts renders the stack's alert rule groups (YAML, a list of Prometheus rule groups).
func RenderAlerts(s AlertSettings) (string, error) { return renderTemplate("alerts.yaml.tmpl", s) }

// RenderDashboard renders the dashboard's rows and panels (YAML) for the stack's namespace.
func RenderDashboard(namespace string) (string, error) {
	return renderTemplate("dashboard.yaml.tmpl", struct{ Namespace string }{namespace})
}
