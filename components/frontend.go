package components

import (
	"fmt"

	appsv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/apps/v1"
	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"ecommerce-platform/components/assets"
	"ecommerce-platform/components/config"
	"ecommerce-platform/components/kube"
)

// Ports and identities of the frontend pod.
const (
	FrontendPort         = 8080 // nginx-unprivileged
	FrontendTLSPort      = 8443 // HTTPS, when a TLS Secret is configured
	FrontendRedirectPort = 8089 // redirects HTTP to HTTPS, when a TLS Secret is configured
	nginxTLSDir          = "/etc/nginx/tls"
	nginxStatusPort      = 8081 // stub_status on 127.0.0.1 for the exporter
	nginxExporterPort    = 9113
	fluentBitPort        = 2020
	accessLogSyslog      = "127.0.0.1:5140" // the log collector's syslog input (fluent-bit.conf)
	nginxUID             = 101              // the nginx-unprivileged image's user
	nginxHTMLRoot        = "/usr/share/nginx/html"
	nginxReleaseDir      = "/etc/nginx/release"
)

// FrontendArgs configure one color's release of the frontend.
type FrontendArgs struct {
	Namespace      pulumi.StringInput
	Identity       kube.Identity // with its Color set
	Security       kube.PodSecurity
	Release        config.Release
	Pod            ColorPod // what the color's pods are made of
	ServiceAccount pulumi.StringInput
	BackendHost    pulumi.StringInput // from the Backend's Output
	BackendPort    int
	Spread         bool
	Monitoring     kube.Scrapers
	// Held keeps the color's Deployment pod template and ConfigMaps as they are (colorpin.go):
	// the active color, or the idle one holding the release to roll back to.
	Held bool
	// ReleaseContent is the hash of the release content the color runs (ColorRelease.Content),
	// shown on its Deployment (annotation ReleaseContentAnnotation).
	ReleaseContent string
}

// ReleaseContentAnnotation on a color's Deployment names the release content its pods run.
const ReleaseContentAnnotation = "ecommerce-platform/release-content"

// Frontend is one color's nginx Deployment (dashboard + API proxy) with its log collector
// and metrics exporter sidecars.
type Frontend struct {
	pulumi.ResourceState

	Deployment     *appsv1.Deployment
	DeploymentName pulumi.StringOutput
}

// ColorPod is what one color's pods are made of, and nothing else of the tier: not the active
// color and not the other color's release, so no change of those can reach this color's
// Deployment.
type ColorPod struct {
	RateLimitPerSecond, RateLimitBurst, LoginRatePerMinute, UpstreamTimeoutSeconds int
	TrustedProxies                                                                 []string
	TLSSecret                                                                      string // "" = no HTTPS
	Resources                                                                      config.Resources
	FluentBitImage, ExporterImage                                                  string
	TerminationGraceSeconds                                                        int
}

// colorPod takes a color's pod settings out of the tier's config.
func colorPod(s config.Frontend) ColorPod {
	return ColorPod{
		RateLimitPerSecond: s.RateLimitPerSecond, RateLimitBurst: s.RateLimitBurst,
		LoginRatePerMinute: s.LoginRatePerMinute, UpstreamTimeoutSeconds: s.UpstreamTimeoutSeconds,
		TrustedProxies: config.CIDRList(s.TrustedProxies), TLSSecret: s.TLSSecret, Resources: s.Resources,
		FluentBitImage: s.FluentBitImage, ExporterImage: s.ExporterImage, TerminationGraceSeconds: s.TerminationGraceSeconds,
	}
}

