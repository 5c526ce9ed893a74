package database

import (
	"net"
	"net/url"
	"strconv"

	networkingv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/networking/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"ecommerce-platform/components/kube"
)

// endpointAddress is the peer an outside object storage endpoint is reached at (issue 27,
// finding 4): its own address alone when the URL names it by IP address (a /32 or /128), every
// address when it names a host (a NetworkPolicy selects addresses and pods, never DNS names,
// and a cloud endpoint's addresses change; docs/security-round-3.md says what to do instead).
func endpointAddress(endpoint string) networkingv1.NetworkPolicyPeerArgs {
	u, err := url.Parse(endpoint)
	if err != nil {
		return kube.Anywhere()
	}
	ip := net.ParseIP(u.Hostname())
	if ip == nil {
		return kube.Anywhere()
	}
	bits := 128
	if ip.To4() != nil {
		bits = 32
	}
	return networkingv1.NetworkPolicyPeerArgs{IpBlock: &networkingv1.IPBlockArgs{Cidr: pulumi.String(ip.String() + "/" + strconv.Itoa(bits))}}
}
