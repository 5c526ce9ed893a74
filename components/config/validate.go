package config

import (
	"slices"
	"strings"
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
	c.Database.validate(&v)
	c.Backend.validate(&v)
	c.Frontend.validate(&v)
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
	v.oneOf("ingressClass", f.IngressClass, dnsName.MatchString(f.IngressClass), "an IngressClass name")
	if f.IngressTLSSecret != "" {
		v.oneOf("ingressTlsSecret", f.IngressTLSSecret, dnsName.MatchString(f.IngressTLSSecret), "a Secret name")
	}
}
