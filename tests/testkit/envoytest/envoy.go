// Package envoytest decodes the envoy.yaml the backend deploys into Envoy's own bootstrap v3
// types and validates it, typed filter configs included, for the web and attack tests.
package envoytest

import (
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/stream/v3"
	localratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/local_ratelimit/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/anypb"
	"sigs.k8s.io/yaml"
)

// ConnectionManager is the one listener's HTTP connection manager.
func ConnectionManager(t testing.TB, b *bootstrapv3.Bootstrap) *hcmv3.HttpConnectionManager {
	t.Helper()
	var hcm hcmv3.HttpConnectionManager
	require.NoError(t, b.GetStaticResources().GetListeners()[0].GetFilterChains()[0].GetFilters()[0].GetTypedConfig().UnmarshalTo(&hcm))
	return &hcm
}

// RateLimit is a local rate limit config (a filter's or a route's), nil when absent.
func RateLimit(t testing.TB, a *anypb.Any) *localratelimitv3.LocalRateLimit {
	t.Helper()
	if a == nil {
		return nil
	}
	var limit localratelimitv3.LocalRateLimit
	require.NoError(t, a.UnmarshalTo(&limit))
	return &limit
}

// Validate validates the bootstrap and, since validation stops at Any fields, each
// typed filter config inside it.
func Validate(b *bootstrapv3.Bootstrap) error {
	if err := b.ValidateAll(); err != nil {
		return err
	}
	for _, l := range b.GetStaticResources().GetListeners() {
		for _, chain := range l.GetFilterChains() {
			for _, f := range chain.GetFilters() {
				var hcm hcmv3.HttpConnectionManager
				if err := f.GetTypedConfig().UnmarshalTo(&hcm); err != nil {
					return err
				}
				if err := hcm.ValidateAll(); err != nil {
					return err
				}
				for _, vh := range hcm.GetRouteConfig().GetVirtualHosts() {
					for _, r := range vh.GetRoutes() {
						for _, cfg := range r.GetTypedPerFilterConfig() {
							if err := validateAny(cfg); err != nil {
								return err
							}
						}
					}
				}
				for _, hf := range hcm.GetHttpFilters() {
					if err := validateAny(hf.GetTypedConfig()); err != nil {
						return err
					}
				}
				for _, al := range hcm.GetAccessLog() {
					if err := validateAny(al.GetTypedConfig()); err != nil {
						return err
					}
				}
			}
		}
	}
	return nil
}

// Decode decodes envoy.yaml strictly into Envoy's bootstrap v3 types.
func Decode(t testing.TB, text string) *bootstrapv3.Bootstrap {
	t.Helper()
	js, err := yaml.YAMLToJSON([]byte(text))
	require.NoError(t, err)
	var bootstrap bootstrapv3.Bootstrap
	require.NoError(t, protojson.UnmarshalOptions{DiscardUnknown: false}.Unmarshal(js, &bootstrap))
	return &bootstrap
}

// validateAny unpacks a typed config into its registered Envoy type and validates it.
func validateAny(a *anypb.Any) error {
	msg, err := a.UnmarshalNew()
	if err != nil {
		return err
	}
	if v, ok := msg.(interface{ ValidateAll() error }); ok {
		return v.ValidateAll()
	}
	return nil
}
