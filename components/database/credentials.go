package database

import (
	"strconv"

	batchv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/batch/v1"
	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"ecommerce-platform/components/kube"
)

// credentialsSyncTimeoutSeconds bounds the job's wait for the database.
const credentialsSyncTimeoutSeconds = 300

// credentialsJob is what the database-credentials Job needs.
type credentialsJob struct {
	Resource           string
	Namespace          pulumi.StringInput
	Identity           kube.Identity
	Security           kube.PodSecurity
	Image              string // the postgres image: psql and pg_isready
	User, DatabaseName string
	Host               pulumi.StringInput // the database Service
	ServiceAccount     pulumi.StringInput
	Secret             pulumi.StringInput // database-credentials
	Config             pulumi.StringInput // database-config, holding credentials-sync.sh
	Credentials        pulumi.StringOutput
	OrderMaxOpenUnits  int // shop.order_limits (config orderMaxOpenUnits)
	// shop.order_limits.max_product_share_percent (config orderMaxProductSharePercent)
	OrderMaxProductSharePercent int
	DatabasePods                pulumi.StringMap
}

// CredentialsHash identifies the values the database must hold: a change of apiDbPassword,
// jwtSecret or replicationPassword changes it, which replaces the Job (it runs again) and rolls the backend's pods.
// Only a hash of the secrets, never the secrets, appears on a pod template.
func CredentialsHash(secrets ...pulumi.StringInput) pulumi.StringOutput {
	inputs := make([]any, len(secrets))
	for i, s := range secrets {
		inputs[i] = s
	}
	return pulumi.All(inputs...).ApplyT(func(v []any) string {
		texts := make([]string, len(v))
		for i, t := range v {
			texts[i] = t.(string)
		}
		return kube.Checksum(texts...)
	}).(pulumi.StringOutput)
}

// exporterPasswordAnnotation is put on the database pods' templates: postgres_exporter reads
// the monitor role's password only when it starts, so a new monitorDbPassword restarts the
// pods whose exporter uses it (the primary included: a short restart, after which the exporter
// logs in as soon as the credentials Job has set the password).
func exporterPasswordAnnotation(annotations pulumi.StringMap, monitorPassword pulumi.StringInput) pulumi.StringMap {
	annotations["checksum/exporter-password"] = CredentialsHash(monitorPassword)
	return annotations
}

// newCredentialsJob runs credentials-sync.sh once per set of credentials: the database gets
// the authenticator password and the JWT signing key of the stack's Secrets. The backend's
// Deployment depends on it, so on a rotation the database changes first and the backend's
// pods roll onto the new values right after (README: "Credential rotation").
func newCredentialsJob(ctx *pulumi.Context, j credentialsJob, opts ...pulumi.ResourceOption) (*batchv1.Job, error) {
	labels := j.Identity.Labels(kube.VersionOf(j.Image))
	return kube.NewGateJob(ctx, kube.GateJob{
		// The order limit is no secret: a change of it runs the Job again too.
		Inputs: pulumi.StringMap{"checksum/credentials": j.Credentials, "settings/order-max-open-units": pulumi.String(strconv.Itoa(j.OrderMaxOpenUnits)),
			"settings/order-max-product-share-percent": pulumi.String(strconv.Itoa(j.OrderMaxProductSharePercent))},
		JobRun: kube.JobRun{
			JobResource: j.Resource, PolicyResource: j.Resource + "-netpol", Name: j.Identity.Object("credentials"),
			Namespace: j.Namespace, Identity: j.Identity, Labels: labels,
			Pod: kube.PodOptions{
				ServiceAccount: j.ServiceAccount,
				Security:       j.Security,
				Containers:     corev1.ContainerArray{credentialsSyncContainer(j)},
				Volumes: corev1.VolumeArray{
					kube.ConfigMapVolume("config", j.Config),
					kube.SecretKeysVolume("secrets", j.Secret, credentialsSyncKeys...),
					kube.EmptyDir("tmp", "16Mi"),
				},
			},
			BackoffLimit: 2, Deadline: credentialsSyncTimeoutSeconds + 120,
			Reaches: j.DatabasePods, Port: PostgresPort,
		},
	}, opts...)
}

// credentialsSyncContainer runs credentials-sync.sh with the owner's credentials and the
// files it sets (authenticator password, signing key, replication password).
func credentialsSyncContainer(j credentialsJob) corev1.ContainerArgs {
	return corev1.ContainerArgs{
		Name:    pulumi.String("credentials-sync"),
		Image:   pulumi.String(j.Image),
		Command: pulumi.ToStringArray([]string{"sh", "/scripts/credentials-sync.sh"}),
		Env: append(libpqEnv(j.Host, j.User, j.DatabaseName, superuserPasswordKey),
			kube.Env("AUTHENTICATOR_PASSWORD_FILE", postgresSecretsDir+"/"+authenticatorPasswordKey),
			kube.Env("JWT_SECRET_FILE", postgresSecretsDir+"/"+jwtSecretKey),
			kube.Env("REPLICATION_PASSWORD_FILE", postgresSecretsDir+"/"+replicationPasswordKey),
			kube.Env("BACKUP_PASSWORD_FILE", postgresSecretsDir+"/"+backupPasswordKey),
			kube.Env("RELEASE_UNPAID_PASSWORD_FILE", postgresSecretsDir+"/"+releaseUnpaidPasswordKey),
			kube.Env("MONITOR_PASSWORD_FILE", postgresSecretsDir+"/"+monitorPasswordKey),
			kube.Env("TIMEOUT_SECONDS", strconv.Itoa(credentialsSyncTimeoutSeconds)),
			kube.Env("ORDER_MAX_OPEN_UNITS", strconv.Itoa(j.OrderMaxOpenUnits)),
			kube.Env("ORDER_MAX_PRODUCT_SHARE_PERCENT", strconv.Itoa(j.OrderMaxProductSharePercent)),
		),
		VolumeMounts: corev1.VolumeMountArray{
			kube.FileMount("config", "/scripts/credentials-sync.sh", "credentials-sync.sh"),
			kube.ReadOnlyMount("secrets", postgresSecretsDir),
			kube.Mount("tmp", "/tmp"),
		},
		Resources:                kube.Requirements(kube.InitResources),
		TerminationMessagePolicy: pulumi.String("FallbackToLogsOnError"),
		SecurityContext:          j.Security.ContainerSecurityContext(),
	}
}
