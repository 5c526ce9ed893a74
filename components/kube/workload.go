package kube

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"strconv"

	appsv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/apps/v1"
	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"ecommerce-platform/components/config"
)

// Meta is the ObjectMeta of a named object in the stack's namespace.
func Meta(name string, namespace pulumi.StringInput, labels pulumi.StringMap) *metav1.ObjectMetaArgs {
	return &metav1.ObjectMetaArgs{Name: pulumi.String(name), Namespace: namespace, Labels: labels}
}

// PodOptions describe a hardened pod; spec() adds what every pod of the platform shares:
// its own ServiceAccount without a mounted token, the hardened security context and,
// when asked, spreading across nodes.
type PodOptions struct {
	ServiceAccount   pulumi.StringInput
	Security         PodSecurity
	InitContainers   corev1.ContainerArray
	Containers       corev1.ContainerArray
	Volumes          corev1.VolumeArray
	TerminationGrace int
	RestartPolicy    string
	SpreadSelector   pulumi.StringMap // nil: no topology spread
}

func (o PodOptions) Spec() *corev1.PodSpecArgs {
	spec := &corev1.PodSpecArgs{
		// Always: the node checks the pinned tag against the registry on every pod start, so
		// a re-pushed tag or a private image is never served from another pod's cache.
		ServiceAccountName:           o.ServiceAccount,
		AutomountServiceAccountToken: pulumi.Bool(false),
		EnableServiceLinks:           pulumi.Bool(false),
		SecurityContext:              o.Security.podSecurityContext(),
		InitContainers:               alwaysPull(o.InitContainers),
		Containers:                   alwaysPull(o.Containers),
		Volumes:                      o.Volumes,
	}
	if o.TerminationGrace > 0 {
		spec.TerminationGracePeriodSeconds = pulumi.Int(o.TerminationGrace)
	}
	if o.RestartPolicy != "" {
		spec.RestartPolicy = pulumi.String(o.RestartPolicy)
	}
	if o.SpreadSelector != nil {
		spec.TopologySpreadConstraints, spec.Affinity = spread(o.SpreadSelector)
	}
	return spec
}

// alwaysPull sets every container's image pull policy to Always.
func alwaysPull(containers corev1.ContainerArray) corev1.ContainerArray {
	out := make(corev1.ContainerArray, len(containers))
	for i, c := range containers {
		args, ok := c.(corev1.ContainerArgs)
		if !ok {
			panic(fmt.Sprintf("container %d: want corev1.ContainerArgs, got %T", i, c))
		}
		args.ImagePullPolicy = pulumi.String("Always")
		out[i] = args
	}
	return out
}

// KubeScoreIgnore is put on every workload: the one kube-score check the program departs
// from on purpose. kube-score wants uids and gids of 10000 or more; the platform keeps the
// seed's 1000 (config runAsUser/runAsGroup/fsGroup) because changing the uid of an existing
// database breaks it (PostgreSQL refuses a data directory owned by another uid), and the
// images run as any uid. README "kube-score" says so.
var KubeScoreIgnore = pulumi.StringMap{"kube-score/ignore": pulumi.String(KubeScoreIgnoredUIDs)}

// KubeScoreIgnoredUIDs is that check's name.
const KubeScoreIgnoredUIDs = "container-security-context-user-group-id"

// RuntimeServiceName is kube-score's check that a StatefulSet's serviceName selects its pods:
// under Patroni, database-service selects only the member Patroni labels primary at run time.
const RuntimeServiceName = "statefulset-has-servicename"

// WorkloadMeta is the ObjectMeta of a Deployment, StatefulSet or CronJob.
func WorkloadMeta(name string, namespace pulumi.StringInput, labels pulumi.StringMap) *metav1.ObjectMetaArgs {
	m := Meta(name, namespace, labels)
	m.Annotations = KubeScoreIgnore
	return m
}

// Serving fills a long-running container's tail: its size, the hardened security context and
// its startup, readiness and liveness probes.
func Serving(c corev1.ContainerArgs, size config.Resources, security *corev1.SecurityContextArgs, p Probes) corev1.ContainerArgs {
	c.Resources = Requirements(size)
	c.SecurityContext = security
	c.StartupProbe, c.ReadinessProbe, c.LivenessProbe = p.Startup, p.Readiness, p.Liveness
	return c
}

