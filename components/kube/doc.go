// Package kube holds the Kubernetes builders every tier shares, so each idea has one place:
// labels and selectors (Identity), the hardened security context (PodSecurity), probes,
// resource requirements, pod specs, volumes and env, Jobs and CronJobs, Services,
// NetworkPolicies and PodDisruptionBudgets. It knows no tier: the tiers' packages build on it,
// and it imports nothing of the program but the stack config's types.
package kube
