package kube

import (
	"strings"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"ecommerce-platform/components/config"
)

const (
	PartOf    = "ecommerce-platform"
	ManagedBy = "pulumi"
	ColorKey  = "ecommerce-platform/color"
)

// Identity names a workload for labels and selectors. Selectors use only the fields that
// never change for the life of a workload (never the version, never the active color), so
// a release or a switch never touches a Deployment's immutable selector.
type Identity struct {
	Name      string // app.kubernetes.io/name: the tier (database, backend, frontend)
	Instance  string // app.kubernetes.io/instance: the stack
	Component string // app.kubernetes.io/component: the role (database, api, web, backup)
	Color     string // frontend only: blue or green
}

// Selector is the label set a controller or Service matches on.
func (id Identity) Selector() pulumi.StringMap {
	return pulumi.ToStringMap(id.MatchLabels())
}

// MatchLabels is Selector as plain values (for the operator's typed label selectors).
func (id Identity) MatchLabels() map[string]string {
	m := map[string]string{
		"app.kubernetes.io/name":      id.Name,
		"app.kubernetes.io/instance":  id.Instance,
		"app.kubernetes.io/component": id.Component,
	}
	if id.Color != "" {
		m[ColorKey] = id.Color
	}
	return m
}

// Labels are the standard labels of every object and pod of the workload.
func (id Identity) Labels(version string) pulumi.StringMap {
	m := id.TierLabels()
	m["app.kubernetes.io/version"] = pulumi.String(version)
	return m
}

// WithColor returns the identity of one color of a blue/green workload.
func (id Identity) WithColor(color string) Identity {
	id.Color = color
	return id
}

// WithComponent returns a sibling identity in the same tier (the backup job of the database).
func (id Identity) WithComponent(component string) Identity {
	id.Component = component
	return id
}

// VersionOf is the version label of an image: its tag.
func VersionOf(image string) string {
	return config.ImageTag(image)
}

// Object is the Kubernetes name of one of the workload's objects: the tier's name, then the
// parts ("database", "database-service", "frontend-blue-preview"). Names derive from the
// identity, never from literals, so a component with another identity names its objects apart.
func (id Identity) Object(parts ...string) string {
	return strings.Join(append([]string{id.Name}, parts...), "-")
}

// TierLabels label objects that serve a whole tier across releases (the frontend's
// ServiceAccount, NetworkPolicy and production Services): no version, so a release or a
// color switch leaves them alone.
func (id Identity) TierLabels() pulumi.StringMap {
	m := id.Selector()
	m["app.kubernetes.io/part-of"] = pulumi.String(PartOf)
	m["app.kubernetes.io/managed-by"] = pulumi.String(ManagedBy)
	return m
}
