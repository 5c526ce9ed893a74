package components

// Capacity that adds up: before anything is registered, the program rehearses the stack
// (the same component code under Pulumi's mock engine, in memory), sums what the namespace
// must admit at once with every workload at its maximum, and refuses a stack whose
// ResourceQuota cannot admit it. Otherwise the backend's autoscaler stops short of its own
// maximum and a rollout at peak is refused by the quota: nothing would say so.

import (
	"encoding/json"
	"fmt"
	"sort"
	"sync"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	k8sresource "k8s.io/apimachinery/pkg/api/resource"
)

// KubeObject is one Kubernetes object as the program registers it: its type token (e.g.
// kubernetes:apps/v1:Deployment), its Pulumi name and its inputs as plain JSON values.
type KubeObject struct {
	Type   string
	Name   string
	Inputs map[string]any
}

// decode reads an object's inputs into a Kubernetes API type.
func decodeKube[T any](o KubeObject) (T, error) {
	var out T
	js, err := json.Marshal(o.Inputs)
	if err != nil {
		return out, err
	}
	if err := json.Unmarshal(js, &out); err != nil {
		return out, fmt.Errorf("%s %s: %w", o.Type, o.Name, err)
	}
	return out, nil
}

// Peak is what the namespace must admit at once, in ResourceQuota's own resource names.
type Peak map[corev1.ResourceName]*k8sresource.Quantity

func (p Peak) add(name corev1.ResourceName, q k8sresource.Quantity, times int) {
	if p[name] == nil {
		p[name] = k8sresource.NewQuantity(0, q.Format)
	}
	for range times {
		p[name].Add(q)
	}
}

// PodRequirements is one pod's requests and limits as the scheduler counts them: the app
// containers plus the native sidecars, or the largest init container (plus the sidecars
// started before it), whichever is larger.
func PodRequirements(spec corev1.PodSpec) (requests, limits corev1.ResourceList) {
	requests, limits = corev1.ResourceList{}, corev1.ResourceList{}
	for _, pick := range []struct {
		out corev1.ResourceList
		of  func(corev1.Container) corev1.ResourceList
	}{
		{requests, func(c corev1.Container) corev1.ResourceList { return c.Resources.Requests }},
		{limits, func(c corev1.Container) corev1.ResourceList { return c.Resources.Limits }},
	} {
		for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			running, sidecars, initPeak := k8sresource.Quantity{}, k8sresource.Quantity{}, k8sresource.Quantity{}
			for _, c := range spec.InitContainers {
				q := pick.of(c)[name]
				if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
					sidecars.Add(q)
					continue
				}
				during := sidecars.DeepCopy()
				during.Add(q)
				if during.Cmp(initPeak) > 0 {
					initPeak = during
				}
			}
			running.Add(sidecars)
			for _, c := range spec.Containers {
				running.Add(pick.of(c)[name])
			}
			if initPeak.Cmp(running) > 0 {
				running = initPeak
			}
			pick.out[name] = running
		}
	}
	return requests, limits
}

// KubeObject type tokens the peak reads.
const (
	typeDeployment  = "kubernetes:apps/v1:Deployment"
	typeStatefulSet = "kubernetes:apps/v1:StatefulSet"
	typeCronJob     = "kubernetes:batch/v1:CronJob"
	typeJob         = "kubernetes:batch/v1:Job"
	typeHPA         = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
	typePVC         = "kubernetes:core/v1:PersistentVolumeClaim"
	typeQuota       = "kubernetes:core/v1:ResourceQuota"
)

// NamespacePeak sums every workload at its maximum: HPA max (else replicas) plus one surge
// pod per Deployment, StatefulSet replicas, one pod per Job and CronJob; and every claim
// (StatefulSet claim templates once per replica).
func NamespacePeak(objects []KubeObject) (Peak, error) {
	hpaMax := map[string]int{}
	for _, o := range objects {
		if o.Type != typeHPA {
			continue
		}
		hpa, err := decodeKube[autoscalingv2.HorizontalPodAutoscaler](o)
		if err != nil {
			return nil, err
		}
		hpaMax[hpa.Spec.ScaleTargetRef.Name] = int(hpa.Spec.MaxReplicas)
	}
	p := Peak{}
	for _, o := range objects {
		pods, pod, ok, err := peakPods(o, hpaMax, p)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		requests, limits := PodRequirements(pod)
		p.add(corev1.ResourceRequestsCPU, requests[corev1.ResourceCPU], pods)
		p.add(corev1.ResourceRequestsMemory, requests[corev1.ResourceMemory], pods)
		p.add(corev1.ResourceLimitsCPU, limits[corev1.ResourceCPU], pods)
		p.add(corev1.ResourceLimitsMemory, limits[corev1.ResourceMemory], pods)
		p.add(corev1.ResourcePods, *k8sresource.NewQuantity(1, k8sresource.DecimalSI), pods)
	}
	return p, nil
}

