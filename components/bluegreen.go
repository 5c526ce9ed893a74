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

// servicePort is the port every frontend Service listens on (the seed's port-forward 8080:80).
const servicePort = 80

// BlueGreenArgs configure the frontend tier: both colors and the Services that pick one.
type BlueGreenArgs struct {
	Namespace       pulumi.StringInput
	Identity        kube.Identity // without a color
	Security        kube.PodSecurity
	Settings        config.Frontend
	BackendHost     pulumi.StringInput
	BackendPort     int
	BackendPods     pulumi.StringMap
	Monitoring      kube.Scrapers
	ExposeNodePorts bool
	Spread          bool
	// Prior is what each color ran after the stack's last update and which was live
	// (colorpin.go; empty on the first): it decides which color an update may change.
	Prior Prior
}

// BlueGreen runs a blue and a green Frontend side by side. The production Services select
// the active color only, so switching colors changes their selectors and nothing else; each
// color keeps a preview Service of its own.
type BlueGreen struct {
	pulumi.ResourceState

	ActiveColor       pulumi.StringOutput
	ProductionAddress pulumi.StringOutput
	PreviewAddresses  pulumi.StringMapOutput
	// Releases is what each color runs after this update (the frontendReleases output).
	Releases map[string]ColorRelease
	// LiveColor is the color the production Service selects, once it has been updated.
	LiveColor pulumi.StringOutput
}

// NewBlueGreen creates both colors, the production and preview Services, the tier's
// NetworkPolicy and, when configured, the Ingress.
func NewBlueGreen(ctx *pulumi.Context, name string, args *BlueGreenArgs, opts ...pulumi.ResourceOption) (*BlueGreen, error) {
	bg := &BlueGreen{}
	if err := ctx.RegisterComponentResourceV2("ecommerce:index:BlueGreen", name, nil, bg, opts...); err != nil {
		return nil, err
	}
	parent := pulumi.Parent(bg)
	s, ns, id := args.Settings, args.Namespace, args.Identity
	active := s.ActiveColor
	labels := id.TierLabels()

	sa, err := kube.NewServiceAccount(ctx, name+"-serviceaccount", id.Object(), ns, labels, parent)
	if err != nil {
		return nil, fmt.Errorf("frontend service account: %w", err)
	}
	plan, err := planBlueGreen(s, args.Prior)
	if err != nil {
		return nil, err
	}
	colors, err := newColors(ctx, name, args, plan, sa.Metadata.Name().Elem(), parent)
	if err != nil {
		return nil, err
	}

	previews, previewServices, err := newPreviewServices(ctx, name, ns, id, s, args.ExposeNodePorts, parent)
	if err != nil {
		return nil, err
	}

	// Production traffic moves only once the active color's Deployment is ready and, when
	// the check is on, the color has passed its promotion check through its preview Service.
	gate := []pulumi.Resource{colors[active].Deployment}
	if s.PromotionCheck {
		check, err := newPromotionCheck(ctx, promotionCheck{
			Resource: name + "-promotion", Namespace: ns, Identity: id.WithComponent("promotion-check"),
			Security: args.Security, Image: s.PromotionCheckImage, TimeoutSeconds: s.PromotionCheckTimeoutSeconds,
			Color: active, Release: plan.release(s, active), PreviewURL: pulumi.Sprintf("http://%s:%d", previewServices[active].Metadata.Name().Elem(), servicePort),
			ColorPods: id.WithColor(active).Selector(),
		}, parent, pulumi.DependsOn([]pulumi.Resource{colors[active].Deployment, previewServices[active]}))
		if err != nil {
			return nil, err
		}
		gate = append(gate, check)
	}
	frontendService, err := newProductionServices(ctx, name, id, ns, labels, id.WithColor(active).Selector(), s, args.ExposeNodePorts,
		parent, pulumi.DependsOn(gate))
	if err != nil {
		return nil, err
	}

	if err := newFrontendPolicy(ctx, name, ns, labels, id, args, parent); err != nil {
		return nil, err
	}
	if s.IngressEnabled {
		if err := newIngress(ctx, name+"-ingress", id.Object(), ns, labels, s, frontendService, parent); err != nil {
			return nil, err
		}
	}

	bg.Releases = plan.Runs
	bg.LiveColor = frontendService.Spec.Selector().MapIndex(pulumi.String(kube.ColorKey))
	bg.ActiveColor = pulumi.String(active).ToStringOutput()
	bg.ProductionAddress = productionAddress(frontendService, id.Object("service"), s, ns)
	bg.PreviewAddresses = previews.ToStringMapOutput()
	if err := ctx.RegisterResourceOutputs(bg, pulumi.Map{
		"activeColor":       bg.ActiveColor,
		"productionAddress": bg.ProductionAddress,
		"previewAddresses":  bg.PreviewAddresses,
	}); err != nil {
		return nil, err
	}
	return bg, nil
}

