package web

import (
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/stream/v3"
	localratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/local_ratelimit/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/anypb"
	"sigs.k8s.io/yaml"

	"ecommerce-platform/components"
	"ecommerce-platform/components/assets"
	"ecommerce-platform/tests/testkit"
)

// The envoy.yaml the backend deploys, taken from the ConfigMap the program registers,
// decodes strictly into Envoy's own bootstrap v3 types and passes their validation, with
// the stack's circuit breaker, outlier detection and rate limit values in place.
func TestEnvoyConfigIsAValidBootstrap(t *testing.T) {
	for _, stack := range []string{"dev", "prod"} {
		t.Run(stack, func(t *testing.T) {
			r := testkit.MustRun(t, stack, map[string]string{
				"apiRateLimit": "250", "circuitMaxConnections": "11", "circuitMaxPendingRequests": "12",
				"circuitMaxRequests": "13", "circuitMaxRetries": "4", "outlierConsecutive5xx": "7",
			})
			text := testkit.TypedConfigMap(t, r, "backend-config").Data["envoy.yaml"]
			bootstrap := decodeEnvoy(t, text)
			require.NoError(t, validateEnvoy(bootstrap))

			admin := bootstrap.GetAdmin().GetAddress().GetSocketAddress()
			assert.Equal(t, "127.0.0.1", admin.GetAddress(), "the admin interface is localhost-only")

			listeners := bootstrap.GetStaticResources().GetListeners()
			require.Len(t, listeners, 1)
			assert.Equal(t, uint32(components.BackendPort), listeners[0].GetAddress().GetSocketAddress().GetPortValue())
			var hcm hcmv3.HttpConnectionManager
			require.NoError(t, listeners[0].GetFilterChains()[0].GetFilters()[0].GetTypedConfig().UnmarshalTo(&hcm))
			assert.Len(t, hcm.GetAccessLog(), 1, "JSON access log to stdout")
			// No client is trusted with x-envoy-* headers: nothing counts as internal.
			assert.True(t, hcm.GetUseRemoteAddress().GetValue(), "use_remote_address")
			require.NotNil(t, hcm.GetInternalAddressConfig(), "internal_address_config set explicitly")
			assert.Empty(t, hcm.GetInternalAddressConfig().GetCidrRanges(), "no address is internal")
			routes := map[string]string{}
			for _, r := range hcm.GetRouteConfig().GetVirtualHosts()[0].GetRoutes() {
				if path := r.GetMatch().GetPath(); path != "" {
					routes[path] = r.GetRoute().GetCluster()
				}
			}
			assert.Equal(t, map[string]string{"/health": "api_admin", "/live": "api_admin"}, routes,
				"PostgREST's admin server, on 127.0.0.1 only, is probed through Envoy")
			var limit localratelimitv3.LocalRateLimit
			require.NoError(t, hcm.GetHttpFilters()[0].GetTypedConfig().UnmarshalTo(&limit))
			assert.Equal(t, uint32(250), limit.GetTokenBucket().GetMaxTokens())
			assert.Equal(t, uint32(250), limit.GetTokenBucket().GetTokensPerFill().GetValue())
			assert.Equal(t, "envoy.filters.http.router", hcm.GetHttpFilters()[len(hcm.GetHttpFilters())-1].GetName())

			clusters := map[string]*clusterv3.Cluster{}
			for _, c := range bootstrap.GetStaticResources().GetClusters() {
				clusters[c.GetName()] = c
			}
			api := clusters["api"]
			require.NotNil(t, api)
			endpoint := api.GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress()
			assert.Equal(t, "127.0.0.1", endpoint.GetAddress())
			assert.Equal(t, uint32(3000), endpoint.GetPortValue())
			th := api.GetCircuitBreakers().GetThresholds()[0]
			assert.Equal(t, uint32(11), th.GetMaxConnections().GetValue())
			assert.Equal(t, uint32(12), th.GetMaxPendingRequests().GetValue())
			assert.Equal(t, uint32(13), th.GetMaxRequests().GetValue())
			assert.Equal(t, uint32(4), th.GetMaxRetries().GetValue())
			assert.Equal(t, uint32(7), api.GetOutlierDetection().GetConsecutive_5Xx().GetValue())
			require.NotNil(t, clusters["api_admin"], "/health is PostgREST's /ready")
		})
	}
}

// A config Envoy would reject is caught: the check can fail.
func TestEnvoyValidationRejectsBrokenConfig(t *testing.T) {
	text, err := assets.RenderEnvoyYAML(assets.EnvoySettings{ListenPort: 8080, AdminPort: 9901, APIPort: 3000, APIAdminPort: 3001, RateLimitPerSecond: 0, MaxRetries: 1, OutlierIntervalSeconds: 1, BaseEjectionSeconds: 1, RequestTimeoutSeconds: 1})
	require.NoError(t, err)
	err = validateEnvoy(decodeEnvoy(t, text))
	require.Error(t, err, "a zero-token bucket is invalid")
	assert.Contains(t, err.Error(), "MaxTokens")
}

// validateEnvoy validates the bootstrap and, since validation stops at Any fields, each
// typed filter config inside it.
func validateEnvoy(b *bootstrapv3.Bootstrap) error {
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

func decodeEnvoy(t *testing.T, text string) *bootstrapv3.Bootstrap {
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