// spreadTopologies are the failure domains pods of one workload are spread over: nodes, and
// zones where the nodes carry the well-known zone label (a node without it is one more domain
// of its own, so clusters without zones are unaffected).
var spreadTopologies = []string{"kubernetes.io/hostname", "topology.kubernetes.io/zone"}

// spread keeps pods of one workload apart: a preferred anti-affinity per node (what kube-score
// and the scheduler's own scoring look for) and a topology spread per node and zone. Both are
// preferences: a cluster with fewer nodes than pods still schedules them all, and the
// scheduler places each new pod where the fewest of its siblings run.
func spread(selector pulumi.StringMap) (corev1.TopologySpreadConstraintArray, *corev1.AffinityArgs) {
	var constraints corev1.TopologySpreadConstraintArray
	for _, key := range spreadTopologies {
		constraints = append(constraints, corev1.TopologySpreadConstraintArgs{
			MaxSkew:           pulumi.Int(1),
			TopologyKey:       pulumi.String(key),
			WhenUnsatisfiable: pulumi.String("ScheduleAnyway"),
			LabelSelector:     &metav1.LabelSelectorArgs{MatchLabels: selector},
		})
	}
	affinity := &corev1.AffinityArgs{PodAntiAffinity: &corev1.PodAntiAffinityArgs{
		PreferredDuringSchedulingIgnoredDuringExecution: corev1.WeightedPodAffinityTermArray{corev1.WeightedPodAffinityTermArgs{
			Weight: pulumi.Int(100),
			PodAffinityTerm: corev1.PodAffinityTermArgs{
				TopologyKey:   pulumi.String(spreadTopologies[0]),
				LabelSelector: &metav1.LabelSelectorArgs{MatchLabels: selector},
			},
		}},
	}}
	return constraints, affinity
}

// SpreadIf returns the selector to spread on, or nil when spreading is off.
func SpreadIf(on bool, selector pulumi.StringMap) pulumi.StringMap {
	if !on {
		return nil
	}
	return selector
}

// EmptyDir is a pod-private writable folder; a read-only root file system needs them.
func EmptyDir(name, sizeLimit string) corev1.VolumeArgs {
	return corev1.VolumeArgs{Name: pulumi.String(name), EmptyDir: &corev1.EmptyDirVolumeSourceArgs{SizeLimit: pulumi.String(sizeLimit)}}
}

func ConfigMapVolume(name string, configMap pulumi.StringInput) corev1.VolumeArgs {
	return corev1.VolumeArgs{Name: pulumi.String(name), ConfigMap: &corev1.ConfigMapVolumeSourceArgs{Name: configMap}}
}

// SecretVolume mounts a Secret readable by the pod's group only.
func SecretVolume(name string, secret pulumi.StringInput) corev1.VolumeArgs {
	return corev1.VolumeArgs{Name: pulumi.String(name), Secret: &corev1.SecretVolumeSourceArgs{SecretName: secret, DefaultMode: pulumi.Int(0o440)}}
}

// SecretKeysVolume mounts only the named keys of a Secret (each as a file of its name),
// readable by the pod's group only: a container gets exactly the values it reads.
func SecretKeysVolume(name string, secret pulumi.StringInput, keys ...string) corev1.VolumeArgs {
	items := corev1.KeyToPathArray{}
	for _, k := range keys {
		items = append(items, corev1.KeyToPathArgs{Key: pulumi.String(k), Path: pulumi.String(k)})
	}
	return corev1.VolumeArgs{Name: pulumi.String(name), Secret: &corev1.SecretVolumeSourceArgs{SecretName: secret, DefaultMode: pulumi.Int(0o440), Items: items}}
}

// MemoryDir is an emptyDir in memory (counted against the pod's memory limit): for values
// that must never reach a node's disk.
func MemoryDir(name, sizeLimit string) corev1.VolumeArgs {
	return corev1.VolumeArgs{Name: pulumi.String(name), EmptyDir: &corev1.EmptyDirVolumeSourceArgs{Medium: pulumi.String("Memory"), SizeLimit: pulumi.String(sizeLimit)}}
}

// LabelFilesVolume exposes some of the pod's own labels as files (downward API), so a
// process can read what release it is without its config changing per release.
func LabelFilesVolume(name string, files map[string]string) corev1.VolumeArgs {
	items := corev1.DownwardAPIVolumeFileArray{}
	for _, path := range slices.Sorted(maps.Keys(files)) {
		items = append(items, corev1.DownwardAPIVolumeFileArgs{
			Path:     pulumi.String(path),
			FieldRef: &corev1.ObjectFieldSelectorArgs{FieldPath: pulumi.Sprintf("metadata.labels['%s']", files[path])},
		})
	}
	return corev1.VolumeArgs{Name: pulumi.String(name), DownwardAPI: &corev1.DownwardAPIVolumeSourceArgs{Items: items}}
}

