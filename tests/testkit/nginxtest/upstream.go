package nginxtest

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"ecommerce-platform/components/assets"
)

// UpstreamRequest is what the stand-in backend received from nginx.
type UpstreamRequest struct {
	Method     string
	RequestURI string
	Path       string
	RawQuery   string
	Header     http.Header
	Body       string
}

// Upstream stands in for the backend Service (Envoy + PostgREST): it records every
// request, then lets a handler answer.
type Upstream struct {
	Server *httptest.Server
	mu     sync.Mutex
	reqs   []UpstreamRequest
}

func startUpstream(t testing.TB, next http.Handler) *Upstream {
	t.Helper()
	u := &Upstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		u.mu.Lock()
		u.reqs = append(u.reqs, UpstreamRequest{
			Method: r.Method, RequestURI: r.RequestURI, Path: r.URL.Path, RawQuery: r.URL.RawQuery,
			Header: r.Header.Clone(), Body: string(body),
		})
		u.mu.Unlock()
		r.Body = io.NopCloser(bytes.NewReader(body))
		next.ServeHTTP(w, r)
	}))
	t.Cleanup(u.Server.Close)
	return u
}

// Port is the upstream's TCP port, for BackendPort.
func (u *Upstream) Port() int { return u.Server.Listener.Addr().(*net.TCPAddr).Port }

// Take returns the recorded requests and forgets them.
func (u *Upstream) Take() []UpstreamRequest {
	u.mu.Lock()
	defer u.mu.Unlock()
	reqs := u.reqs
	u.reqs = nil
	return reqs
}

// EchoBackend answers every request like PostgREST answers a read: a JSON array.
var EchoBackend = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Content-Range", "0-0/*")
	_, _ = fmt.Fprintf(w, `[{"upstream_path":%q}]`, r.URL.Path)
})

// BackedBy starts a stand-in backend and an nginx in front of it.
func BackedBy(t testing.TB, handler http.Handler, adjust func(*assets.NginxSettings)) (*Server, *Upstream) {
	t.Helper()
	up := startUpstream(t, handler)
	s := DeployedSettings()
	s.BackendHost = "127.0.0.1"
	s.BackendPort = up.Port()
	if adjust != nil {
		adjust(&s)
	}
	return Start(t, s), up
}

// Do sends one request and returns the response and its body.
func Do(t testing.TB, method, url string, header map[string]string, body string) (*http.Response, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	require.NoError(t, err)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(b)
}
