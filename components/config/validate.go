package config

import (
	"fmt"
	"maps"
	"net"
	"regexp"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/api/resource"
)

var (
	dnsLabel    = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	dnsName     = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
	pgMemory    = regexp.MustCompile(`^[0-9]+(kB|MB|GB|TB)$`)
	pgIdent     = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)
	cronField   = regexp.MustCompile(`^(\*|[0-9]+(-[0-9]+)?)(/[0-9]+)?(,(\*|[0-9]+(-[0-9]+)?)(/[0-9]+)?)*$`)
	versionText = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)
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
	v.intRange("pgbouncerMaxClientConn", b.MaxClientConn, max(b.DBPoolSize, 1), 100000)
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

func (p *problemList) oneOf(key, value string, ok bool, allowed string) {
	if !ok {
		p.add(key, value, allowed)
	}
}

// cidrs checks a comma-separated list of CIDRs (empty allowed only when emptyOK).
func (p *problemList) cidrs(key, value string, emptyOK bool) {
	list := CIDRList(value)
	if len(list) == 0 && !emptyOK {
		p.add(key, value, "one or more comma-separated CIDRs such as 10.0.0.0/8")
	}
	for _, c := range list {
		if _, _, err := net.ParseCIDR(c); err != nil {
			p.add(key, c, "a CIDR such as 10.0.0.0/8 (comma-separated for several)")
		}
	}
}

func (p *problemList) intRange(key string, n, lo, hi int) {
	if n < lo || n > hi {
		p.add(key, fmt.Sprint(n), fmt.Sprintf("a whole number from %d to %d", lo, hi))
	}
}

// image requires a pinned tag: a registry path, then ':' and a tag that is not latest.
func (p *problemList) image(key, ref string) {
	name, tag := splitImage(ref)
	switch {
	case ref == "":
		p.add(key, ref, "an image reference with a pinned tag, e.g. repo/name:1.2.3")
	case name == "" || tag == "":
		p.add(key, ref, "an image with an explicit tag (repo/name:1.2.3); an untagged image means latest")
	case tag == "latest":
		p.add(key, ref, "a pinned tag; latest moves under you")
	}
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

func (p *problemList) quantity(key, value string) {
	q, err := resource.ParseQuantity(value)
	if err != nil || q.Sign() <= 0 {
		p.add(key, value, "a positive Kubernetes quantity such as 500m, 1, 512Mi or 10Gi")
	}
}

// resources checks a container's four quantities and that no request exceeds its limit.
func (p *problemList) resources(prefix string, r Resources) {
	pairs := []struct{ kind, request, limit string }{
		{"Cpu", r.CPURequest, r.CPULimit},
		{"Memory", r.MemoryRequest, r.MemoryLimit},
	}
	for _, pr := range pairs {
		reqKey, limKey := prefix+pr.kind+"Request", prefix+pr.kind+"Limit"
		before := len(*p)
		p.quantity(reqKey, pr.request)
		p.quantity(limKey, pr.limit)
		if len(*p) != before {
			continue
		}
		request, limit := resource.MustParse(pr.request), resource.MustParse(pr.limit)
		if request.Cmp(limit) > 0 {
			p.addf(reqKey, "%q is above %s %q; a request must not exceed its limit", pr.request, limKey, pr.limit)
		}
	}
}

func (p *problemList) pgMemory(key, value string) {
	p.oneOf(key, value, pgMemory.MatchString(value), "a PostgreSQL memory size such as 128MB or 1GB")
}

func (p *problemList) cron(key, value string) {
	fields := strings.Fields(value)
	ok := len(fields) == 5
	for _, f := range fields {
		ok = ok && cronField.MatchString(f)
	}
	p.oneOf(key, value, ok, "a five-field cron schedule such as \"0 2 * * *\"")
}

func (p *problemList) nodePorts(ports map[string]int) {
	seen := map[int]string{}
	for _, key := range slices.Sorted(maps.Keys(ports)) {
		port := ports[key]
		p.intRange(key, port, 30000, 32767)
		if other, dup := seen[port]; dup {
			p.addf(key, "%d is already used by %s; node ports must differ", port, other)
		}
		seen[port] = key
	}
}
