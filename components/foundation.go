package components

import (
	"fmt"

	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	networkingv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/networking/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"ecommerce-platform/components/config"
	"ecommerce-platform/components/kube"
)

// FoundationArgs configure the namespace every tier lives in.
type FoundationArgs struct {
	Namespace string
	Instance  string
	Quota     config.Quota
}

// Foundation is the stack's namespace with its guard rails: Pod Security Admission
// restricted, a quota, default container sizes, and a NetworkPolicy that denies all
// traffic that a tier does not open explicitly (DNS aside).
type Foundation struct {
	pulumi.ResourceState

	Namespace pulumi.StringOutput
}

// NewFoundation creates the namespace and its policies. Pass pulumi.Protect together with
// the database's protection: deleting the namespace would take the protected data with it.
func NewFoundation(ctx *pulumi.Context, name string, args *FoundationArgs, opts ...pulumi.ResourceOption) (*Foundation, error) {
	f := &Foundation{}
	if err := ctx.RegisterComponentResourceV2("ecommerce:index:Foundation", name, nil, f, opts...); err != nil {
		return nil, err
	}
	parent := pulumi.Parent(f)
	labels := pulumi.StringMap{
		"app.kubernetes.io/instance":   pulumi.String(args.Instance),
		"app.kubernetes.io/part-of":    pulumi.String(kube.PartOf),
		"app.kubernetes.io/managed-by": pulumi.String(kube.ManagedBy),
	}
	nsLabels := pulumi.StringMap{
		"pod-security.kubernetes.io/enforce":         pulumi.String("restricted"),
		"pod-security.kubernetes.io/enforce-version": pulumi.String("latest"),
		"pod-security.kubernetes.io/audit":           pulumi.String("restricted"),
		"pod-security.kubernetes.io/warn":            pulumi.String("restricted"),
	}
	for k, v := range labels {
		nsLabels[k] = v
	}
	ns, err := corev1.NewNamespace(ctx, name+"-namespace", &corev1.NamespaceArgs{
		Metadata: &metav1.ObjectMetaArgs{Name: pulumi.String(args.Namespace), Labels: nsLabels},
	}, parent)
	if err != nil {
		return nil, fmt.Errorf("namespace: %w", err)
	}
	f.Namespace = ns.Metadata.Name().Elem()

	if err := newQuotas(ctx, name, f.Namespace, labels, args.Quota, parent); err != nil {
		return nil, err
	}

	everyPod := metav1.LabelSelectorArgs{}
	if _, err := networkingv1.NewNetworkPolicy(ctx, name+"-default-deny", &networkingv1.NetworkPolicyArgs{
		Metadata: kube.Meta("default-deny-all", f.Namespace, labels),
		Spec: networkingv1.NetworkPolicySpecArgs{
			PodSelector: everyPod,
			PolicyTypes: pulumi.StringArray{pulumi.String("Ingress"), pulumi.String("Egress")},
		},
	}, parent); err != nil {
		return nil, fmt.Errorf("default deny policy: %w", err)
	}
	dnsPorts := networkingv1.NetworkPolicyPortArray{
		networkingv1.NetworkPolicyPortArgs{Protocol: pulumi.String("UDP"), Port: pulumi.Int(53)},
		networkingv1.NetworkPolicyPortArgs{Protocol: pulumi.String("TCP"), Port: pulumi.Int(53)},
	}
	if _, err := networkingv1.NewNetworkPolicy(ctx, name+"-allow-dns", &networkingv1.NetworkPolicyArgs{
		Metadata: kube.Meta("allow-dns-egress", f.Namespace, labels),
		Spec: networkingv1.NetworkPolicySpecArgs{
			PodSelector: everyPod,
			PolicyTypes: pulumi.StringArray{pulumi.String("Egress")},
			Egress: networkingv1.NetworkPolicyEgressRuleArray{networkingv1.NetworkPolicyEgressRuleArgs{
				To: networkingv1.NetworkPolicyPeerArray{networkingv1.NetworkPolicyPeerArgs{
					NamespaceSelector: &metav1.LabelSelectorArgs{MatchLabels: pulumi.StringMap{"kubernetes.io/metadata.name": pulumi.String("kube-system")}},
					PodSelector:       &metav1.LabelSelectorArgs{MatchLabels: pulumi.StringMap{"k8s-app": pulumi.String("kube-dns")}},
				}},
				Ports: dnsPorts,
			}},
		},
	}, parent); err != nil {
		return nil, fmt.Errorf("dns egress policy: %w", err)
	}

	if err := ctx.RegisterResourceOutputs(f, pulumi.Map{"namespace": f.Namespace}); err != nil {
		return nil, err
	}
	return f, nil
}

// newQuotas cap the namespace (ResourceQuota) and size containers that state no size of their
// own (LimitRange).
func newQuotas(ctx *pulumi.Context, name string, ns pulumi.StringInput, labels pulumi.StringMap, q config.Quota, parent pulumi.ResourceOption) error {
	if _, err := corev1.NewResourceQuota(ctx, name+"-quota", &corev1.ResourceQuotaArgs{
		Metadata: kube.Meta("ecommerce-quota", ns, labels),
		Spec: &corev1.ResourceQuotaSpecArgs{Hard: pulumi.StringMap{
			"requests.cpu":     pulumi.String(q.RequestsCPU),
			"requests.memory":  pulumi.String(q.RequestsMemory),
			"limits.cpu":       pulumi.String(q.LimitsCPU),
			"limits.memory":    pulumi.String(q.LimitsMemory),
			"requests.storage": pulumi.String(q.Storage),
			"pods":             pulumi.String(fmt.Sprint(q.Pods)),
		}},
	}, parent); err != nil {
		return fmt.Errorf("resource quota: %w", err)
	}

	defaults := kube.InitResources
	if _, err := corev1.NewLimitRange(ctx, name+"-limits", &corev1.LimitRangeArgs{
		Metadata: kube.Meta("ecommerce-limits", ns, labels),
		Spec: corev1.LimitRangeSpecArgs{Limits: corev1.LimitRangeItemArray{corev1.LimitRangeItemArgs{
			Type:           pulumi.String("Container"),
			DefaultRequest: kube.Requirements(defaults).Requests,
			Default:        kube.Requirements(defaults).Limits,
		}}},
	}, parent); err != nil {
		return fmt.Errorf("limit range: %w", err)
	}
	return nil
}