func Mount(volume, path string) corev1.VolumeMountArgs {
	return corev1.VolumeMountArgs{Name: pulumi.String(volume), MountPath: pulumi.String(path)}
}

func ReadOnlyMount(volume, path string) corev1.VolumeMountArgs {
	return corev1.VolumeMountArgs{Name: pulumi.String(volume), MountPath: pulumi.String(path), ReadOnly: pulumi.Bool(true)}
}

// FileMount mounts one key of a volume as a single file.
func FileMount(volume, path, key string) corev1.VolumeMountArgs {
	return corev1.VolumeMountArgs{Name: pulumi.String(volume), MountPath: pulumi.String(path), SubPath: pulumi.String(key), ReadOnly: pulumi.Bool(true)}
}

func ContainerPort(name string, port int) corev1.ContainerPortArgs {
	return corev1.ContainerPortArgs{Name: pulumi.String(name), ContainerPort: pulumi.Int(port), Protocol: pulumi.String("TCP")}
}

func Env(name, value string) corev1.EnvVarArgs {
	return corev1.EnvVarArgs{Name: pulumi.String(name), Value: pulumi.String(value)}
}

// FieldEnv is a field of the pod itself (downward API): its name, namespace or address.
func FieldEnv(name, fieldPath string) corev1.EnvVarArgs {
	return corev1.EnvVarArgs{Name: pulumi.String(name), ValueFrom: &corev1.EnvVarSourceArgs{
		FieldRef: &corev1.ObjectFieldSelectorArgs{FieldPath: pulumi.String(fieldPath)},
	}}
}

// SecretEnv reads one key of a Secret, so the pod spec never holds the value.
func SecretEnv(name string, secret pulumi.StringInput, key string) corev1.EnvVarArgs {
	return corev1.EnvVarArgs{Name: pulumi.String(name), ValueFrom: &corev1.EnvVarSourceArgs{
		SecretKeyRef: &corev1.SecretKeySelectorArgs{Name: secret, Key: pulumi.String(key)},
	}}
}

// Checksum of configuration text, put on a pod template so a config change rolls the pods
// without replacing the workload.
func Checksum(texts ...string) string {
	h := sha256.New()
	for _, t := range texts {
		h.Write([]byte(t))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// ChecksumOfData hashes a ConfigMap's data in key order.
func ChecksumOfData(data map[string]string) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(data)) {
		parts = append(parts, k, data[k])
	}
	return Checksum(parts...)
}

// Scrapers is who scrapes the pods' metrics ports: the namespace the NetworkPolicies admit
// on them, and whether pods carry the prometheus.io/* annotations (monitoring=annotations;
// with the operator its PodMonitors find them, with none nothing does).
type Scrapers struct {
	Namespace string
	Annotate  bool
}

// Annotations ask Prometheus to scrape a pod's metrics port, when pods are annotated.
func (s Scrapers) Annotations(port int) map[string]string {
	if !s.Annotate {
		return map[string]string{}
	}
	return map[string]string{"prometheus.io/scrape": "true", "prometheus.io/port": strconv.Itoa(port), "prometheus.io/path": "/metrics"}
}

// RollingUpdate never takes a serving pod away before its replacement is ready.
func RollingUpdate() *appsv1.DeploymentStrategyArgs {
	return &appsv1.DeploymentStrategyArgs{
		Type: pulumi.String("RollingUpdate"),
		RollingUpdate: &appsv1.RollingUpdateDeploymentArgs{
			MaxUnavailable: pulumi.Int(0),
			MaxSurge:       pulumi.Int(1),
		},
	}
}

// ClaimRetention keeps or deletes a StatefulSet's claims, alike when it is deleted and when
// it is scaled down (databasePvcRetention).
func ClaimRetention(policy string) *appsv1.StatefulSetPersistentVolumeClaimRetentionPolicyArgs {
	return &appsv1.StatefulSetPersistentVolumeClaimRetentionPolicyArgs{WhenDeleted: pulumi.String(policy), WhenScaled: pulumi.String(policy)}
}
