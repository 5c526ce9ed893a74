package config

import "strings"

// validateSeed refuses the demo data on a stack published to the internet: its accounts'
// passwords are in the README (demo@example.com / demo-password), so anyone could sign in as
// them in a shop created with databaseSeedData.
func (c *Config) validateSeed(v *problemList) {
	if !c.Database.SeedData {
		return
	}
	var published []string
	if c.Frontend.ServiceType == "LoadBalancer" {
		published = append(published, "frontendServiceType LoadBalancer")
	}
	if c.Frontend.IngressEnabled {
		published = append(published, "ingressEnabled")
	}
	if len(published) > 0 {
		v.addf("databaseSeedData", "true loads demo accounts whose passwords are published (README: demo@example.com / demo-password) into a shop reachable from the internet (%s); use false, or true only on a stack that is not published (frontendServiceType ClusterIP or NodePort, no Ingress)",
			strings.Join(published, ", "))
	}
}
