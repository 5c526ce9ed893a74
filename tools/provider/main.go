// Command pulumi-resource-kubernetes is the Pulumi Kubernetes resource provider,
// built from the Go module github.com/pulumi/pulumi-kubernetes/provider/v4.
//
// The module's own cmd/pulumi-resource-kubernetes does not build from the module
// cache (it embeds files produced by `go generate`), so this is the same few
// lines with the module's schema.json and terraform-mapping.json embedded.
// scripts/tools.sh copies those two files beside this one before building
// (they are git-ignored) and stamps the version with
//
//	-X github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version.Version=<v>
package main

import (
	_ "embed"

	"github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/provider"
	"github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version"
)

//go:embed schema.json
var pulumiSchema []byte

//go:embed terraform-mapping.json
var terraformMapping []byte

func main() {
	provider.Serve("kubernetes", version.Version, pulumiSchema, terraformMapping)
}
