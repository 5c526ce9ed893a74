package kube

import (
	"fmt"

	batchv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/batch/v1"
	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	networkingv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/networking/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// JobRun is what a Job and a CronJob's runs share: their names, the pods' identity and
// template, retries and deadline, and the one set of pods on one port those pods may reach
// (nothing else).
type JobRun struct {
	JobResource, PolicyResource string // Pulumi names
	Name                        string // Kubernetes name of the Job or CronJob and its NetworkPolicy
	Namespace                   pulumi.StringInput
	Identity                    Identity // of its pods
	Labels                      pulumi.StringMap
	Pod                         PodOptions
	BackoffLimit, Deadline      int              // retries of a run; seconds a run may take
	Reaches                     pulumi.StringMap // the pods it may call
	Port                        int
}

// Spec is the Job spec of one run, its pods restarting as restartPolicy says and carrying
// podAnnotations (nil: none).
func (j JobRun) Spec(restartPolicy string, podAnnotations pulumi.StringMap) batchv1.JobSpecArgs {
	j.Pod.RestartPolicy = restartPolicy
	podMeta := &metav1.ObjectMetaArgs{Labels: j.Labels}
	if podAnnotations != nil {
		podMeta.Annotations = podAnnotations
	}
	return batchv1.JobSpecArgs{
		BackoffLimit:          pulumi.Int(j.BackoffLimit),
		ActiveDeadlineSeconds: pulumi.Int(j.Deadline),
		Template:              corev1.PodTemplateSpecArgs{Metadata: podMeta, Spec: j.Pod.Spec()},
	}
}

// policy lets the run's pods reach Reaches on Port, and nothing else.
func (j JobRun) policy(ctx *pulumi.Context, opts ...pulumi.ResourceOption) error {
	if err := NewAllowPolicy(ctx, j.Namespace, AllowPolicy{
		Resource: j.PolicyResource, Name: j.Name, Labels: j.Labels, Pods: j.Identity.Selector(),
		Egress: networkingv1.NetworkPolicyEgressRuleArray{EgressRule(j.Port, FromPods(j.Reaches))},
	}, opts...); err != nil {
		return fmt.Errorf("%s network policy: %w", j.Name, err)
	}
	return nil
}

// GateJob is a Job that other resources wait for (the credentials sync, the promotion check):
// it runs once per set of inputs, which its pod template carries (a change replaces it, so it
// runs again), and a failed run runs again on the next `pulumi up` (pulumi.com/replaceUnready).
// Its pods never restart in place.
type GateJob struct {
	JobRun
	Inputs pulumi.StringMap // pod template annotations: what it runs for
}

func NewGateJob(ctx *pulumi.Context, g GateJob, opts ...pulumi.ResourceOption) (*batchv1.Job, error) {
	jobMeta := WorkloadMeta(g.Name, g.Namespace, g.Labels)
	jobMeta.Annotations = pulumi.StringMap{"pulumi.com/replaceUnready": pulumi.String("true"), "kube-score/ignore": KubeScoreIgnore["kube-score/ignore"]}
	job, err := batchv1.NewJob(ctx, g.JobResource, &batchv1.JobArgs{
		Metadata: jobMeta,
		Spec:     g.Spec("Never", g.Inputs),
	}, opts...)
	if err != nil {
		return nil, fmt.Errorf("%s job: %w", g.Name, err)
	}
	if err := g.policy(ctx, opts...); err != nil {
		return nil, err
	}
	return job, nil
}

// CronJob is a scheduled Job of the database tier (the nightly backup, the release of unpaid
// orders): one run at a time (a run still going when the next is due makes it wait), a run
// missed while the controller was down starts within StartingDeadline seconds, three runs of
// each outcome are kept for inspection. A failed container restarts in its pod (OnFailure).
type CronJob struct {
	JobRun
	Schedule         string
	StartingDeadline int // seconds
}

func NewCronJob(ctx *pulumi.Context, c CronJob, opts ...pulumi.ResourceOption) error {
	if _, err := batchv1.NewCronJob(ctx, c.JobResource, &batchv1.CronJobArgs{
		Metadata: WorkloadMeta(c.Name, c.Namespace, c.Labels),
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
				Spec:     c.Spec("OnFailure", nil),
			},
		},
	}, opts...); err != nil {
		return fmt.Errorf("%s cron job: %w", c.Name, err)
	}
	return c.policy(ctx, opts...)
}
