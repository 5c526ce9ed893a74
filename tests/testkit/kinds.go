package testkit

// Type tokens of the objects the tests look at.
const (
	Deployment              = "kubernetes:apps/v1:Deployment"
	StatefulSet             = "kubernetes:apps/v1:StatefulSet"
	CronJob                 = "kubernetes:batch/v1:CronJob"
	Job                     = "kubernetes:batch/v1:Job"
	Service                 = "kubernetes:core/v1:Service"
	Secret                  = "kubernetes:core/v1:Secret"
	ConfigMap               = "kubernetes:core/v1:ConfigMap"
	Namespace               = "kubernetes:core/v1:Namespace"
	NetworkPolicy           = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
	HorizontalPodAutoscaler = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
	PodDisruptionBudget     = "kubernetes:policy/v1:PodDisruptionBudget"
	ServiceAccount          = "kubernetes:core/v1:ServiceAccount"
	PersistentVolumeClaim   = "kubernetes:core/v1:PersistentVolumeClaim"
	Ingress                 = "kubernetes:networking.k8s.io/v1:Ingress"
	PodMonitor              = "kubernetes:monitoring.coreos.com/v1:PodMonitor"
	PrometheusRule          = "kubernetes:monitoring.coreos.com/v1:PrometheusRule"
	Role                    = "kubernetes:rbac.authorization.k8s.io/v1:Role"
	RoleBinding             = "kubernetes:rbac.authorization.k8s.io/v1:RoleBinding"
)
