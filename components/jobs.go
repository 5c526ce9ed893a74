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
	if err := newJobPolicy(ctx, g.Namespace, jobPolicy{g.PolicyResource, g.Name, g.Labels, g.Identity, g.Reaches, g.Port}, opts...); err != nil {
		return nil, err
	}
	return job, nil
}

// jobPolicy lets a job's pods reach one set of pods on one port, and nothing else.
type jobPolicy struct {
	Resource, Name string
	Labels         pulumi.StringMap
	Identity       Identity // of the job's pods
	Reaches        pulumi.StringMap
	Port           int
}

func newJobPolicy(ctx *pulumi.Context, ns pulumi.StringInput, p jobPolicy, opts ...pulumi.ResourceOption) error {
	if err := newAllowPolicy(ctx, ns, allowPolicy{
		Resource: p.Resource, Name: p.Name, Labels: p.Labels, Pods: p.Identity.Selector(),
		Egress: networkingv1.NetworkPolicyEgressRuleArray{egressRule(p.Port, fromPods(p.Reaches))},
	}, opts...); err != nil {
		return fmt.Errorf("%s network policy: %w", p.Name, err)
	}
	return nil
}

// cronJob is a scheduled Job of the database tier (the nightly backup, the release of unpaid
// orders): one run at a time (a run still going when the next is due makes it wait), a run
// missed while the controller was down starts within StartingDeadline seconds, three runs of
// each outcome are kept for inspection, and its pods may reach one set of pods on one port,
// nothing else.
type cronJob struct {
	JobResource, PolicyResource string // Pulumi names
	Name                        string // Kubernetes name of the CronJob and its NetworkPolicy
	Namespace                   pulumi.StringInput
	Identity                    Identity // of its pods
	Labels                      pulumi.StringMap
	Schedule                    string
	StartingDeadline            int              // seconds
	Pod                         podOptions       // RestartPolicy is set to OnFailure
	BackoffLimit, Deadline      int              // retries of a run; seconds a run may take
	Reaches                     pulumi.StringMap // the pods it may call
	Port                        int
}

func newCronJob(ctx *pulumi.Context, c cronJob, opts ...pulumi.ResourceOption) error {
	c.Pod.RestartPolicy = "OnFailure"
	if _, err := batchv1.NewCronJob(ctx, c.JobResource, &batchv1.CronJobArgs{
		Metadata: workloadMeta(c.Name, c.Namespace, c.Labels),
		Spec: batchv1.CronJobSpecArgs{
			Schedule: pulumi.String(c.Schedule),
			// Missed runs never pile up: past the deadline a run waits for the next schedule
			// (and never counts towards the 100 missed runs after which a CronJob stops).
			StartingDeadlineSeconds:    pulumi.Int(c.StartingDeadline),
			ConcurrencyPolicy:          pulumi.String("Forbid"),
			SuccessfulJobsHistoryLimit: pulumi.Int(3),
			FailedJobsHistoryLimit:     pulumi.Int(3),
			JobTemplate: batchv1.JobTemplateSpecArgs{
				Metadata: &metav1.ObjectMetaArgs{Labels: c.Labels},
				Spec: batchv1.JobSpecArgs{
					BackoffLimit:          pulumi.Int(c.BackoffLimit),
					ActiveDeadlineSeconds: pulumi.Int(c.Deadline),
					Template: corev1.PodTemplateSpecArgs{
						Metadata: &metav1.ObjectMetaArgs{Labels: c.Labels},
						Spec:     c.Pod.spec(),
					},
				},
			},
		},
	}, opts...); err != nil {
		return fmt.Errorf("%s cron job: %w", c.Name, err)
	}
	return newJobPolicy(ctx, c.Namespace, jobPolicy{c.PolicyResource, c.Name, c.Labels, c.Identity, c.Reaches, c.Port}, opts...)
}
