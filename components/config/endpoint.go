package config

import (
	"net"
	"net/url"
	"strings"
)

// Where the object storage endpoint is, which decides whether plain http is accepted and what
// egress the pods that talk to it get (components: objectStorageEgress).
const (
	// EndpointLoopback is the pod itself (localhost, 127.0.0.0/8, ::1): no packet leaves it.
	EndpointLoopback = "loopback"
	// EndpointCluster is a Service of the cluster by its DNS name, <service>.<namespace>.svc
	// or <service>.<namespace>.svc.cluster.local: traffic stays on the cluster's network.
	EndpointCluster = "cluster"
	// EndpointExternal is anything else: a host name or address outside what the program can
	// tell is the cluster.
	EndpointExternal = "external"
)

// EndpointScope is where the endpoint's host is (EndpointLoopback, EndpointCluster or
// EndpointExternal), and, for a cluster Service, its namespace. A URL that does not parse is
// external.
func (o Offsite) EndpointScope() (scope, namespace string) {
	u, err := url.Parse(o.Endpoint)
	if err != nil {
		return EndpointExternal, ""
	}
	host := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
	if host == "localhost" {
		return EndpointLoopback, ""
	}
	if ip := net.ParseIP(host); ip != nil {
		if ip.IsLoopback() {
			return EndpointLoopback, ""
		}
		return EndpointExternal, ""
	}
	for _, suffix := range []string{".svc", ".svc.cluster.local"} {
		if rest, ok := strings.CutSuffix(host, suffix); ok {
			service, ns, found := strings.Cut(rest, ".")
			if found && dnsLabel.MatchString(service) && dnsLabel.MatchString(ns) {
				return EndpointCluster, ns
			}
		}
	}
	return EndpointExternal, ""
}

// validateEndpoint requires an http(s) URL with a host and no credentials in it, and https
// unless the endpoint is loopback or cluster-internal or databaseOffsiteAllowInsecureHttp is set.
func (o *Offsite) validateEndpoint(v *problemList) {
	const key = "databaseOffsiteEndpoint"
	u, err := url.Parse(o.Endpoint)
	switch {
	case err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Hostname() == "":
		v.add(key, o.Endpoint, "an http(s) URL of the S3 endpoint (required with databaseOffsite or databaseRecoverFrom)")
	case u.User != nil:
		v.add(key, u.Redacted(), "a URL without user or password in it (the URL is in the pods' specs; the keys belong in offsiteAccessKeyId and offsiteSecretAccessKey)")
	case u.Scheme == "http" && !o.AllowInsecureHTTP:
		if scope, _ := o.EndpointScope(); scope == EndpointExternal {
			v.addf(key, "%q is plain http to a host outside the cluster: the archive and the signed requests would cross the network in clear, and objects could be replaced or withheld on the path; use https://, a loopback endpoint (localhost, 127.0.0.1) or a cluster Service (<service>.<namespace>.svc or <service>.<namespace>.svc.cluster.local), or accept the risk with databaseOffsiteAllowInsecureHttp true",
				o.Endpoint)
		}
	}
}
