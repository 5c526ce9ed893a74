//go:build integration

package integration

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"
)

// kube is a minimal read-only client of the test cluster's API: GET and decode into
// k8s.io/api types. Enough to check what the provider created, without client-go.
type kube struct {
	server string
	client *http.Client
}

func newKube(t testing.TB, kubeconfig string) *kube {
	t.Helper()
	raw, err := os.ReadFile(kubeconfig)
	require.NoError(t, err)
	var cfg struct {
		Clusters []struct {
			Cluster struct {
				Server string `json:"server"`
				CA     string `json:"certificate-authority-data"`
			} `json:"cluster"`
		} `json:"clusters"`
		Users []struct {
			User struct {
				Cert string `json:"client-certificate-data"`
				Key  string `json:"client-key-data"`
			} `json:"user"`
		} `json:"users"`
	}
	require.NoError(t, yaml.Unmarshal(raw, &cfg))
	require.NotEmpty(t, cfg.Clusters)
	require.NotEmpty(t, cfg.Users)
	decode := func(s string) []byte {
		b, err := base64.StdEncoding.DecodeString(s)
		require.NoError(t, err)
		return b
	}
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(decode(cfg.Clusters[0].Cluster.CA)))
	cert, err := tls.X509KeyPair(decode(cfg.Users[0].User.Cert), decode(cfg.Users[0].User.Key))
	require.NoError(t, err)
	return &kube{
		server: cfg.Clusters[0].Cluster.Server,
		client: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}},
		}},
	}
}

// get decodes the object at path into out; it returns the HTTP status.
func (k *kube) get(t testing.TB, path string, out any) int {
	t.Helper()
	resp, err := k.client.Get(k.server + path)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	if resp.StatusCode == http.StatusOK && out != nil {
		require.NoError(t, json.Unmarshal(body, out), "decode %s", path)
	}
	return resp.StatusCode
}

// mustGet decodes an object that must exist.
func (k *kube) mustGet(t testing.TB, path string, out any) {
	t.Helper()
	require.Equal(t, http.StatusOK, k.get(t, path, out), "GET %s", path)
}

// eventually polls until check passes or the timeout ends, then reports the last failure.
func eventually(t testing.TB, timeout time.Duration, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			require.NoError(t, err, "%s (waited %s)", what, timeout)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func nsPath(ns, resource string) string {
	switch resource {
	case "deployments", "statefulsets":
		return fmt.Sprintf("/apis/apps/v1/namespaces/%s/%s", ns, resource)
	case "endpointslices":
		return fmt.Sprintf("/apis/discovery.k8s.io/v1/namespaces/%s/%s", ns, resource)
	case "horizontalpodautoscalers":
		return fmt.Sprintf("/apis/autoscaling/v2/namespaces/%s/%s", ns, resource)
	}
	return fmt.Sprintf("/api/v1/namespaces/%s/%s", ns, resource)
}
