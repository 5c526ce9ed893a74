package kube

import (
	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	networkingv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/networking/v1"
	policyv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/policy/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// FromPods admits traffic from the pods matching a selector in the same namespace.
func FromPods(selector pulumi.StringMap) networkingv1.NetworkPolicyPeerArgs {
	return networkingv1.NetworkPolicyPeerArgs{PodSelector: &metav1.LabelSelectorArgs{MatchLabels: selector}}
}

// FromNamespace admits traffic from every pod of another namespace (monitoring).
func FromNamespace(name string) networkingv1.NetworkPolicyPeerArgs {
	return networkingv1.NetworkPolicyPeerArgs{NamespaceSelector: &metav1.LabelSelectorArgs{
		MatchLabels: pulumi.StringMap{"kubernetes.io/metadata.name": pulumi.String(name)},
	}}
}

// Anywhere admits any source: the edge, or a NodePort opened for testing.
func Anywhere() networkingv1.NetworkPolicyPeerArgs {
	return networkingv1.NetworkPolicyPeerArgs{IpBlock: &networkingv1.IPBlockArgs{Cidr: pulumi.String("0.0.0.0/0")}}
}

// FromCIDRs admits the given address ranges (the node ports' allowed sources).
func FromCIDRs(cidrs []string) []networkingv1.NetworkPolicyPeerArgs {
	out := make([]networkingv1.NetworkPolicyPeerArgs, 0, len(cidrs))
	for _, c := range cidrs {
		out = append(out, networkingv1.NetworkPolicyPeerArgs{IpBlock: &networkingv1.IPBlockArgs{Cidr: pulumi.String(c)}})
	}
	return out
}

func TCPPorts(ports ...int) networkingv1.NetworkPolicyPortArray {
	out := networkingv1.NetworkPolicyPortArray{}
	for _, p := range ports {
		out = append(out, networkingv1.NetworkPolicyPortArgs{Protocol: pulumi.String("TCP"), Port: pulumi.Int(p)})
	}
	return out
}

func PeerArray(peers []networkingv1.NetworkPolicyPeerArgs) networkingv1.NetworkPolicyPeerArray {
	out := networkingv1.NetworkPolicyPeerArray{}
	for _, p := range peers {
		out = append(out, p)
	}
	return out
}

func IngressRule(port int, peers ...networkingv1.NetworkPolicyPeerArgs) networkingv1.NetworkPolicyIngressRuleArgs {
	return networkingv1.NetworkPolicyIngressRuleArgs{From: PeerArray(peers), Ports: TCPPorts(port)}
}

func EgressRule(port int, peers ...networkingv1.NetworkPolicyPeerArgs) networkingv1.NetworkPolicyEgressRuleArgs {
	return networkingv1.NetworkPolicyEgressRuleArgs{To: PeerArray(peers), Ports: TCPPorts(port)}
}

// AllowPolicy opens the given ingress and egress for a set of pods on top of the
// namespace's default deny. Policy types are always both, so an empty list means none.
type AllowPolicy struct {
	Name     string
	Pods     pulumi.StringMap
	Ingress  networkingv1.NetworkPolicyIngressRuleArray
	Egress   networkingv1.NetworkPolicyEgressRuleArray
	Labels   pulumi.StringMap
	Resource string // Pulumi name
}

func NewAllowPolicy(ctx *pulumi.Context, ns pulumi.StringInput, p AllowPolicy, opts ...pulumi.ResourceOption) error {
	types := pulumi.StringArray{}
	if len(p.Ingress) > 0 {
		types = append(types, pulumi.String("Ingress"))
	}
	if len(p.Egress) > 0 {
		types = append(types, pulumi.String("Egress"))
	}
	_, err := networkingv1.NewNetworkPolicy(ctx, p.Resource, &networkingv1.NetworkPolicyArgs{
		Metadata: Meta(p.Name, ns, p.Labels),
		Spec: networkingv1.NetworkPolicySpecArgs{
			PodSelector: metav1.LabelSelectorArgs{MatchLabels: p.Pods},
			PolicyTypes: types,
			Ingress:     p.Ingress,
			Egress:      p.Egress,
		},
	}, opts...)
	return err
}

// Service describes one Service in front of a workload's pods.
type Service struct {
	Resource   string // Pulumi name
	Name       string // Kubernetes name
	Type       string // ClusterIP, NodePort, LoadBalancer, or "Headless"
	Selector   pulumi.StringMap
	Port       int
	TargetPort int
	NodePort   int // NodePort only
	PortName   string
	// SelectsRuntimeLabels: the selector names a label a controller sets on running pods
	// (Patroni's role), which no pod template carries: kube-score's "selects a pod" check is
	// told so rather than failing on a rendered stack.
	SelectsRuntimeLabels bool
	// SkipAwait: do not wait for ready endpoints (a preview of a color scaled to zero has
	// none, legitimately).
	SkipAwait bool
	// WaitFor replaces the provider's await with a condition on the Service itself
	// (pulumi.com/waitFor), e.g. a LoadBalancer's address.
	WaitFor string
	// More ports beside Port (name, port, target), e.g. HTTPS beside HTTP.
	More []ServicePortSpec
}

// ServicePortSpec is one more port of a Service.
type ServicePortSpec struct {
	Name         string
	Port, Target int
}

func NewService(ctx *pulumi.Context, ns pulumi.StringInput, labels pulumi.StringMap, s Service, opts ...pulumi.ResourceOption) (*corev1.Service, error) {
	port := corev1.ServicePortArgs{
		Name:       pulumi.String(s.PortName),
		Port:       pulumi.Int(s.Port),
		TargetPort: pulumi.Int(s.TargetPort),
		Protocol:   pulumi.String("TCP"),
	}
	spec := corev1.ServiceSpecArgs{Type: pulumi.String(s.Type), Selector: s.Selector}
	switch s.Type {
	case "Headless":
		spec.Type = pulumi.String("ClusterIP")
		spec.ClusterIP = pulumi.String("None")
		spec.PublishNotReadyAddresses = pulumi.Bool(true)
	case "NodePort":
		port.NodePort = pulumi.Int(s.NodePort)
	case "LoadBalancer":
		// Local: traffic reaches the pod with the client's own address (no second hop's
		// source NAT), which nginx's per-client rate limits key on.
		spec.ExternalTrafficPolicy = pulumi.String("Local")
	}
	ports := corev1.ServicePortArray{port}
	for _, more := range s.More {
		ports = append(ports, corev1.ServicePortArgs{
			Name: pulumi.String(more.Name), Port: pulumi.Int(more.Port), TargetPort: pulumi.Int(more.Target), Protocol: pulumi.String("TCP"),
		})
	}
	spec.Ports = ports
	metadata := Meta(s.Name, ns, labels)
	annotations := pulumi.StringMap{}
	if s.SelectsRuntimeLabels {
		annotations["kube-score/ignore"] = pulumi.String("service-targets-pod")
	}
	switch {
	case s.SkipAwait:
		annotations["pulumi.com/skipAwait"] = pulumi.String("true")
	case s.WaitFor != "":
		annotations["pulumi.com/waitFor"] = pulumi.String(s.WaitFor)
	}
	if len(annotations) > 0 {
		metadata.Annotations = annotations
	}
	return corev1.NewService(ctx, s.Resource, &corev1.ServiceArgs{Metadata: metadata, Spec: spec}, opts...)
}

// NewDisruptionBudget keeps voluntary evictions (drains, upgrades) from taking a tier down.
func NewDisruptionBudget(ctx *pulumi.Context, resource, name string, ns pulumi.StringInput, labels, selector pulumi.StringMap, spec policyv1.PodDisruptionBudgetSpecArgs, opts ...pulumi.ResourceOption) error {
	spec.Selector = &metav1.LabelSelectorArgs{MatchLabels: selector}
	_, err := policyv1.NewPodDisruptionBudget(ctx, resource, &policyv1.PodDisruptionBudgetArgs{
		Metadata: Meta(name, ns, labels),
		Spec:     spec,
	}, opts...)
	return err
}

// NewServiceAccount gives a tier its own identity. Tokens are not mounted: no tier talks
// to the Kubernetes API, so none gets a Role either.
func NewServiceAccount(ctx *pulumi.Context, resource, name string, ns pulumi.StringInput, labels pulumi.StringMap, opts ...pulumi.ResourceOption) (*corev1.ServiceAccount, error) {
	return corev1.NewServiceAccount(ctx, resource, &corev1.ServiceAccountArgs{
		Metadata:                     Meta(name, ns, labels),
		AutomountServiceAccountToken: pulumi.Bool(false),
	}, opts...)
}

// MaxOneUnavailable lets a drain take one pod of a replicated tier at a time.
func MaxOneUnavailable() policyv1.PodDisruptionBudgetSpecArgs {
	return policyv1.PodDisruptionBudgetSpecArgs{MaxUnavailable: pulumi.Int(1)}
}
