package database

import (
	"fmt"

	rbacv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/rbac/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"ecommerce-platform/components/kube"
)

// patroniScope names Patroni's cluster (after the database's object name) and prefixes its
// ConfigMaps: never "database", whose <scope>-config would be the program's own
// database-config ConfigMap, scripts the Jobs run, writable by Patroni's Role.
const patroniScope = "cluster"

// patroniConfigMaps are the ConfigMaps Patroni's Kubernetes store keeps for a cluster:
// the leader lock, the dynamic config, the quorum state and a pending switchover.
var patroniConfigMaps = []string{"leader", "config", "sync", "failover"}

// newPatroniRBAC gives the members an identity of their own (the database's other pods,
// its Jobs and CronJobs, keep theirs without a token) and a Role with exactly what Patroni
// calls: create, list and watch ConfigMaps (creation and lists cannot be narrowed to names),
// read and patch only its four ConfigMaps, list and watch pods and patch only the members'
// own (their role label and state). Nothing may delete: `patronictl remove`, which wipes the
// cluster's state, is refused on purpose. It returns the ServiceAccount's name.
func newPatroniRBAC(ctx *pulumi.Context, name string, id kube.Identity, ns pulumi.StringInput, labels pulumi.StringMap, replicas int, opts ...pulumi.ResourceOption) (pulumi.StringOutput, error) {
	account := id.Object("members")
	sa, err := kube.NewServiceAccount(ctx, name+"-members-serviceaccount", account, ns, labels, opts...)
	if err != nil {
		return pulumi.StringOutput{}, fmt.Errorf("patroni service account: %w", err)
	}
	var configMaps, pods []string
	for _, suffix := range patroniConfigMaps {
		configMaps = append(configMaps, id.Object(patroniScope, suffix))
	}
	for i := range patroniMembers(replicas) {
		pods = append(pods, fmt.Sprintf("%s-%d", id.Object(), i))
	}
	role, err := rbacv1.NewRole(ctx, name+"-patroni-role", &rbacv1.RoleArgs{
		Metadata: kube.Meta(id.Object("patroni"), ns, labels),
		Rules: rbacv1.PolicyRuleArray{
			rule("configmaps", nil, "create", "list", "watch"),
			rule("configmaps", configMaps, "get", "patch", "update"),
			rule("pods", nil, "get", "list", "watch"),
			rule("pods", pods, "patch", "update"),
		},
	}, opts...)
	if err != nil {
		return pulumi.StringOutput{}, fmt.Errorf("patroni role: %w", err)
	}
	if _, err := rbacv1.NewRoleBinding(ctx, name+"-patroni-rolebinding", &rbacv1.RoleBindingArgs{
		Metadata: kube.Meta(id.Object("patroni"), ns, labels),
		RoleRef: rbacv1.RoleRefArgs{
			ApiGroup: pulumi.String("rbac.authorization.k8s.io"), Kind: pulumi.String("Role"), Name: role.Metadata.Name().Elem(),
		},
		Subjects: rbacv1.SubjectArray{rbacv1.SubjectArgs{Kind: pulumi.String("ServiceAccount"), Name: sa.Metadata.Name().Elem(), Namespace: ns}},
	}, opts...); err != nil {
		return pulumi.StringOutput{}, fmt.Errorf("patroni role binding: %w", err)
	}
	return sa.Metadata.Name().Elem(), nil
}

// patroniMembers is the StatefulSet's size: the primary and its replicas are all members.
func patroniMembers(replicas int) int { return 1 + replicas }

// rule is one RBAC rule on a core resource, narrowed to names when any are given.
func rule(resource string, names []string, verbs ...string) rbacv1.PolicyRuleArgs {
	r := rbacv1.PolicyRuleArgs{
		ApiGroups: pulumi.StringArray{pulumi.String("")},
		Resources: pulumi.StringArray{pulumi.String(resource)},
		Verbs:     pulumi.ToStringArray(verbs),
	}
	if len(names) > 0 {
		r.ResourceNames = pulumi.ToStringArray(names)
	}
	return r
}