// NewFrontend creates one color's release.
func NewFrontend(ctx *pulumi.Context, name string, args *FrontendArgs, opts ...pulumi.ResourceOption) (*Frontend, error) {
	f := &Frontend{}
	if err := ctx.RegisterComponentResourceV2("ecommerce:index:Frontend", name, nil, f, opts...); err != nil {
		return nil, err
	}
	parent := pulumi.Parent(f)
	s, ns, id, release := args.Pod, args.Namespace, args.Identity, args.Release
	// Only the Deployment carries the version: a release on this color rolls the
	// Deployment and touches nothing else.
	labels := id.TierLabels()
	podLabels := id.Labels(release.Version)
	objectName := id.Object(id.Color)
	tls := s.TLSSecret != ""

	files, err := newFrontendFiles(ctx, name, objectName, ns, labels, args, parent)
	if err != nil {
		return nil, err
	}
	volumes := frontendVolumes(files)
	if tls {
		volumes = append(volumes, kube.SecretVolume("tls", pulumi.String(s.TLSSecret)))
	}
	annotations := pulumi.ToStringMap(args.Monitoring.Annotations(nginxExporterPort))
	annotations["checksum/config"] = files.Hash
	deploymentMeta := kube.WorkloadMeta(objectName, ns, podLabels)
	deploymentMeta.Annotations = pulumi.StringMap{
		"kube-score/ignore":      kube.KubeScoreIgnore["kube-score/ignore"],
		ReleaseContentAnnotation: pulumi.String(args.ReleaseContent),
	}
	deployment, err := appsv1.NewDeployment(ctx, name+"-deployment", &appsv1.DeploymentArgs{
		Metadata: deploymentMeta,
		Spec: appsv1.DeploymentSpecArgs{
			Replicas: pulumi.Int(release.Replicas),
			Selector: &metav1.LabelSelectorArgs{MatchLabels: id.Selector()},
			Strategy: kube.RollingUpdate(),
			Template: corev1.PodTemplateSpecArgs{
				Metadata: &metav1.ObjectMetaArgs{Labels: podLabels, Annotations: annotations},
				Spec: kube.PodOptions{
					ServiceAccount: args.ServiceAccount,
					Security:       args.Security,
					InitContainers: corev1.ContainerArray{logCollectorContainer(s.FluentBitImage, args.Security)},
					Containers: corev1.ContainerArray{
						nginxContainer(release.Image, s.Resources, tls, args.Security),
						nginxExporterContainer(s.ExporterImage, args.Security),
					},
					TerminationGrace: s.TerminationGraceSeconds,
					SpreadSelector:   kube.SpreadIf(args.Spread, id.Selector()),
					Volumes:          volumes,
				}.Spec(),
			},
		},
	}, append([]pulumi.ResourceOption{parent}, heldOptions(args.Held, "metadata.labels", "spec.template")...)...)
	if err != nil {
		return nil, fmt.Errorf("%s deployment: %w", objectName, err)
	}
	if err := kube.NewDisruptionBudget(ctx, name+"-pdb", objectName, ns, labels, id.Selector(), kube.MaxOneUnavailable(), parent); err != nil {
		return nil, fmt.Errorf("%s disruption budget: %w", objectName, err)
	}

	f.Deployment = deployment
	f.DeploymentName = deployment.Metadata.Name().Elem()
	if err := ctx.RegisterResourceOutputs(f, pulumi.Map{"deploymentName": f.DeploymentName}); err != nil {
		return nil, err
	}
	return f, nil
}

// frontendFiles are a color's ConfigMaps (nginx.conf with the log collector's files, and the
// dashboard) and a hash of their content, which rolls the pods when it changes.
type frontendFiles struct {
	Config, Dashboard pulumi.StringOutput
	Hash              pulumi.StringOutput
}

