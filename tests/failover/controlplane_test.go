package failover

// The private Kubernetes API server (etcd + kube-apiserver from .tools/bin) is
// tests/testkit/kubetest's, shared with the container contract suite; these are the names this
// package's tests call it by.

import (
	"testing"

	"ecommerce-platform/tests/testkit/kubetest"
)

// controlPlane is a running etcd and kube-apiserver of one test.
type controlPlane struct{ *kubetest.ControlPlane }

// startControlPlane starts etcd and kube-apiserver on free loopback ports and waits for
// /readyz; both stop when the test ends.
func startControlPlane(t *testing.T) *controlPlane {
	t.Helper()
	return &controlPlane{kubetest.Start(t)}
}

// create POSTs an object and fails the test unless the API server created it.
func (cp *controlPlane) create(t *testing.T, path string, obj map[string]any) {
	t.Helper()
	cp.Create(t, path, obj)
}

// pods lists the namespace's pods that match a label selector.
func (cp *controlPlane) pods(namespace, selector string) (kubetest.PodList, error) {
	return cp.Pods(namespace, selector)
}

// kubeconfig is a kubeconfig for the admin against server, with its one context named context.
func (cp *controlPlane) kubeconfig(server, context string) string {
	return cp.Kubeconfig(server, context)
}