// newColors creates both colors' Frontends as planned, saying which keeps its release and why
// when its config asks for another.
func newColors(ctx *pulumi.Context, name string, args *BlueGreenArgs, plan ColorPlan, serviceAccount pulumi.StringInput, parent pulumi.ResourceOption) (map[string]*Frontend, error) {
	s, id := args.Settings, args.Identity
	colors := map[string]*Frontend{}
	for _, color := range []string{Blue, Green} {
		if plan.Held[color] && *s.Color(color) != plan.release(s, color) {
			ctx.Log.Warn(fmt.Sprintf("frontend-%s keeps release %s (%s): it is %s; its new settings reach it once it is idle", color,
				plan.Runs[color].Version, plan.Runs[color].Image, map[bool]string{true: "live", false: "the rollback target"}[color == plan.Live]), nil)
		}
		f, err := NewFrontend(ctx, name+"-"+color, &FrontendArgs{
			Namespace: args.Namespace, Identity: id.WithColor(color), Security: args.Security,
			Release: plan.release(s, color), Pod: colorPod(s), ServiceAccount: serviceAccount,
			BackendHost: args.BackendHost, BackendPort: args.BackendPort, Spread: args.Spread, Monitoring: args.Monitoring,
			Held: plan.Held[color], ReleaseContent: plan.Runs[color].Content,
		}, parent)
		if err != nil {
			return nil, err
		}
		colors[color] = f
	}
	return colors, nil
}

// planBlueGreen is planColors over the tier's config: the current release of each color.
func planBlueGreen(s config.Frontend, prior Prior) (ColorPlan, error) {
	content, err := releaseContent(colorPod(s))
	if err != nil {
		return ColorPlan{}, err
	}
	current := map[string]ColorRelease{}
	for _, color := range []string{Blue, Green} {
		current[color] = ColorRelease{Content: content, Image: s.Color(color).Image, Version: s.Color(color).Version}
	}
	live := prior.Live
	if live == "" {
		live = s.ActiveColor
	}
	return planColors(live, current, prior.Runs), nil
}

// release is the color's release as it runs after the update: its image and version as
// planned (a held color keeps its own), its replicas from the config (never held).
func (p ColorPlan) release(s config.Frontend, color string) config.Release {
	r := *s.Color(color)
	r.Image, r.Version = p.Runs[color].Image, p.Runs[color].Version
	return r
}

// newPreviewServices gives each color a Service of its own, whatever is active: releases are
// tried there, and the promotion check runs against it. It returns their addresses.
func newPreviewServices(ctx *pulumi.Context, name string, ns pulumi.StringInput, id kube.Identity, s config.Frontend, nodePorts bool, parent pulumi.ResourceOption) (pulumi.StringMap, map[string]*corev1.Service, error) {
	addresses := pulumi.StringMap{}
	services := map[string]*corev1.Service{}
	ports := map[string]int{Blue: s.BluePreviewNodePort, Green: s.GreenPreviewNodePort}
	serviceType := "ClusterIP"
	if nodePorts {
		serviceType = "NodePort"
	}
	for _, color := range []string{Blue, Green} {
		svcName := id.Object(color, "preview")
		svc, err := kube.NewService(ctx, ns, id.WithColor(color).TierLabels(), kube.Service{
			Resource: name + "-" + color + "-preview", Name: svcName, Type: serviceType, Selector: id.WithColor(color).Selector(),
			Port: servicePort, TargetPort: FrontendPort, PortName: "http", NodePort: ports[color],
			SkipAwait: true,
		}, parent)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", svcName, err)
		}
		services[color] = svc
		addresses[color] = clusterAddress(svcName, ns, serviceType, ports[color])
	}
	return addresses, services, nil
}