func newFrontendFiles(ctx *pulumi.Context, name, objectName string, ns pulumi.StringInput, labels pulumi.StringMap, args *FrontendArgs, parent pulumi.ResourceOption) (frontendFiles, error) {
	s, color := args.Pod, args.Identity.Color
	nginxConf := args.BackendHost.ToStringOutput().ApplyT(func(host string) (string, error) {
		settings := assets.NginxSettings{
			ListenPort: FrontendPort, StatusPort: nginxStatusPort,
			BackendHost: host, BackendPort: args.BackendPort,
			RateLimitPerSecond: s.RateLimitPerSecond, RateLimitBurst: s.RateLimitBurst,
			LoginRatePerMinute: s.LoginRatePerMinute, TrustedProxies: s.TrustedProxies,
			UpstreamTimeoutSeconds: s.UpstreamTimeoutSeconds,
			Color:                  color,
			HTMLRoot:               nginxHTMLRoot, AccessLogSyslog: accessLogSyslog, RuntimeDir: "/tmp", ReleaseDir: nginxReleaseDir,
		}
		if s.TLSSecret != "" {
			settings.TLSPort, settings.RedirectPort, settings.TLSDir = FrontendTLSPort, FrontendRedirectPort, nginxTLSDir
		}
		return assets.RenderNginxConf(settings)
	}).(pulumi.StringOutput)
	fluentBit := map[string]string{
		"fluent-bit.conf":         assets.File("fluent-bit.conf"),
		"fluent-bit-parsers.conf": assets.File("fluent-bit-parsers.conf"),
	}
	configData := pulumi.StringMap{"nginx.conf": nginxConf}
	for k, v := range fluentBit {
		configData[k] = pulumi.String(v)
	}
	held := append([]pulumi.ResourceOption{parent}, heldOptions(args.Held, "data")...)
	config, err := corev1.NewConfigMap(ctx, name+"-config", &corev1.ConfigMapArgs{
		Metadata: kube.Meta(objectName+"-config", ns, labels),
		Data:     configData,
	}, held...)
	if err != nil {
		return frontendFiles{}, fmt.Errorf("%s config map: %w", objectName, err)
	}
	dashboard, err := assets.Files("dashboard")
	if err != nil {
		return frontendFiles{}, err
	}
	html, err := corev1.NewConfigMap(ctx, name+"-dashboard", &corev1.ConfigMapArgs{
		Metadata: kube.Meta(objectName+"-dashboard", ns, labels),
		Data:     pulumi.ToStringMap(dashboard),
	}, held...)
	if err != nil {
		return frontendFiles{}, fmt.Errorf("%s dashboard config map: %w", objectName, err)
	}
	hash := nginxConf.ApplyT(func(conf string) string {
		return kube.Checksum(conf, kube.ChecksumOfData(fluentBit), kube.ChecksumOfData(dashboard))
	}).(pulumi.StringOutput)
	return frontendFiles{Config: config.Metadata.Name().Elem(), Dashboard: html.Metadata.Name().Elem(), Hash: hash}, nil
}

// frontendVolumes are the pod's volumes: the files, the pod's own release labels (downward
// API), and the writable emptyDirs.
func frontendVolumes(files frontendFiles) corev1.VolumeArray {
	return corev1.VolumeArray{
		kube.ConfigMapVolume("config", files.Config),
		corev1.VolumeArgs{Name: pulumi.String("fluent-bit-config"), ConfigMap: &corev1.ConfigMapVolumeSourceArgs{
			Name: files.Config,
			Items: corev1.KeyToPathArray{
				corev1.KeyToPathArgs{Key: pulumi.String("fluent-bit.conf"), Path: pulumi.String("fluent-bit.conf")},
				corev1.KeyToPathArgs{Key: pulumi.String("fluent-bit-parsers.conf"), Path: pulumi.String("fluent-bit-parsers.conf")},
			},
		}},
		kube.ConfigMapVolume("dashboard", files.Dashboard),
		kube.LabelFilesVolume("release", map[string]string{"color": kube.ColorKey, "version": "app.kubernetes.io/version"}),
		kube.EmptyDir("tmp", "64Mi"),
		kube.EmptyDir("fluent-bit-state", "64Mi"),
	}
}

