package components

import "ecommerce-platform/components/config"

// The two blue/green colors.
const (
	Blue  = config.Blue
	Green = config.Green
)

// MinimumKubernetes is the oldest Kubernetes the rendered objects work on: preStop sleep
// hooks (drainFirst) are beta and on by default from 1.30 (alpha and off in 1.29, where the
// API server rejects them); native sidecars need 1.29.
const MinimumKubernetes = "1.30"