// newProductionServices are the Services that select the active color: frontend-service,
// frontend-internal and, with node ports, frontend-nodeport. They do not wait for the
// provider's endpoint settle (a fixed 10 s after every update that proves nothing): opts
// make them wait for the active Deployment and the promotion check instead, and a
// LoadBalancer waits only for its address.
func newProductionServices(ctx *pulumi.Context, name string, id kube.Identity, ns pulumi.StringInput, labels, activePods pulumi.StringMap, s config.Frontend, nodePorts bool, opts ...pulumi.ResourceOption) (*corev1.Service, error) {
	public := productionService(name, id, s, activePods)
	public.SkipAwait = s.ServiceType != "LoadBalancer"
	if !public.SkipAwait {
		public.WaitFor = "jsonpath={.status.loadBalancer.ingress}"
	}
	frontendService, err := kube.NewService(ctx, ns, labels, public, opts...)
	if err != nil {
		return nil, fmt.Errorf("frontend-service: %w", err)
	}
	if _, err := kube.NewService(ctx, ns, labels, kube.Service{
		Resource: name + "-internal", Name: id.Object("internal"), Type: "ClusterIP", Selector: activePods,
		Port: servicePort, TargetPort: FrontendPort, PortName: "http", SkipAwait: true,
	}, opts...); err != nil {
		return nil, fmt.Errorf("frontend-internal: %w", err)
	}
	if nodePorts {
		if _, err := kube.NewService(ctx, ns, labels, kube.Service{
			Resource: name + "-nodeport", Name: id.Object("nodeport"), Type: "NodePort", Selector: activePods,
			Port: servicePort, TargetPort: FrontendPort, PortName: "http", NodePort: s.NodePort, SkipAwait: true,
		}, opts...); err != nil {
			return nil, fmt.Errorf("frontend-nodeport: %w", err)
		}
	}
	return frontendService, nil
}

// clusterAddress is how a Service is reached: a node port from outside, or its DNS name.
func clusterAddress(name string, ns pulumi.StringInput, serviceType string, nodePort int) pulumi.StringOutput {
	if serviceType == "NodePort" {
		return pulumi.Sprintf("<node-ip>:%d", nodePort)
	}
	return pulumi.Sprintf("http://%s.%s.svc.cluster.local:%d", name, ns, servicePort)
}

// productionAddress is the LoadBalancer's address once assigned, else the cluster address.
func productionAddress(svc *corev1.Service, svcName string, s config.Frontend, ns pulumi.StringInput) pulumi.StringOutput {
	if s.ServiceType != "LoadBalancer" {
		return clusterAddress(svcName, ns, s.ServiceType, s.NodePort)
	}
	return svc.Status.ApplyT(func(st *corev1.ServiceStatus) string {
		if st == nil || st.LoadBalancer == nil || len(st.LoadBalancer.Ingress) == 0 {
			return ""
		}
		in := st.LoadBalancer.Ingress[0]
		host := in.Ip
		if host == nil {
			host = in.Hostname
		}
		if host == nil {
			return ""
		}
		return "https://" + *host
	}).(pulumi.StringOutput)
}

