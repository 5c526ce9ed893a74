package database

import (
	"fmt"
	"net/url"
	"strconv"

	appsv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/apps/v1"
	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	networkingv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/networking/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"ecommerce-platform/components/config"
	"ecommerce-platform/components/kube"
)

// archiverSet is what the archiver needs.
type archiverSet struct {
	Resource       string
	Namespace      pulumi.StringInput
	Identity       kube.Identity // of the archiver pods
	Security       kube.PodSecurity
	Settings       config.Database
	ServiceAccount pulumi.StringInput
	Secret         pulumi.StringInput // database-credentials (replication-password)
	Offsite        pulumi.StringInput // database-offsite ("" without off-site copies)
	Config         pulumi.StringInput // database-config, holding the scripts
	PrimaryHost    pulumi.StringInput
	PrimaryPods    pulumi.StringMap
	Spread         bool
	Monitoring     kube.Scrapers
}

// newArchiver runs the database-archiver StatefulSet: WAL streamed from the primary through a
// slot of its own into a claim of its own (never the database's), verified base backups on a
// schedule with retention, and, when configured, copies of both in object storage. Its
// NetworkPolicy lets it reach only the primary and the object storage endpoint.
func newArchiver(ctx *pulumi.Context, a archiverSet, opts ...pulumi.ResourceOption) error {
	s, ns := a.Settings, a.Namespace
	labels := a.Identity.Labels(kube.VersionOf(s.Image))
	name := a.Identity.Object("archiver")
	headless, err := kube.NewService(ctx, ns, labels, kube.Service{
		Resource: a.Resource + "-service", Name: name, Type: "Headless", Selector: a.Identity.Selector(),
		Port: PostgresPort, TargetPort: PostgresPort, PortName: "postgres",
	}, opts...)
	if err != nil {
		return fmt.Errorf("archiver headless service: %w", err)
	}
	containers := corev1.ContainerArray{
		walReceiverContainer(s, a.PrimaryHost, a.Security), baseBackupContainer(s, a.PrimaryHost, a.Security), archiveMetricsContainer(s, a.Security),
	}
	egress := networkingv1.NetworkPolicyEgressRuleArray{kube.EgressRule(PostgresPort, kube.FromPods(a.PrimaryPods))}
	volumes := corev1.VolumeArray{
		kube.ConfigMapVolume("config", a.Config),
		kube.SecretKeysVolume("secrets", a.Secret, replicationPasswordKey),
		kube.EmptyDir("tmp", "64Mi"),
		kube.EmptyDir("status", "1Mi"),
	}
	if s.Offsite.Enabled {
		containers = append(containers, offsiteSyncContainer(s, a.Offsite, a.Security))
		egress = append(egress, objectStorageEgress(s.Offsite)...)
		volumes = append(volumes, offsiteKeyVolume(a.Offsite))
	}
	if _, err := appsv1.NewStatefulSet(ctx, a.Resource+"-statefulset", &appsv1.StatefulSetArgs{
		Metadata: kube.WorkloadMeta(name, ns, labels),
		Spec: appsv1.StatefulSetSpecArgs{
			ServiceName:                          headless.Metadata.Name().Elem(),
			Replicas:                             pulumi.Int(1),
			Selector:                             &metav1.LabelSelectorArgs{MatchLabels: a.Identity.Selector()},
			PersistentVolumeClaimRetentionPolicy: kube.ClaimRetention(s.PVCRetention),
			Template: corev1.PodTemplateSpecArgs{
				Metadata: &metav1.ObjectMetaArgs{Labels: labels, Annotations: pulumi.ToStringMap(a.Monitoring.Annotations(archiveMetricsPort))},
				Spec: kube.PodOptions{
					ServiceAccount:   a.ServiceAccount,
					Security:         a.Security,
					Containers:       containers,
					TerminationGrace: 30,
					SpreadSelector:   kube.SpreadIf(a.Spread, a.Identity.Selector()),
					Volumes:          volumes,
				}.Spec(),
			},
			VolumeClaimTemplates: corev1.PersistentVolumeClaimTypeArray{
				claimTemplate("archive", labels, s.Archive.StorageClass, s.Archive.StorageSize),
			},
		},
	}, opts...); err != nil {
		return fmt.Errorf("archiver statefulset: %w", err)
	}
	if err := kube.NewAllowPolicy(ctx, ns, kube.AllowPolicy{
		Resource: a.Resource + "-netpol", Name: name, Labels: labels, Pods: a.Identity.Selector(), Egress: egress,
		Ingress: networkingv1.NetworkPolicyIngressRuleArray{kube.IngressRule(archiveMetricsPort, kube.FromNamespace(a.Monitoring.Namespace))},
	}, opts...); err != nil {
		return fmt.Errorf("archiver network policy: %w", err)
	}
	return nil
}

// newOffsiteSecret holds the object storage keys, for the off-site copies and recoveries, and
// the key the archive is encrypted with before it leaves the cluster.
func newOffsiteSecret(ctx *pulumi.Context, name string, id kube.Identity, ns pulumi.StringInput, labels pulumi.StringMap, keyID, secretKey, encryptionKey pulumi.StringInput, opts ...pulumi.ResourceOption) (pulumi.StringOutput, error) {
	secret, err := corev1.NewSecret(ctx, name+"-offsite", &corev1.SecretArgs{
		Metadata:   kube.Meta(id.Object("offsite"), ns, labels),
		Type:       pulumi.String("Opaque"),
		StringData: pulumi.StringMap{"access-key-id": keyID, "secret-access-key": secretKey, offsiteKeyFile: encryptionKey},
	}, opts...)
	if err != nil {
		return pulumi.StringOutput{}, fmt.Errorf("offsite secret: %w", err)
	}
	return secret.Metadata.Name().Elem(), nil
}

// ObjectStoragePort is the TCP port of the S3 endpoint (443 unless the URL names one).
func ObjectStoragePort(endpoint string) int {
	u, err := url.Parse(endpoint)
	if err != nil {
		return 443
	}
	if p, err := strconv.Atoi(u.Port()); err == nil {
		return p
	}
	if u.Scheme == "http" {
		return 80
	}
	return 443
}

// objectStorageEgress is what a pod that talks to the S3 endpoint may reach, on the
// endpoint's port only: nothing for a loopback endpoint (no packet leaves the pod), the pods
// of the Service's namespace for a cluster Service (<service>.<namespace>.svc...), otherwise the
// endpoint's own address when it is named by one, any address for a host name
// (endpointAddress). Config refuses plain
// http to an external host unless databaseOffsiteAllowInsecureHttp is set.
func objectStorageEgress(o config.Offsite) networkingv1.NetworkPolicyEgressRuleArray {
	port := ObjectStoragePort(o.Endpoint)
	switch scope, namespace := o.EndpointScope(); scope {
	case config.EndpointLoopback:
		return nil
	case config.EndpointCluster:
		return networkingv1.NetworkPolicyEgressRuleArray{kube.EgressRule(port, kube.FromNamespace(namespace))}
	default:
		return networkingv1.NetworkPolicyEgressRuleArray{kube.EgressRule(port, endpointAddress(o.Endpoint))}
	}
}
