package kube

import (
	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// PodSecurity is the identity every pod runs under. Images that insist on their own uid
// (nginx-unprivileged 101) override RunAsUser per container; everything else is shared.
type PodSecurity struct {
	RunAsUser  int
	RunAsGroup int
	FSGroup    int
}

// podSecurityContext is the hardened pod-level context: non-root, seccomp RuntimeDefault,
// volumes group-owned by FSGroup.
func (s PodSecurity) podSecurityContext() *corev1.PodSecurityContextArgs {
	return &corev1.PodSecurityContextArgs{
		RunAsNonRoot:   pulumi.Bool(true),
		RunAsUser:      pulumi.Int(s.RunAsUser),
		RunAsGroup:     pulumi.Int(s.RunAsGroup),
		FsGroup:        pulumi.Int(s.FSGroup),
		SeccompProfile: &corev1.SeccompProfileArgs{Type: pulumi.String("RuntimeDefault")},
	}
}

// ContainerSecurityContext is the hardened container context every container gets:
// read-only root file system, no privilege escalation, no capabilities.
func (s PodSecurity) ContainerSecurityContext() *corev1.SecurityContextArgs {
	return s.ContainerSecurityContextAs(s.RunAsUser)
}

// ContainerSecurityContextAs is the same context for an image that needs its own uid.
func (s PodSecurity) ContainerSecurityContextAs(uid int) *corev1.SecurityContextArgs {
	return &corev1.SecurityContextArgs{
		RunAsNonRoot:             pulumi.Bool(true),
		RunAsUser:                pulumi.Int(uid),
		RunAsGroup:               pulumi.Int(s.RunAsGroup),
		AllowPrivilegeEscalation: pulumi.Bool(false),
		ReadOnlyRootFilesystem:   pulumi.Bool(true),
		Privileged:               pulumi.Bool(false),
		Capabilities:             &corev1.CapabilitiesArgs{Drop: pulumi.StringArray{pulumi.String("ALL")}},
		SeccompProfile:           &corev1.SeccompProfileArgs{Type: pulumi.String("RuntimeDefault")},
	}
}
