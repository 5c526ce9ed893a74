package config

import (
	"net"
	"slices"
	"strings"
	"time"
)

// Validate checks every value against what Kubernetes and the engines accept and returns
// one line per problem, each naming the key, the bad value and what is allowed.
func (c *Config) Validate() []string {
	v := problemList{}
	// Checks of one key alone are declared in its row of the table (keys.go); the rules
	// below are those that are not (dynamic names, several keys together, patterns).
	for _, k := range configKeys {
		if k.check != nil {
			k.check(&v, c)
		}
	}
	v.oneOf("namespace", c.Namespace, dnsLabel.MatchString(c.Namespace) && len(c.Namespace) <= 63, "a DNS label (lower-case letters, digits, '-')")
	v.oneOf("monitoringNamespace", c.MonitoringNamespace, dnsLabel.MatchString(c.MonitoringNamespace), "a DNS label")
	v.oneOf("monitoring", c.Monitoring.Mode, slices.Contains([]string{MonitoringAnnotations, MonitoringOperator, MonitoringNone}, c.Monitoring.Mode),
		"annotations, prometheus-operator or none")
	v.oneOf("monitoringRelease", c.Monitoring.Release, versionText.MatchString(c.Monitoring.Release), "a label value (letters, digits, '-', '_', '.'; at most 63)")
	c.Database.validate(&v)
	c.Backend.validate(&v)
	c.Frontend.validate(&v)
	c.validateSeed(&v)
	// Every key is checked whatever the others say, so switching a feature on later never
	// surfaces an old mistake (node ports are checked with exposeNodePorts off too).
	v.nodePorts(map[string]int{
		"databaseNodePort":     c.Database.NodePort,
		"backendNodePort":      c.Backend.NodePort,
		"frontendNodePort":     c.Frontend.NodePort,
		"bluePreviewNodePort":  c.Frontend.BluePreviewNodePort,
		"greenPreviewNodePort": c.Frontend.GreenPreviewNodePort,
	})
	return v
}

func (d *Database) validate(v *problemList) {
	v.oneOf("databaseName", d.Name, pgIdent.MatchString(d.Name), "a lower-case SQL identifier")
	v.oneOf("databaseUser", d.User, pgIdent.MatchString(d.User) && d.User != "postgres", "a lower-case SQL identifier other than postgres")
	v.oneOf("databaseStorageClass", d.StorageClass, dnsName.MatchString(d.StorageClass), "a StorageClass name")
	v.oneOf("backupStorageClass", d.BackupStorageClass, dnsName.MatchString(d.BackupStorageClass), "a StorageClass name")
	v.oneOf("databasePvcRetention", d.PVCRetention, d.PVCRetention == "Retain" || d.PVCRetention == "Delete", "Retain or Delete")
	v.resources("database", d.Resources)
	v.oneOf("databaseArchiveStorageClass", d.Archive.StorageClass, dnsName.MatchString(d.Archive.StorageClass), "a StorageClass name")
	candidates, counted := d.syncCandidates()
	if d.SyncStandbys > candidates {
		v.addf("databaseSyncStandbys", "%d is more than the %d synchronous standby candidates (%s); use 0 to %d",
			d.SyncStandbys, candidates, counted, candidates)
	}
	if d.SyncStandbys > 0 && d.SyncStandbys == candidates {
		v.addf("databaseSyncStandbys", "%d equals the number of candidates, so one standby down would block every commit; use at most %d", d.SyncStandbys, candidates-1)
	}
	d.Failover.validate(v, d)
	d.Offsite.validate(v, d.UsesObjectStorage())
	d.Recovery.validate(v, d.Offsite)
}

// validate checks each setting's shape whenever it is set, and requires the endpoint (and,
// for copies, the bucket) when object storage is used.
func (o *Offsite) validate(v *problemList, used bool) {
	if o.Endpoint != "" || used {
		o.validateEndpoint(v)
	}
	if o.Bucket != "" || o.Enabled {
		v.oneOf("databaseOffsiteBucket", o.Bucket, s3Bucket.MatchString(o.Bucket), "an S3 bucket name (required with databaseOffsite)")
	}
	if o.Prefix != "" {
		v.oneOf("databaseOffsitePrefix", o.Prefix, s3Prefix.MatchString(o.Prefix), "a folder name of letters, digits, '-', '_', '.' and '/'")
	}
	v.oneOf("databaseOffsiteRegion", o.Region, s3Region.MatchString(o.Region), "an S3 region name such as us-east-1")
}

