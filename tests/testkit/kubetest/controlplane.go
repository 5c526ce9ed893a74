// Package kubetest starts a private Kubernetes API server for a test: etcd and
// kube-apiserver from .tools/bin with the flags of scripts/cluster-up.sh, RBAC enforced, and
// no scheduler, controllers or kubelet (the tests make the pod objects and tokens they need).
// The failover engine tests and the container contract suite use it as Patroni's Kubernetes
// store; the test talks to it over REST with an admin client certificate.
package kubetest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"ecommerce-platform/tests/testkit"
	"ecommerce-platform/tests/testkit/pgtest"
)

// ControlPlane is a running etcd and kube-apiserver of one test.
type ControlPlane struct {
	Port   int    // the API server's https port on 127.0.0.1
	CACert []byte // PEM: the cluster CA (what a pod's ca.crt holds)
	cert   []byte // admin client certificate (system:masters), PEM
	key    []byte
	client *http.Client
}

// Start starts etcd and kube-apiserver on free loopback ports and waits for /readyz; both
// stop when the test ends. The serving certificate names 127.0.0.1, localhost and
// extraIPs (the address pods reach it at, as a real one names the kubernetes Service's
// ClusterIP).
func Start(t testing.TB, extraIPs ...net.IP) *ControlPlane {
	t.Helper()
	etcd, apiserver := testkit.RequireTool(t, "etcd"), testkit.RequireTool(t, "kube-apiserver")
	dir := pgtest.ServerDir(t)
	ca, caKey := newCA(t)
	ips := append([]net.IP{net.ParseIP("127.0.0.1")}, extraIPs...)
	serverCert, serverKey := issue(t, ca, caKey, pkix.Name{CommonName: "kube-apiserver"}, x509.ExtKeyUsageServerAuth, ips)
	adminCert, adminKey := issue(t, ca, caKey, pkix.Name{CommonName: "kubernetes-admin", Organization: []string{"system:masters"}},
		x509.ExtKeyUsageClientAuth, ips)
	saKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	saDER, err := x509.MarshalPKCS8PrivateKey(saKey)
	require.NoError(t, err)
	saPub, err := x509.MarshalPKIXPublicKey(&saKey.PublicKey)
	require.NoError(t, err)
	files := map[string][]byte{
		"ca.crt": pemBlock("CERTIFICATE", ca.Raw), "apiserver.crt": serverCert, "apiserver.key": serverKey,
		"sa.key": pemBlock("PRIVATE KEY", saDER), "sa.pub": pemBlock("PUBLIC KEY", saPub),
	}
	for name, b := range files {
		pgtest.WriteFile(t, filepath.Join(dir, name), string(b), 0o600)
	}

	etcdPort, peerPort, apiPort := testkit.FreePort(t), testkit.FreePort(t), testkit.FreePort(t)
	startTool(t, "etcd", filepath.Join(dir, "etcd.log"), etcd,
		"--name=kubetest", "--data-dir="+filepath.Join(dir, "etcd"),
		fmt.Sprintf("--listen-client-urls=http://127.0.0.1:%d", etcdPort),
		fmt.Sprintf("--advertise-client-urls=http://127.0.0.1:%d", etcdPort),
		fmt.Sprintf("--listen-peer-urls=http://127.0.0.1:%d", peerPort),
		fmt.Sprintf("--initial-advertise-peer-urls=http://127.0.0.1:%d", peerPort),
		fmt.Sprintf("--initial-cluster=kubetest=http://127.0.0.1:%d", peerPort),
		"--unsafe-no-fsync", "--log-level=warn")
	api := startTool(t, "kube-apiserver", filepath.Join(dir, "kube-apiserver.log"), apiserver,
		fmt.Sprintf("--etcd-servers=http://127.0.0.1:%d", etcdPort),
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", "--secure-port="+strconv.Itoa(apiPort),
		"--endpoint-reconciler-type=none",
		"--tls-cert-file="+filepath.Join(dir, "apiserver.crt"), "--tls-private-key-file="+filepath.Join(dir, "apiserver.key"),
		"--client-ca-file="+filepath.Join(dir, "ca.crt"),
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file="+filepath.Join(dir, "sa.pub"),
		"--service-account-signing-key-file="+filepath.Join(dir, "sa.key"),
		"--service-cluster-ip-range=10.96.0.0/16", "--authorization-mode=RBAC", "--profiling=false")

	pool := x509.NewCertPool()
	pool.AddCert(ca)
	pair, err := tls.X509KeyPair(adminCert, adminKey)
	require.NoError(t, err)
	cp := &ControlPlane{Port: apiPort, CACert: files["ca.crt"], cert: adminCert, key: adminKey,
		client: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}}}}}
	deadline := time.Now().Add(120 * time.Second)
	for {
		status, _, err := cp.Do(http.MethodGet, "/readyz", nil)
		if err == nil && status == http.StatusOK {
			break
		}
		require.False(t, api.Exited(), "kube-apiserver exited:\n%s", api.Log())
		require.True(t, time.Now().Before(deadline), "kube-apiserver not ready within 120 s (%d, %v):\n%s", status, err, api.Log())
		time.Sleep(500 * time.Millisecond)
	}
	return cp
}

