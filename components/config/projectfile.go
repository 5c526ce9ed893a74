package config

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// ProjectName, Runtime and ProjectDescription head Pulumi.yaml.
const (
	ProjectName        = "ecommerce-platform"
	Runtime            = "go"
	ProjectDescription = "Three-tier e-commerce platform (nginx blue/green frontend, PostgREST API, PostgreSQL) on Kubernetes"
)

// ProjectYAML is Pulumi.yaml as the key table declares it, so a new key is one table row:
// `go generate .` (cmd/pulumi-yaml) writes it and a test keeps the committed file equal.
// The CLI then knows every key's type, default and secrecy without running the program.
func ProjectYAML() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "name: %s\nruntime: %s\ndescription: %s\nconfig:\n", ProjectName, Runtime, ProjectDescription)
	for _, k := range Schema() {
		if k.Issued {
			// Needed only when used (the program names it then): declared, the CLI would
			// require it in every stack, and a secret cannot have a default.
			continue
		}
		fmt.Fprintf(&b, "  %s:\n    type: %s\n    description: %s\n", k.Key, k.Type, yamlQuoted(k.Description))
		switch {
		case k.Secret:
			b.WriteString("    secret: true\n")
		case k.Type == string(kindString):
			fmt.Fprintf(&b, "    default: %s\n", yamlQuoted(k.Default))
		default:
			fmt.Fprintf(&b, "    default: %s\n", k.Default)
		}
	}
	return b.Bytes()
}

// yamlQuoted is s as a YAML double-quoted scalar (JSON's string syntax is one).
func yamlQuoted(s string) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		panic(err) // a string always encodes
	}
	return string(bytes.TrimSuffix(b.Bytes(), []byte("\n")))
}