func (r *Recovery) validate(v *problemList, own Offsite) {
	if r.From != "" {
		rest, ok := strings.CutPrefix(r.From, "s3://")
		bucket, prefix, _ := strings.Cut(rest, "/")
		switch {
		case !ok || !s3Bucket.MatchString(bucket) || !s3Prefix.MatchString(prefix):
			v.add("databaseRecoverFrom", r.From, "s3://<bucket>/<prefix> of an off-site archive on databaseOffsiteEndpoint")
		case own.Enabled && bucket == own.Bucket && nested(prefix, own.Prefix):
			// The copies never delete, but an archive written inside the one recovered from
			// (or around it) mixes two databases' WAL under one name: refused both ways.
			v.addf("databaseRecoverFrom", "%q and this stack's own off-site archive (databaseOffsiteBucket %q, databaseOffsitePrefix %q) contain one another; a recovering stack writes a new archive, so give it a databaseOffsitePrefix outside %q that does not hold it either",
				r.From, own.Bucket, own.Prefix, prefix)
		}
	}
	if r.Target == "latest" {
		return
	}
	at, err := time.Parse(time.RFC3339, r.Target)
	switch {
	case err != nil:
		v.add("databaseRecoveryTarget", r.Target, "latest or an RFC 3339 time such as 2026-12-04T14:03:00Z")
	case at.After(time.Now()):
		v.addf("databaseRecoveryTarget", "%q is in the future; use latest or a time that has passed", r.Target)
	}
}

// nested tells whether two folders of one bucket are the same or one holds the other
// ("a/b" holds "a/b/c", not "a/bc").
func nested(a, b string) bool {
	a, b = strings.Trim(a, "/")+"/", strings.Trim(b, "/")+"/"
	return strings.HasPrefix(a, b) || strings.HasPrefix(b, a)
}

func (b *Backend) validate(v *problemList) {
	v.intRange("backendMaxReplicas", b.MaxReplicas, max(b.MinReplicas, 1), 100)
	v.oneOf("logLevel", b.LogLevel, slices.Contains([]string{"crit", "error", "warn", "info"}, b.LogLevel), "crit, error, warn or info")
	for _, s := range strings.Split(b.DBSchemas, ",") {
		v.oneOf("apiDbSchemas", b.DBSchemas, pgIdent.MatchString(strings.TrimSpace(s)), "comma-separated lower-case SQL identifiers")
	}
	v.oneOf("apiAnonRole", b.AnonRole, pgIdent.MatchString(b.AnonRole), "a lower-case SQL role name")
	v.intRange("pgbouncerMaxClientConn", b.PgBouncerMaxClientConn, max(b.PostgRESTPoolSize, 1), 100000)
	v.resources("backend", b.Resources)
}

func (f *Frontend) validate(v *problemList) {
	v.oneOf("activeColor", f.ActiveColor, f.ActiveColor == Blue || f.ActiveColor == Green, "blue or green")
	for _, color := range []string{Blue, Green} {
		c := f.Color(color)
		v.image(color+"Image", c.Image)
		v.oneOf(color+"Version", c.Version, versionText.MatchString(c.Version), "a label-safe version such as 1.2.0")
		v.intRange(color+"Replicas", c.Replicas, 0, 100)
	}
	if active := f.Color(f.ActiveColor); active != nil && active.Replicas < 1 {
		v.addf("activeColor", "%q has %sReplicas = %d; the active color needs at least 1 replica (scale it up first, or keep the other color active)", f.ActiveColor, f.ActiveColor, active.Replicas)
	}
	v.oneOf("frontendServiceType", f.ServiceType, slices.Contains([]string{"LoadBalancer", "ClusterIP", "NodePort"}, f.ServiceType), "LoadBalancer, ClusterIP or NodePort")
	v.resources("frontend", f.Resources)
	if f.IngressEnabled || f.IngressHost != "" {
		v.oneOf("ingressHost", f.IngressHost, dnsName.MatchString(f.IngressHost), "a DNS host name (required when ingressEnabled)")
	}
	if f.TLSSecret != "" {
		v.oneOf("tlsSecret", f.TLSSecret, dnsName.MatchString(f.TLSSecret), "a Secret name")
	} else if f.ServiceType == "LoadBalancer" {
		v.addf("tlsSecret", "is required when frontendServiceType is LoadBalancer (traffic from the internet must be encrypted); name a kubernetes.io/tls Secret, for example one cert-manager issues")
	}
	for _, c := range CIDRList(f.TrustedProxies) {
		if _, n, err := net.ParseCIDR(c); err == nil {
			if ones, bits := n.Mask.Size(); ones < bits/4 {
				v.addf("trustedProxies", "%q trusts every client to name its own address (X-Forwarded-For would choose the rate limits' key); name only your proxies' ranges, /%d or narrower", c, bits/4)
			}
		}
	}
	if f.IngressEnabled && strings.TrimSpace(f.TrustedProxies) == "" {
		v.addf("trustedProxies", "is empty with ingressEnabled: every client would arrive from the ingress controller's address and share one rate limit; set it to the ingress controller pods' CIDR")
	}
	v.oneOf("ingressClass", f.IngressClass, dnsName.MatchString(f.IngressClass), "an IngressClass name")
	if f.IngressTLSSecret != "" {
		v.oneOf("ingressTlsSecret", f.IngressTLSSecret, dnsName.MatchString(f.IngressTLSSecret), "a Secret name")
	}
}
