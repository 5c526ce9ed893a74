// Command ecommerce-platform is the Pulumi program; all of it lives in package components.
package main

//go:generate go run ./cmd/pulumi-yaml Pulumi.yaml
//go:generate go test ./tests/mocked -run TestGeneratedDocsAreCurrent -count=1 -args -update-docs

import (
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"ecommerce-platform/components"
)

func main() {
	pulumi.Run(components.Program)
}