// nginxContainer serves the dashboard, /health, /release/ and the API proxy, as the uid its
// image is built for; with TLS also HTTPS and the redirect port.
func nginxContainer(image string, size config.Resources, tls bool, security kube.PodSecurity) corev1.ContainerArgs {
	mounts := corev1.VolumeMountArray{
		kube.FileMount("config", "/etc/nginx/nginx.conf", "nginx.conf"),
		kube.ReadOnlyMount("dashboard", nginxHTMLRoot),
		kube.ReadOnlyMount("release", nginxReleaseDir),
		kube.Mount("tmp", "/tmp"),
	}
	if tls {
		mounts = append(mounts, kube.ReadOnlyMount("tls", nginxTLSDir))
	}
	return kube.Serving(corev1.ContainerArgs{
		Name:         pulumi.String("nginx"),
		Image:        pulumi.String(image),
		Ports:        nginxPorts(tls),
		VolumeMounts: mounts,
		// Drain: the endpoint is removed while nginx still serves, then nginx finishes
		// in-flight requests (worker_shutdown_timeout) and exits. A signal, not
		// `nginx -s quit`, which would re-read the conf and resolve the backend again.
		Lifecycle: &corev1.LifecycleArgs{PreStop: &corev1.LifecycleHandlerArgs{Exec: &corev1.ExecActionArgs{
			Command: pulumi.ToStringArray([]string{"/bin/sh", "-c", "sleep 5; pid=$(cat /tmp/nginx.pid); kill -QUIT \"$pid\"; while kill -0 \"$pid\" 2>/dev/null; do sleep 1; done"}),
		}}},
	}, size, security.ContainerSecurityContextAs(nginxUID), kube.ServingProbes(kube.HTTPCheck("/health", FrontendPort), kube.TCPCheck(FrontendPort)))
}

// logCollectorContainer is Fluent Bit: nginx's access log arrives over loopback syslog (UDP,
// so nginx never waits for it). It is a native sidecar (an init container that keeps
// running): the kubelet starts it and waits for its startup probe before nginx starts, and
// stops it only after nginx has drained, so no line of the pod's life goes to a closed port.
func logCollectorContainer(image string, security kube.PodSecurity) corev1.ContainerArgs {
	return kube.Serving(corev1.ContainerArgs{
		Name:          pulumi.String("log-collector"),
		Image:         pulumi.String(image),
		RestartPolicy: pulumi.String("Always"),
		Command:       pulumi.ToStringArray([]string{"/fluent-bit/bin/fluent-bit", "--config=/fluent-bit/etc/fluent-bit.conf"}),
		Ports:         corev1.ContainerPortArray{kube.ContainerPort("fluent-bit", fluentBitPort)},
		VolumeMounts: corev1.VolumeMountArray{
			kube.ReadOnlyMount("fluent-bit-config", "/fluent-bit/etc"),
			kube.Mount("fluent-bit-state", "/fluent-bit/state"),
		},
	}, kube.SidecarResources, security.ContainerSecurityContext(), kube.ServingProbes(kube.HTTPCheck("/api/v1/health", fluentBitPort), kube.TCPCheck(fluentBitPort)))
}

// nginxExporterContainer serves nginx's stub_status as Prometheus metrics on :9113.
func nginxExporterContainer(image string, security kube.PodSecurity) corev1.ContainerArgs {
	return kube.Serving(corev1.ContainerArgs{
		Name:  pulumi.String("metrics-exporter"),
		Image: pulumi.String(image),
		Args: pulumi.ToStringArray([]string{
			fmt.Sprintf("--nginx.scrape-uri=http://127.0.0.1:%d/stub_status", nginxStatusPort),
			fmt.Sprintf("--web.listen-address=:%d", nginxExporterPort),
		}),
		Ports: corev1.ContainerPortArray{kube.ContainerPort("metrics", nginxExporterPort)},
	}, kube.SidecarResources, security.ContainerSecurityContext(), kube.ServingProbes(kube.HTTPCheck("/metrics", nginxExporterPort), kube.TCPCheck(nginxExporterPort)))
}

// nginxPorts are the nginx container's ports: HTTP, and with TLS the HTTPS and redirect ports.
func nginxPorts(tls bool) corev1.ContainerPortArray {
	ports := corev1.ContainerPortArray{kube.ContainerPort("http", FrontendPort)}
	if tls {
		ports = append(ports, kube.ContainerPort("https", FrontendTLSPort), kube.ContainerPort("redirect", FrontendRedirectPort))
	}
	return ports
}

// heldOptions keep a held color's objects as they are in the cluster: Pulumi ignores the
// listed input paths (the state keeps the previous values, so the update changes nothing).
func heldOptions(held bool, paths ...string) []pulumi.ResourceOption {
	if !held {
		return nil
	}
	return []pulumi.ResourceOption{pulumi.IgnoreChanges(paths)}
}
