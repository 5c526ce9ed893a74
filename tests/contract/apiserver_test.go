package contract

// The sandbox's API server, for stacks with a pod that holds a ServiceAccount token (the
// Patroni members, whose consensus store is the cluster's own API server): a private etcd and
// kube-apiserver (tests/testkit/kubetest) with RBAC enforced, holding what the program records
// for that identity (the Namespace, the ServiceAccounts, Roles and RoleBindings) and one pod
// object per such pod, as the StatefulSet controller would make it. The sandbox then does the
// kubelet's part: a token of the pod's ServiceAccount bound to its pod object (TokenRequest),
// the cluster CA and the namespace mounted read-only at
// /var/run/secrets/kubernetes.io/serviceaccount, and the kubernetes Service's variables
// (KUBERNETES_SERVICE_HOST/PORT) in every container's environment. Pods reach the API server at
// a Service address of their own on port 443, forwarded to it as kube-proxy forwards the
// kubernetes Service; its serving certificate names that address, as a real one names the
// Service's ClusterIP.

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"ecommerce-platform/tests/testkit"
	"ecommerce-platform/tests/testkit/kubetest"
)

// serviceAccountDir is where the kubelet mounts a pod's ServiceAccount token.
const serviceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount"

// sandboxAPI is the API server of one sandbox cluster.
type sandboxAPI struct {
	cp        *kubetest.ControlPlane
	host      string // the address pods reach it at, port 443
	namespace string
}

// holdsToken tells whether the kubelet mounts a ServiceAccount token into a pod: only where
// the pod asks for one (every ServiceAccount of the program turns automounting off).
func holdsToken(spec corev1.PodSpec) bool {
	return spec.AutomountServiceAccountToken != nil && *spec.AutomountServiceAccountToken
}

// podsHoldTokens tells whether any recorded workload's pod holds a token.
func podsHoldTokens(t testing.TB, r testkit.Run) bool {
	for _, w := range r.Workloads() {
		if holdsToken(testkit.TypedPod(t, w).Spec) {
			return true
		}
	}
	return false
}

// startSandboxAPI starts the API server, makes it reachable from the pods and creates the
// recorded Namespace, ServiceAccounts, Roles and RoleBindings in it, exactly as recorded.
func startSandboxAPI(t testing.TB, c *sandboxCluster) *sandboxAPI {
	t.Helper()
	host := c.net.newVIP(t)
	cp := kubetest.Start(t, net.ParseIP(host))
	c.net.forwardPort(t, host, 443, net.JoinHostPort("127.0.0.1", strconv.Itoa(cp.Port)))
	a := &sandboxAPI{cp: cp, host: host}
	namespaces := c.run.OfType(testkit.Namespace)
	require.Len(t, namespaces, 1, "the sandbox models one namespace")
	a.namespace = namespaces[0].K8sName()
	a.cp.Create(t, "/api/v1/namespaces", namespaces[0].Inputs)
	paths := map[string]string{
		testkit.ServiceAccount: "/api/v1/namespaces/%s/serviceaccounts",
		testkit.Role:           "/apis/rbac.authorization.k8s.io/v1/namespaces/%s/roles",
		testkit.RoleBinding:    "/apis/rbac.authorization.k8s.io/v1/namespaces/%s/rolebindings",
	}
	for _, typ := range []string{testkit.ServiceAccount, testkit.Role, testkit.RoleBinding} {
		for _, obj := range c.run.OfType(typ) {
			a.cp.Create(t, fmt.Sprintf(paths[typ], a.namespace), obj.Inputs)
		}
	}
	return a
}

// serviceEnv are the variables the kubelet gives every container for the kubernetes Service.
func (a *sandboxAPI) serviceEnv() []string {
	return []string{
		"KUBERNETES_SERVICE_HOST=" + a.host, "KUBERNETES_SERVICE_PORT=443", "KUBERNETES_SERVICE_PORT_HTTPS=443",
		"KUBERNETES_PORT=tcp://" + a.host + ":443", "KUBERNETES_PORT_443_TCP=tcp://" + a.host + ":443",
		"KUBERNETES_PORT_443_TCP_PROTO=tcp", "KUBERNETES_PORT_443_TCP_PORT=443", "KUBERNETES_PORT_443_TCP_ADDR=" + a.host,
	}
}

// admit creates the pod's object as the StatefulSet controller would (its template, its name,
// a volume per claim) and writes its token volume as the kubelet would: a token of the pod's
// ServiceAccount bound to the pod object, the cluster CA and the namespace, mode 0644 (the
// projected volume's default), group fsGroup. It returns the volume's host folder.
func (a *sandboxAPI) admit(t testing.TB, p *sandboxPod, claims map[string]string, fsGroup int64) string {
	t.Helper()
	pod := corev1.Pod{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: a.namespace, Labels: p.Labels}, Spec: *p.Spec.DeepCopy()}
	for _, name := range slices.Sorted(maps.Keys(claims)) {
		pod.Spec.Volumes = append(pod.Spec.Volumes, corev1.Volume{Name: name,
			VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claims[name]}}})
	}
	var created corev1.Pod
	require.NoError(t, json.Unmarshal(a.cp.Create(t, a.path("pods"), pod), &created))
	account := p.Spec.ServiceAccountName
	require.NotEmpty(t, account, "pod %s holds a token of the default ServiceAccount", p.Name)
	request := map[string]any{"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": map[string]any{
		"expirationSeconds": 3607, "boundObjectRef": map[string]any{"apiVersion": "v1", "kind": "Pod", "name": p.Name, "uid": string(created.UID)}}}
	var answer struct {
		Status struct {
			Token string `json:"token"`
		} `json:"status"`
	}
	require.NoError(t, json.Unmarshal(a.cp.Create(t, a.path("serviceaccounts/"+account+"/token"), request), &answer))
	require.NotEmpty(t, answer.Status.Token)
	dir := filepath.Join(p.root, "serviceaccount")
	p.writeItems(t, dir, map[string]string{"token": answer.Status.Token, "ca.crt": string(a.cp.CACert), "namespace": a.namespace},
		nil, nil, 0o644, fsGroup)
	return dir
}

// path is a namespaced core API path.
func (a *sandboxAPI) path(resource string) string {
	return "/api/v1/namespaces/" + a.namespace + "/" + resource
}

// labels are a pod object's labels as the API server has them now.
func (a *sandboxAPI) labels(t testing.TB, pod string) map[string]string {
	t.Helper()
	var obj corev1.Pod
	a.get(t, a.path("pods/"+pod), &obj)
	return obj.Labels
}

// get reads an object as the admin.
func (a *sandboxAPI) get(t testing.TB, path string, into any) {
	t.Helper()
	status, body, err := a.cp.Do(http.MethodGet, path, nil)
	require.NoError(t, err)
	require.Equalf(t, http.StatusOK, status, "GET %s: %s", path, body)
	require.NoError(t, json.Unmarshal(body, into))
}

// asToken sends one request with a bearer token (a pod's), from the host, as the pod's
// client would, verifying the API server against the cluster CA; it returns the status.
func (a *sandboxAPI) asToken(t testing.TB, token, method, path string) int {
	t.Helper()
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(a.cp.CACert))
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	req, err := http.NewRequest(method, "https://"+net.JoinHostPort(a.host, "443")+path, nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

// podToken is the token the pod's containers read.
func podToken(t testing.TB, p *sandboxPod) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(p.token, "token"))
	require.NoError(t, err)
	return string(b)
}
