//go:build integration

package integration

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
)

// The members' ServiceAccount and the label Patroni finds them by (components/database/patroni.go).
const (
	membersAccount = "database-members"
	membersLabel   = "ecommerce-platform/patroni-cluster=database-cluster"
)

// send makes one request and returns its status and body.
func (k *kube) send(t testing.TB, method, path, contentType string, body []byte) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, k.server+path, bytes.NewReader(body))
	require.NoError(t, err)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := k.client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, out
}

// bearer authenticates every request with a token instead of the admin's certificate.
type bearer struct {
	token string
	next  http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.next.RoundTrip(r)
}

// asServiceAccount is a client holding a fresh token of a ServiceAccount (TokenRequest), as
// the kubelet mounts it into the account's pods; ok is false while the account does not exist.
func (k *kube) asServiceAccount(t testing.TB, ns, account string) (*kube, bool) {
	t.Helper()
	status, body := k.send(t, http.MethodPost, nsPath(ns, "serviceaccounts")+"/"+account+"/token", "application/json",
		[]byte(`{"apiVersion":"authentication.k8s.io/v1","kind":"TokenRequest","spec":{"expirationSeconds":3600}}`))
	if status == http.StatusNotFound {
		return nil, false
	}
	require.Equal(t, http.StatusCreated, status, "token of %s: %s", account, body)
	var tr struct {
		Status struct{ Token string } `json:"status"`
	}
	require.NoError(t, json.Unmarshal(body, &tr))
	base := k.client.Transport.(*http.Transport)
	transport := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: base.TLSClientConfig.RootCAs}}
	return &kube{server: k.server, client: &http.Client{Timeout: 10 * time.Second, Transport: bearer{tr.Status.Token, transport}}}, true
}

// patroniStandIn does on the local cluster what Patroni does in the members' pods, whose
// processes kwok does not run: it takes the leader lock (the database-cluster-leader
// ConfigMap) and labels each member's pod with its role, database-0 primary and the others
// replica. It acts with the members' own ServiceAccount token, so `prod up` proves that
// the Role lets Patroni do exactly this; every refused call is kept and reported.
type patroniStandIn struct {
	stop, done chan struct{}
	mu         sync.Mutex
	member     *kube
	locked     bool
	// refused holds each call's last refusal, cleared when the call succeeds: the
	// ServiceAccount exists a moment before its RoleBinding, and Patroni retries as this does.
	refused map[string]string
}

func startPatroniStandIn(t *testing.T, admin *kube, ns string) *patroniStandIn {
	p := &patroniStandIn{stop: make(chan struct{}), done: make(chan struct{}), refused: map[string]string{}}
	go func() {
		defer close(p.done)
		for {
			select {
			case <-p.stop:
				return
			case <-time.After(500 * time.Millisecond):
			}
			p.step(t, admin, ns)
		}
	}()
	t.Cleanup(p.halt)
	return p
}

func (p *patroniStandIn) halt() {
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
	<-p.done
}

// outcome records a call's result: a refusal until the same call succeeds.
func (p *patroniStandIn) outcome(call string, status int, body []byte, ok bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if ok {
		delete(p.refused, call)
	} else {
		p.refused[call] = fmt.Sprintf("%d %s", status, body)
	}
	return ok
}

// step is one of Patroni's loops, as far as the API server sees it.
func (p *patroniStandIn) step(t *testing.T, admin *kube, ns string) {
	if p.member == nil {
		member, ok := admin.asServiceAccount(t, ns, membersAccount)
		if !ok {
			return
		}
		p.member = member
	}
	if !p.locked {
		lock := []byte(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"database-cluster-leader","annotations":{"leader":"database-0"}}}`)
		status, body := p.member.send(t, http.MethodPost, nsPath(ns, "configmaps"), "application/json", lock)
		if p.locked = p.outcome("create the leader lock", status, body, status == http.StatusCreated); !p.locked {
			return
		}
	}
	var pods corev1.PodList
	status := p.member.get(t, nsPath(ns, "pods")+"?labelSelector="+url.QueryEscape(membersLabel), &pods)
	if !p.outcome("list the members", status, nil, status == http.StatusOK) {
		return
	}
	for _, pod := range pods.Items {
		if pod.Labels["role"] != "" {
			continue
		}
		role := "replica"
		if pod.Name == "database-0" {
			role = "primary"
		}
		patch := []byte(fmt.Sprintf(`{"metadata":{"labels":{"role":%q}}}`, role))
		status, body := p.member.send(t, http.MethodPatch, nsPath(ns, "pods")+"/"+pod.Name, "application/merge-patch+json", patch)
		p.outcome("label "+pod.Name, status, body, status == http.StatusOK)
	}
}

// assertPatroniOnly checks, after the stand-in ran, that it needed nothing it was refused and
// that the members' token can do nothing beyond Patroni's calls.
func (p *patroniStandIn) assertPatroniOnly(t *testing.T, admin *kube, ns string) {
	p.halt()
	p.mu.Lock()
	assert.Empty(t, p.refused, "Patroni's calls still refused by its Role")
	assert.True(t, p.locked, "the leader lock was never taken")
	p.mu.Unlock()
	require.NotNil(t, p.member, "the members' ServiceAccount never existed")
	var backends corev1.PodList
	admin.mustGet(t, nsPath(ns, "pods")+"?labelSelector="+url.QueryEscape("app.kubernetes.io/name=backend"), &backends)
	require.NotEmpty(t, backends.Items)
	label := []byte(`{"metadata":{"labels":{"role":"primary"}}}`)
	for what, call := range map[string]struct {
		method, path, contentType string
		body                      []byte
	}{
		"label a backend pod":                     {http.MethodPatch, nsPath(ns, "pods") + "/" + backends.Items[0].Name, "application/merge-patch+json", label},
		"patch the program's database-config":     {http.MethodPatch, nsPath(ns, "configmaps") + "/database-config", "application/merge-patch+json", []byte(`{"data":{"backup.sh":"exit 0"}}`)},
		"delete the leader lock":                  {http.MethodDelete, nsPath(ns, "configmaps") + "/database-cluster-leader", "", nil},
		"read the database credentials":           {http.MethodGet, nsPath(ns, "secrets") + "/database-credentials", "", nil},
		"scale the members":                       {http.MethodPatch, nsPath(ns, "statefulsets") + "/database/scale", "application/merge-patch+json", []byte(`{"spec":{"replicas":1}}`)},
		"list pods of another namespace":          {http.MethodGet, "/api/v1/namespaces/default/pods", "", nil},
		"delete every ConfigMap of the namespace": {http.MethodDelete, nsPath(ns, "configmaps"), "", nil},
	} {
		status, body := p.member.send(t, call.method, call.path, call.contentType, call.body)
		assert.Equalf(t, http.StatusForbidden, status, "the members' token may not %s: %s", what, body)
	}
}