// startTool runs a control-plane binary with pgtest's process handling (the server user, a
// process group of its own, killed with the test binary); it writes only into the test's
// folder, which that user owns.
func startTool(t testing.TB, name, logPath, bin string, args ...string) *pgtest.Process {
	t.Helper()
	return pgtest.StartProcess(t, name, logPath, syscall.SIGTERM, bin, args...)
}

// Do sends one request to the API server as the admin and returns the status and body.
func (cp *ControlPlane) Do(method, path string, body any) (int, []byte, error) {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		r = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, fmt.Sprintf("https://127.0.0.1:%d%s", cp.Port, path), r)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := cp.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// Create POSTs an object and fails the test unless the API server created it; it returns
// the created object as the API server answered it.
func (cp *ControlPlane) Create(t testing.TB, path string, obj any) []byte {
	t.Helper()
	status, body, err := cp.Do(http.MethodPost, path, obj)
	require.NoError(t, err)
	require.Equal(t, http.StatusCreated, status, "POST %s: %s", path, body)
	return body
}

// PodList is the part of a PodList the tests read.
type PodList struct {
	Items []struct {
		Metadata struct {
			Name        string            `json:"name"`
			Labels      map[string]string `json:"labels"`
			Annotations map[string]string `json:"annotations"`
		} `json:"metadata"`
	} `json:"items"`
}

// Pods lists the namespace's pods that match a label selector.
func (cp *ControlPlane) Pods(namespace, selector string) (PodList, error) {
	var list PodList
	status, body, err := cp.Do(http.MethodGet, "/api/v1/namespaces/"+namespace+"/pods?labelSelector="+url.QueryEscape(selector), nil)
	if err != nil {
		return list, err
	}
	if status != http.StatusOK {
		return list, fmt.Errorf("list pods: %d %s", status, body)
	}
	return list, json.Unmarshal(body, &list)
}

// Kubeconfig is a kubeconfig for the admin against server (an https URL whose certificate is
// the API server's: 127.0.0.1), with its one context named context.
func (cp *ControlPlane) Kubeconfig(server, context string) string {
	b64 := func(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
	return fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: kubetest
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: admin
  user:
    client-certificate-data: %s
    client-key-data: %s
contexts:
- name: %s
  context: {cluster: kubetest, user: admin}
current-context: %s
`, server, b64(cp.CACert), b64(cp.cert), b64(cp.key), context, context)
}

func newCA(t testing.TB) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kubetest-ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	ca, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return ca, key
}

// issue signs a certificate for ips and localhost with one extended key usage.
func issue(t testing.TB, ca *x509.Certificate, caKey *ecdsa.PrivateKey, subject pkix.Name, usage x509.ExtKeyUsage, ips []net.IP) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: subject,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
		IPAddresses: ips, DNSNames: []string{"localhost"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	require.NoError(t, err)
	keyDER, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	return pemBlock("CERTIFICATE", der), pemBlock("EC PRIVATE KEY", keyDER)
}

func pemBlock(kind string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der})
}
