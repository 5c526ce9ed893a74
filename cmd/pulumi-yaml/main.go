// Command pulumi-yaml writes Pulumi.yaml from the program's config key table
// (components/config), the single place a key is declared. Run it with `go generate .`.
//
//	pulumi-yaml [path]   (default Pulumi.yaml)
package main

import (
	"fmt"
	"os"

	"ecommerce-platform/components/config"
)

func main() {
	path := "Pulumi.yaml"
	if len(os.Args) > 1 {
		path = os.Args[1]
	}
	if err := os.WriteFile(path, config.ProjectYAML(), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "pulumi-yaml:", err)
		os.Exit(1)
	}
}