// productionService is frontend-service. As a LoadBalancer (the internet's way in) it serves
// HTTPS on 443 (nginx's TLS port, with HSTS) and, on 80, only a redirect to HTTPS; as a
// ClusterIP or NodePort Service it serves plain HTTP on 80.
func productionService(name string, id kube.Identity, s config.Frontend, selector pulumi.StringMap) kube.Service {
	svc := kube.Service{
		Resource: name + "-service", Name: id.Object("service"), Type: s.ServiceType, Selector: selector,
		Port: servicePort, TargetPort: FrontendPort, PortName: "http", NodePort: s.NodePort,
	}
	if s.ServiceType == "LoadBalancer" && s.TLSSecret != "" {
		svc.TargetPort = FrontendRedirectPort
		svc.More = []kube.ServicePortSpec{{Name: "https", Port: 443, Target: FrontendTLSPort}}
	}
	return svc
}

// newIngress publishes frontend-service under a host name, with TLS when a Secret is named.
func newIngress(ctx *pulumi.Context, resource, objectName string, ns pulumi.StringInput, labels pulumi.StringMap, s config.Frontend, svc *corev1.Service, opts ...pulumi.ResourceOption) error {
	spec := networkingv1.IngressSpecArgs{
		IngressClassName: pulumi.String(s.IngressClass),
		Rules: networkingv1.IngressRuleArray{networkingv1.IngressRuleArgs{
			Host: pulumi.String(s.IngressHost),
			Http: &networkingv1.HTTPIngressRuleValueArgs{Paths: networkingv1.HTTPIngressPathArray{networkingv1.HTTPIngressPathArgs{
				Path:     pulumi.String("/"),
				PathType: pulumi.String("Prefix"),
				Backend: networkingv1.IngressBackendArgs{Service: &networkingv1.IngressServiceBackendArgs{
					Name: svc.Metadata.Name().Elem(),
					Port: &networkingv1.ServiceBackendPortArgs{Number: pulumi.Int(servicePort)},
				}},
			}}},
		}},
	}
	if s.IngressTLSSecret != "" {
		spec.Tls = networkingv1.IngressTLSArray{networkingv1.IngressTLSArgs{
			Hosts:      pulumi.StringArray{pulumi.String(s.IngressHost)},
			SecretName: pulumi.String(s.IngressTLSSecret),
		}}
	}
	_, err := networkingv1.NewIngress(ctx, resource, &networkingv1.IngressArgs{
		Metadata: &metav1.ObjectMetaArgs{Name: pulumi.String(objectName), Namespace: ns, Labels: labels},
		Spec:     spec,
	}, opts...)
	if err != nil {
		return fmt.Errorf("frontend ingress: %w", err)
	}
	return nil
}

// newFrontendPolicy opens the frontend's pods to anyone on its HTTP, HTTPS and redirect
// ports, to the promotion check, and to the monitoring namespace on the exporter's port; they
// may call the backend only.
func newFrontendPolicy(ctx *pulumi.Context, name string, ns pulumi.StringInput, labels pulumi.StringMap, id kube.Identity, args *BlueGreenArgs, parent pulumi.ResourceOption) error {
	if err := kube.NewAllowPolicy(ctx, ns, kube.AllowPolicy{
		Resource: name + "-netpol", Name: id.Object(), Labels: labels, Pods: id.Selector(),
		Ingress: networkingv1.NetworkPolicyIngressRuleArray{
			networkingv1.NetworkPolicyIngressRuleArgs{
				From: kube.PeerArray([]networkingv1.NetworkPolicyPeerArgs{kube.Anywhere()}), Ports: kube.TCPPorts(FrontendPort, FrontendTLSPort, FrontendRedirectPort),
			},
			kube.IngressRule(nginxExporterPort, kube.FromNamespace(args.Monitoring.Namespace)),
			// The promotion check, by name: ipBlock rules need not match pod addresses.
			kube.IngressRule(FrontendPort, kube.FromPods(id.WithComponent("promotion-check").Selector())),
		},
		Egress: networkingv1.NetworkPolicyEgressRuleArray{kube.EgressRule(args.BackendPort, kube.FromPods(args.BackendPods))},
	}, parent); err != nil {
		return fmt.Errorf("frontend network policy: %w", err)
	}
	return nil
}
