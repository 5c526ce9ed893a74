package kube

import (
	"math"
	"strconv"
	"strings"

	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"ecommerce-platform/components/config"
)

// Sizes of the containers whose size is not a per-stack decision: sidecars, ambassadors and
// one-shot jobs. Main containers take theirs from config.
var (
	SidecarResources = config.Resources{CPURequest: "10m", CPULimit: "100m", MemoryRequest: "32Mi", MemoryLimit: "64Mi"}
	ProxyResources   = config.Resources{CPURequest: "50m", CPULimit: "500m", MemoryRequest: "64Mi", MemoryLimit: "128Mi"}
	InitResources    = config.Resources{CPURequest: "10m", CPULimit: "100m", MemoryRequest: "16Mi", MemoryLimit: "64Mi"}
	BackupResources  = config.Resources{CPURequest: "100m", CPULimit: "500m", MemoryRequest: "128Mi", MemoryLimit: "512Mi"}
)

// Ephemeral storage of every container: with a read-only root file system a container
// writes outside its volumes only its log, which the kubelet rotates (by default at most five
// files of 10Mi). The limits of a pod's containers add up to its budget for that plus its
// emptyDirs (64Mi or less each), so a runaway writer gets its pod evicted instead of filling
// the node's disk.
const (
	EphemeralStorageRequest = "64Mi"
	EphemeralStorageLimit   = "256Mi"
)

// args turns Resources into the Kubernetes requirements of a container.
func Requirements(r config.Resources) *corev1.ResourceRequirementsArgs {
	return &corev1.ResourceRequirementsArgs{
		Requests: pulumi.StringMap{
			"cpu": pulumi.String(r.CPURequest), "memory": pulumi.String(r.MemoryRequest),
			"ephemeral-storage": pulumi.String(EphemeralStorageRequest),
		},
		Limits: pulumi.StringMap{
			"cpu": pulumi.String(r.CPULimit), "memory": pulumi.String(r.MemoryLimit),
			"ephemeral-storage": pulumi.String(EphemeralStorageLimit),
		},
	}
}

// WholeCPUs is a CPU quantity (e.g. 500m, 2) rounded up to whole CPUs, at least 1: the
// worker threads a container's CPU limit can keep busy.
func WholeCPUs(quantity string) int {
	milli, err := 0, error(nil)
	if m, ok := strings.CutSuffix(quantity, "m"); ok {
		milli, err = strconv.Atoi(m)
	} else {
		var cpus float64
		cpus, err = strconv.ParseFloat(quantity, 64)
		milli = int(math.Ceil(cpus * 1000))
	}
	if err != nil || milli <= 1000 {
		return 1
	}
	return (milli + 999) / 1000
}
