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
	s3Bucket    = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)
	s3Prefix    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._/-]{0,200}$`)
	s3Region    = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)
	versionText = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)
)

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
