package components

import (
	"fmt"

	batchv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/batch/v1"
	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	networkingv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/networking/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// gateJob is a Job that other resources wait for (the credentials sync, the promotion check):
// it runs once per set of inputs, which its pod template carries (a change replaces it, so it
// runs again), a failed run runs again on the next `pulumi up` (pulumi.com/replaceUnready), and
// its pods may reach one set of pods on one port, nothing else.
type gateJob struct {
	JobResource, PolicyResource string // Pulumi names
	Name                        string // Kubernetes name of the Job and its NetworkPolicy
	Namespace                   pulumi.StringInput
	Identity                    Identity // of its pods
	Labels                      pulumi.StringMap
	Inputs                      pulumi.StringMap // pod template annotations: what it runs for
	Pod                         podOptions       // RestartPolicy is set to Never
	BackoffLimit, Deadline      int
	Reaches                     pulumi.StringMap // the pods it may call
	Port                        int
}

func newGateJob(ctx *pulumi.Context, g gateJob, opts ...pulumi.ResourceOption) (*batchv1.Job, error) {
	jobMeta := workloadMeta(g.Name, g.Namespace, g.Labels)
	jobMeta.Annotations = pulumi.StringMap{"pulumi.com/replaceUnready": pulumi.String("true"), "kube-score/ignore": kubeScoreIgnore["kube-score/ignore"]}
	g.Pod.RestartPolicy = "Never"
	job, err := batchv1.NewJob(ctx, g.JobResource, &batchv1.JobArgs{
		Metadata: jobMeta,
		Spec: batchv1.JobSpecArgs{
			BackoffLimit:          pulumi.Int(g.BackoffLimit),
			ActiveDeadlineSeconds: pulumi.Int(g.Deadline),
			Template: corev1.PodTemplateSpecArgs{
				Metadata: &metav1.ObjectMetaArgs{Labels: g.Labels, Annotations: g.Inputs},
				Spec:     g.Pod.spec(),
			},
		},
	}, opts...)
	if err != nil {
		return nil, fmt.Errorf("%s job: %w", g.Name, err)
	}
	if err := newAllowPolicy(ctx, g.Namespace, allowPolicy{
		Resource: g.PolicyResource, Name: g.Name, Labels: g.Labels, Pods: g.Identity.Selector(),
		Egress: networkingv1.NetworkPolicyEgressRuleArray{egressRule(g.Port, fromPods(g.Reaches))},
	}, opts...); err != nil {
		return nil, fmt.Errorf("%s network policy: %w", g.Name, err)
	}
	return job, nil
}
