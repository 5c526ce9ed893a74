package web

import (
	"fmt"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"ecommerce-platform/components"
	"ecommerce-platform/components/assets"
	"ecommerce-platform/tests/testkit"
	"ecommerce-platform/tests/testkit/envoytest"
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
			bootstrap := envoytest.Decode(t, text)
			require.NoError(t, envoytest.Validate(bootstrap))

			admin := bootstrap.GetAdmin().GetAddress().GetSocketAddress()
			assert.Equal(t, "127.0.0.1", admin.GetAddress(), "the admin interface is localhost-only")

			listeners := bootstrap.GetStaticResources().GetListeners()
			require.Len(t, listeners, 2, "the API and the statistics")
			assert.Equal(t, uint32(components.BackendPort), listeners[0].GetAddress().GetSocketAddress().GetPortValue())
			envoyMetricsListener(t, listeners[1], bootstrap.GetAdmin().GetAddress().GetSocketAddress().GetPortValue(),
				bootstrap.GetStaticResources().GetClusters())
			var hcm hcmv3.HttpConnectionManager
			require.NoError(t, listeners[0].GetFilterChains()[0].GetFilters()[0].GetTypedConfig().UnmarshalTo(&hcm))
			assert.Len(t, hcm.GetAccessLog(), 1, "JSON access log to stdout")
			// No client is trusted with x-envoy-* headers: nothing counts as internal.
			assert.True(t, hcm.GetUseRemoteAddress().GetValue(), "use_remote_address")
			require.NotNil(t, hcm.GetInternalAddressConfig(), "internal_address_config set explicitly")
			ranges := hcm.GetInternalAddressConfig().GetCidrRanges()
			require.Len(t, ranges, 1, "one range, so the list is not unset (unset: every private address is internal)")
			assert.Equal(t, "192.0.2.1/32", fmt.Sprintf("%s/%d", ranges[0].GetAddressPrefix(), ranges[0].GetPrefixLen().GetValue()),
				"a documentation address no client has")
			routes := map[string]string{}
			for _, r := range hcm.GetRouteConfig().GetVirtualHosts()[0].GetRoutes() {
				if path := r.GetMatch().GetPath(); path != "" {
					routes[path] = r.GetRoute().GetCluster()
				}
			}
			assert.Equal(t, map[string]string{"/health": "api_admin", "/live": "api_admin"}, routes,
				"PostgREST's admin server, on 127.0.0.1 only, is probed through Envoy")
			assert.Nil(t, envoytest.RateLimit(t, hcm.GetHttpFilters()[0].GetTypedConfig()).GetTokenBucket(),
				"the filter itself limits nothing: only the routes that carry a bucket")
			routesAll := hcm.GetRouteConfig().GetVirtualHosts()[0].GetRoutes()
			limit := envoytest.RateLimit(t, routesAll[len(routesAll)-1].GetTypedPerFilterConfig()["envoy.filters.http.local_ratelimit"])
			require.NotNil(t, limit, "the API route carries the bucket")
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
	err = envoytest.Validate(envoytest.Decode(t, text))
	require.Error(t, err, "a zero-token bucket is invalid")
	assert.Contains(t, err.Error(), "MaxTokens")
}

// envoyMetricsListener: the statistics listener exposes GET /stats/prometheus of the admin
// server (127.0.0.1) and answers 404 to every other path: the admin server's other
// endpoints (/quitquitquit, /runtime_modify...) stay unreachable from outside the pod.
func envoyMetricsListener(t *testing.T, l *listenerv3.Listener, adminPort uint32, clusters []*clusterv3.Cluster) {
	t.Helper()
	assert.Equal(t, "metrics", l.GetName())
	assert.Equal(t, uint32(9902), l.GetAddress().GetSocketAddress().GetPortValue())
	var hcm hcmv3.HttpConnectionManager
	require.NoError(t, l.GetFilterChains()[0].GetFilters()[0].GetTypedConfig().UnmarshalTo(&hcm))
	routes := hcm.GetRouteConfig().GetVirtualHosts()[0].GetRoutes()
	require.Len(t, routes, 2)
	assert.Equal(t, "/stats/prometheus", routes[0].GetMatch().GetPath())
	require.Len(t, routes[0].GetMatch().GetHeaders(), 1)
	assert.Equal(t, "GET", routes[0].GetMatch().GetHeaders()[0].GetStringMatch().GetExact(), "read-only")
	assert.Equal(t, "envoy_admin", routes[0].GetRoute().GetCluster())
	assert.Equal(t, "/", routes[1].GetMatch().GetPrefix())
	assert.Equal(t, uint32(404), routes[1].GetDirectResponse().GetStatus(), "everything else: 404")
	for _, c := range clusters {
		if c.GetName() == "envoy_admin" {
			a := c.GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress()
			assert.Equal(t, "127.0.0.1", a.GetAddress())
			assert.Equal(t, adminPort, a.GetPortValue(), "the admin server's own port")
			return
		}
	}
	t.Fatal("no envoy_admin cluster")
}