// peakPods is how many pods of a workload can run at once and its pod spec (ok false for
// objects that run no pods); it adds the object's claims to p.
func peakPods(o KubeObject, hpaMax map[string]int, p Peak) (int, corev1.PodSpec, bool, error) {
	switch o.Type {
	case typeDeployment:
		d, err := decodeKube[appsv1.Deployment](o)
		pods := 1
		if d.Spec.Replicas != nil { // unset when the HPA owns the count
			pods = int(*d.Spec.Replicas)
		}
		if max, ok := hpaMax[d.Name]; ok {
			pods = max
		}
		return pods + 1, d.Spec.Template.Spec, true, err // +1: the surge pod of a rolling update
	case typeStatefulSet:
		s, err := decodeKube[appsv1.StatefulSet](o)
		pods := 1
		if s.Spec.Replicas != nil {
			pods = int(*s.Spec.Replicas)
		}
		for _, claim := range s.Spec.VolumeClaimTemplates {
			p.add(corev1.ResourceRequestsStorage, claim.Spec.Resources.Requests[corev1.ResourceStorage], pods)
		}
		return pods, s.Spec.Template.Spec, true, err
	case typeCronJob:
		c, err := decodeKube[batchv1.CronJob](o)
		return 1, c.Spec.JobTemplate.Spec.Template.Spec, true, err
	case typeJob:
		j, err := decodeKube[batchv1.Job](o)
		return 1, j.Spec.Template.Spec, true, err
	case typePVC:
		claim, err := decodeKube[corev1.PersistentVolumeClaim](o)
		p.add(corev1.ResourceRequestsStorage, claim.Spec.Resources.Requests[corev1.ResourceStorage], 1)
		return 0, corev1.PodSpec{}, false, err
	}
	return 0, corev1.PodSpec{}, false, nil
}

// quotaKeys names the config key behind each bound of the ResourceQuota (newQuotas).
var quotaKeys = map[corev1.ResourceName]string{
	corev1.ResourceRequestsCPU:     "quotaRequestsCpu",
	corev1.ResourceRequestsMemory:  "quotaRequestsMemory",
	corev1.ResourceLimitsCPU:       "quotaLimitsCpu",
	corev1.ResourceLimitsMemory:    "quotaLimitsMemory",
	corev1.ResourceRequestsStorage: "quotaStorage",
	corev1.ResourcePods:            "quotaPods",
}

// QuotaShortfalls lists, for each bound of the stack's ResourceQuota below its peak, the
// key, the quota and the peak; none when the quota admits the peak.
func QuotaShortfalls(objects []KubeObject) ([]string, Peak, error) {
	peak, err := NamespacePeak(objects)
	if err != nil {
		return nil, nil, err
	}
	var problems []string
	for _, o := range objects {
		if o.Type != typeQuota {
			continue
		}
		quota, err := decodeKube[corev1.ResourceQuota](o)
		if err != nil {
			return nil, nil, err
		}
		for name, hard := range quota.Spec.Hard {
			need := peak[name]
			if need == nil || need.Cmp(hard) <= 0 {
				continue
			}
			problems = append(problems, fmt.Sprintf("%s: the peak needs %s, %s admits %s", name, need.String(), quotaKeys[name], hard.String()))
		}
	}
	sort.Strings(problems)
	return problems, peak, nil
}

// rehearsal records what the program registers, without registering anything anywhere.
type rehearsal struct {
	mu      sync.Mutex
	objects []KubeObject
}

func (r *rehearsal) NewResource(args pulumi.MockResourceArgs) (string, resource.PropertyMap, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.objects = append(r.objects, KubeObject{Type: args.TypeToken, Name: args.Name, Inputs: PlainInputs(args.Inputs)})
	return args.Name + "-id", args.Inputs, nil
}

func (r *rehearsal) Call(args pulumi.MockCallArgs) (resource.PropertyMap, error) {
	return args.Args, nil
}

// PlainInputs are a registration's inputs as plain Go values, the way Kubernetes objects
// decode from JSON: secrets and outputs unwrapped, unknown values nil. The capacity rehearsal
// reads them, and so does the tests' mock.
func PlainInputs(pm resource.PropertyMap) map[string]any {
	out := map[string]any{}
	for k, v := range pm {
		out[string(k)] = kubeValue(v)
	}
	return out
}

func kubeValue(v resource.PropertyValue) any {
	switch {
	case v.IsSecret():
		return kubeValue(v.SecretValue().Element)
	case v.IsOutput():
		return kubeValue(v.OutputValue().Element)
	case v.IsObject():
		return PlainInputs(v.ObjectValue())
	case v.IsArray():
		var out []any
		for _, e := range v.ArrayValue() {
			out = append(out, kubeValue(e))
		}
		return out
	case v.IsComputed():
		return nil
	default:
		return v.Mappable()
	}
}
