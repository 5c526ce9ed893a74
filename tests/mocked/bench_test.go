package mocked

import (
	"testing"

	"ecommerce-platform/tests/testkit"
)

// BenchmarkProgram runs the whole program under mocks, per stack: the cost of a preview's
// program side, and a guard against accidental blow-ups (rendering in loops, etc.).
func BenchmarkProgram(b *testing.B) {
	for _, stack := range []string{"dev", "prod"} {
		b.Run(stack, func(b *testing.B) {
			cfg, secretKeys := testkit.StackConfig(b, stack, nil)
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if r := testkit.RunWithConfig(b, stack, cfg, secretKeys); r.Err != nil {
					b.Fatal(r.Err)
				}
			}
		})
	}
}
