package assets

import (
	"bufio"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// PatroniSettings are the values patroni.yml is rendered with: one file for every member of
// the database cluster. Per-pod values (PATRONI_NAME, the pod IP and connect addresses) and
// the passwords come from Patroni's environment variables, never from this file.
type PatroniSettings struct {
	Scope      string            // the cluster's name: Patroni's ConfigMaps are <Scope>-leader, <Scope>-config, ...
	Namespace  string            // where the members' pods and Patroni's ConfigMaps are
	Labels     map[string]string // labels of every member pod (and of Patroni's ConfigMaps), its pod selector
	ScopeLabel string            // label holding Scope on the member pods (Patroni adds it to Labels)
	RoleLabel  string            // label Patroni sets on its own pod: primary or replica (the Services' selector)
	// BypassAPIService: reach the API server at the kubernetes Service's endpoints rather than
	// through its ClusterIP, so a kube-proxy problem does not cost the leader its lock.
	BypassAPIService bool

	TTL                  int   // seconds a leader lock lives without renewal
	LoopWait             int   // seconds between Patroni's cycles
	RetryTimeout         int   // seconds an API server or PostgreSQL call is retried
	MaximumLagOnFailover int64 // bytes: a replica further behind is never promoted
	SynchronousNodeCount int   // quorum commit: ANY n of the other members; 0 = asynchronous
	ArchiverSlot         string
	// ArchiverSlot is the WAL archiver's physical replication slot (components.ArchiverSlot),
	// a permanent slot on every member; "" when there is no archiver.

	DataDir       string // PGDATA
	BinDir        string // PostgreSQL's programs (pg_ctl, initdb, pg_rewind, pg_basebackup, psql)
	CustomConf    string // where the pod mounts the postgresql.conf rendered from Postgres (PostgresConf)
	PgPass        string // a writable path for the password file Patroni writes (the root is read-only)
	PostBootstrap string // where the pod mounts patroni-post-bootstrap.sh; "" to create no database
	ListenAddress string // PostgreSQL's and the REST API's listen address ("0.0.0.0" in a pod)
	RESTAPIPort   int    // Patroni's REST API: the probes (/readiness, /liveness) and patronictl

	SuperuserName   string // POSTGRES_USER; the password is PATRONI_SUPERUSER_PASSWORD
	ReplicationUser string // the replicator role; the password is PATRONI_REPLICATION_PASSWORD

	// Postgres renders the included postgresql.conf; Port and UnixSocketDir are also Patroni's.
	// SynchronousStandbys must be empty: Patroni sets synchronous_standby_names itself.
	Postgres PostgresSettings
}

// patroniView is what the template prints: every string already quoted for YAML.
type patroniView struct {
	Scope, Namespace, ScopeLabel, RoleLabel, ArchiverSlot  string
	BypassAPIService                                       bool
	TTL, LoopWait, RetryTimeout, SynchronousNodeCount      int
	MaximumLagOnFailover                                   int64
	Labels, DCSParameters, HBA                             []string
	RESTAPIListen, PostgresListen, DataDir, BinDir, PgPass string
	CustomConf, SocketDir, SuperuserName, ReplicationUser  string
	PostBootstrap                                          string
}

// patroniCommandLine are the settings Patroni passes to PostgreSQL on its command line, from
// its dynamic configuration or its own defaults (ConfigHandler.CMDLINE_OPTIONS of Patroni
// 4.0), overriding any file. Those the project's postgresql.conf sets are copied into the
// dynamic configuration, so that file stays the one source of their values.
var patroniCommandLine = []string{"wal_level", "max_connections", "max_wal_senders", "wal_keep_size",
	"max_prepared_transactions", "max_locks_per_transaction", "track_commit_timestamp",
	"max_replication_slots", "max_worker_processes", "wal_log_hints"}

var slotNameRE = regexp.MustCompile(`^[a-z0-9_]{1,63}$`)

// RenderPatroniYAML renders the members' patroni.yml; settings that would make Patroni
// misbehave (a TTL its loop cannot renew in time, a synchronous_standby_names of our own) are
// refused with the field named.
func RenderPatroniYAML(s PatroniSettings) (string, error) {
	if err := s.validate(); err != nil {
		return "", err
	}
	conf, err := s.PostgresConf()
	if err != nil {
		return "", err
	}
	v := patroniView{
		Scope: q(s.Scope), Namespace: q(s.Namespace), ScopeLabel: q(s.ScopeLabel), RoleLabel: q(s.RoleLabel),
		BypassAPIService: s.BypassAPIService, TTL: s.TTL, LoopWait: s.LoopWait, RetryTimeout: s.RetryTimeout,
		MaximumLagOnFailover: s.MaximumLagOnFailover, SynchronousNodeCount: s.SynchronousNodeCount,
		RESTAPIListen:  q(fmt.Sprintf("%s:%d", s.ListenAddress, s.RESTAPIPort)),
		PostgresListen: q(fmt.Sprintf("%s:%d", s.ListenAddress, s.Postgres.Port)),
		DataDir:        q(s.DataDir), BinDir: q(s.BinDir), PgPass: q(s.PgPass), CustomConf: q(s.CustomConf),
		SocketDir: q(s.Postgres.UnixSocketDir), SuperuserName: q(s.SuperuserName), ReplicationUser: q(s.ReplicationUser),
		HBA: hbaRules(PostgresHBA()),
	}
	if s.ArchiverSlot != "" {
		v.ArchiverSlot = q(s.ArchiverSlot)
	}
	if s.PostBootstrap != "" {
		v.PostBootstrap = q("sh " + s.PostBootstrap + " " + s.BinDir)
	}
	for _, k := range sortedKeys(s.Labels) {
		v.Labels = append(v.Labels, q(k)+": "+q(s.Labels[k]))
	}
	settings := confSettings(conf)
	for _, name := range patroniCommandLine {
		if value, ok := settings[name]; ok {
			v.DCSParameters = append(v.DCSParameters, name+": "+q(value))
		}
	}
	return renderTemplate("patroni.yml.tmpl", v)
}

// PostgresConf renders the postgresql.conf Patroni includes (custom_conf), from the same
// settings patroni.yml was rendered with.
func (s PatroniSettings) PostgresConf() (string, error) { return RenderPostgresConf(s.Postgres) }

// PatroniPostBootstrapScript returns patroni-post-bootstrap.sh (mounted at PostBootstrap).
func PatroniPostBootstrapScript() string { return File("patroni-post-bootstrap.sh") }

func (s PatroniSettings) validate() error {
	required := map[string]string{"Scope": s.Scope, "Namespace": s.Namespace, "ScopeLabel": s.ScopeLabel,
		"RoleLabel": s.RoleLabel, "DataDir": s.DataDir, "BinDir": s.BinDir, "CustomConf": s.CustomConf,
		"PgPass": s.PgPass, "ListenAddress": s.ListenAddress, "SuperuserName": s.SuperuserName,
		"ReplicationUser": s.ReplicationUser, "Postgres.UnixSocketDir": s.Postgres.UnixSocketDir}
	for _, name := range sortedKeys(required) {
		if required[name] == "" {
			return fmt.Errorf("patroni settings: %s is empty", name)
		}
	}
	switch {
	case len(s.Labels) == 0:
		return fmt.Errorf("patroni settings: Labels is empty (Patroni would list every pod of the namespace)")
	case s.LoopWait < 1 || s.RetryTimeout < 1:
		return fmt.Errorf("patroni settings: LoopWait %d and RetryTimeout %d must be at least 1", s.LoopWait, s.RetryTimeout)
	case s.LoopWait+2*s.RetryTimeout > s.TTL:
		return fmt.Errorf("patroni settings: TTL %d is below LoopWait + 2*RetryTimeout (%d): a healthy leader could lose its lock",
			s.TTL, s.LoopWait+2*s.RetryTimeout)
	case s.SynchronousNodeCount < 0:
		return fmt.Errorf("patroni settings: SynchronousNodeCount %d is negative", s.SynchronousNodeCount)
	case s.MaximumLagOnFailover < 0:
		return fmt.Errorf("patroni settings: MaximumLagOnFailover %d is negative", s.MaximumLagOnFailover)
	case s.ArchiverSlot != "" && !slotNameRE.MatchString(s.ArchiverSlot):
		return fmt.Errorf("patroni settings: ArchiverSlot %q is not a replication slot name ([a-z0-9_])", s.ArchiverSlot)
	case s.Postgres.SynchronousStandbys != "":
		return fmt.Errorf("patroni settings: Postgres.SynchronousStandbys must be empty: Patroni sets synchronous_standby_names (SynchronousNodeCount)")
	case s.RESTAPIPort < 1 || s.RESTAPIPort > 65535 || s.Postgres.Port < 1 || s.Postgres.Port > 65535:
		return fmt.Errorf("patroni settings: RESTAPIPort %d or Postgres.Port %d is not a port", s.RESTAPIPort, s.Postgres.Port)
	}
	return nil
}

// hbaRules are pg_hba.conf's rules, one line each with single spaces, without comments.
func hbaRules(hba string) []string {
	var rules []string
	for _, line := range strings.Split(hba, "\n") {
		line, _, _ = strings.Cut(line, "#")
		if fields := strings.Fields(line); len(fields) > 0 {
			rules = append(rules, q(strings.Join(fields, " ")))
		}
	}
	return rules
}

// confSettings reads name = value lines of a postgresql.conf (values unquoted, comments off).
func confSettings(conf string) map[string]string {
	settings := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(conf))
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), "=")
		name = strings.TrimSpace(name)
		if !ok || name == "" || strings.HasPrefix(name, "#") {
			continue
		}
		value = strings.TrimSpace(value)
		if strings.HasPrefix(value, "'") {
			if end := strings.Index(value[1:], "'"); end >= 0 {
				value = value[1 : end+1]
			}
		} else {
			value, _, _ = strings.Cut(value, "#")
			value = strings.TrimSpace(value)
		}
		settings[name] = value
	}
	return settings
}

// q quotes a string for YAML (a JSON string is a YAML double-quoted scalar).
func q(s string) string { return strconv.Quote(s) }

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
