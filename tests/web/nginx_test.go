package web

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"ecommerce-platform/components/assets"
	"ecommerce-platform/tests/testkit"
	"ecommerce-platform/tests/testkit/nginxtest"
)

// TestNginxConfigTest: `nginx -t` accepts the rendered nginx.conf, for the deployed values
// and the edges of what config validation allows.
func TestNginxConfigTest(t *testing.T) {
	bin := testkit.RequireEngine(t, "nginx")
	cases := []struct {
		name   string
		adjust func(*assets.NginxSettings)
	}{
		{"deployed blue", func(*assets.NginxSettings) {}},
		{"deployed green", func(s *assets.NginxSettings) { s.Color = "green" }},
		{"smallest limits", func(s *assets.NginxSettings) {
			s.RateLimitPerSecond, s.RateLimitBurst, s.UpstreamTimeoutSeconds, s.LoginRatePerMinute = 1, 0, 1, 1
		}},
		{"with TLS", func(s *assets.NginxSettings) {
			s.TLSPort, s.RedirectPort, s.TLSDir = 8443, 8089, nginxtest.TLSFiles(t)
		}},
		{"largest limits", func(s *assets.NginxSettings) {
			s.RateLimitPerSecond, s.RateLimitBurst, s.UpstreamTimeoutSeconds, s.LoginRatePerMinute = 100000, 100000, 600, 10000
			s.TrustedProxies = []string{"10.0.0.0/8", "192.168.1.7/32", "fd00::/8"}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := nginxtest.DeployedSettings()
			// nginx resolves upstream names when it loads the conf; in the cluster that is
			// the backend Service's name, here a name every machine resolves.
			s.BackendHost = "localhost"
			tc.adjust(&s)
			dirs := nginxtest.Prepare(t, &s)
			out, err := nginxtest.Output(t, nginxtest.Command(bin, "-t", "-c", dirs.Conf))
			require.NoError(t, err, "nginx -t:\n%s", out)
			assert.Contains(t, string(out), "test is successful")
			assert.NotContains(t, string(out), "[warn]", "nginx -t warned:\n%s", out)
		})
	}
}

// TestNginxRenderedConf checks what the text itself promises (the engine checks syntax).
func TestNginxRenderedConf(t *testing.T) {
	conf, err := assets.RenderNginxConf(nginxtest.DeployedSettings())
	require.NoError(t, err)
	for _, want := range []string{
		"pid /tmp/nginx.pid;",
		"access_log /dev/stdout json;",
		"access_log syslog:server=127.0.0.1:5140,facility=local7,tag=nginx,severity=info json;",
		"listen 8080;",
		"listen 127.0.0.1:8081;",
		"server backend-service:8080;",
		"rate=20r/s;",
		"burst=40 nodelay;",
		"proxy_read_timeout    30s;",
		"root /usr/share/nginx/html;",
		"server_tokens off;",
		"worker_shutdown_timeout",
		"alias /etc/nginx/release/;",
	} {
		assert.Contains(t, conf, want)
	}
	assert.NotContains(t, conf, "<no value>")
	assert.NotContains(t, conf, "worker_processes auto", "auto counts the node's cores, not the pod's CPU limit")
	assert.NotRegexp(t, regexp.MustCompile(`(?m)^\s*user\s`), conf, "the unprivileged image runs as uid 101 already")
	for _, temp := range []string{"client_body", "proxy", "fastcgi", "uwsgi", "scgi"} {
		assert.Regexp(t, regexp.MustCompile(`(?m)^\s*`+temp+`_temp_path\s+/tmp/`), conf, "%s_temp_path must be on the writable /tmp", temp)
	}
}

// TestNginxRateLimitRendering: the limit_req line for the range config validation allows
// (nginx rejects burst=0, so no burst is written then).
func TestNginxRateLimitRendering(t *testing.T) {
	cases := []struct {
		rate, burst int
		want        []string
	}{
		{20, 40, []string{"rate=20r/s;", "limit_req zone=api burst=40 nodelay;"}},
		{1, 0, []string{"rate=1r/s;", "limit_req zone=api nodelay;"}},
		{100000, 100000, []string{"rate=100000r/s;", "limit_req zone=api burst=100000 nodelay;"}},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("rate %d burst %d", tc.rate, tc.burst), func(t *testing.T) {
			s := nginxtest.DeployedSettings()
			s.RateLimitPerSecond, s.RateLimitBurst = tc.rate, tc.burst
			conf, err := assets.RenderNginxConf(s)
			require.NoError(t, err)
			for _, want := range tc.want {
				assert.Contains(t, conf, want)
			}
		})
	}
}

// TestNginxProxiesSeedPaths: each of the seed's API paths reaches PostgREST's path with
// method, query string, body and the headers PostgREST reads intact.
func TestNginxProxiesSeedPaths(t *testing.T) {
	ngx, up := nginxtest.BackedBy(t, nginxtest.EchoBackend, nil)
	const token = "Bearer eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoid2ViX3VzZXIifQ.c2lnbmF0dXJl"
	cases := []struct {
		name      string
		method    string
		path      string
		header    map[string]string
		body      string
		wantPath  string
		wantQuery string
	}{
		{name: "users", method: "GET", path: "/api/users", wantPath: "/users"},
		{name: "users select", method: "GET", path: "/api/users?select=id,email&order=id.asc",
			wantPath: "/users", wantQuery: "select=id,email&order=id.asc"},
		{name: "products filter", method: "GET", path: "/api/products?id=eq.1",
			wantPath: "/products", wantQuery: "id=eq.1"},
		{name: "products encoded filter", method: "GET", path: "/api/products?name=ilike.*Mug%20Large*&select=id,name,price",
			wantPath: "/products", wantQuery: "name=ilike.*Mug%20Large*&select=id,name,price"},
		{name: "orders with token", method: "GET", path: "/api/orders?order=id.desc",
			header:   map[string]string{"Authorization": token},
			wantPath: "/orders", wantQuery: "order=id.desc"},
		{name: "stats as object", method: "GET", path: "/api/stats",
			header:   map[string]string{"Accept": "application/vnd.pgrst.object+json"},
			wantPath: "/stats"},
		{name: "place_order", method: "POST", path: "/api/rpc/place_order",
			header: map[string]string{"Authorization": token, "Content-Type": "application/json",
				"Prefer": "return=representation", "Accept": "application/json"},
			body:     `{"items":[{"product_id":1,"quantity":2}]}`,
			wantPath: "/rpc/place_order"},
		{name: "login", method: "POST", path: "/api/rpc/login",
			header:   map[string]string{"Content-Type": "application/json"},
			body:     `{"email":"alice@example.com","password":"s3cret"}`,
			wantPath: "/rpc/login"},
		{name: "health", method: "GET", path: "/api/health", wantPath: "/health"},
		{name: "patch with prefer", method: "PATCH", path: "/api/products?id=eq.3",
			header: map[string]string{"Authorization": token, "Content-Type": "application/json",
				"Prefer": "return=minimal"},
			body: `{"stock":7}`, wantPath: "/products", wantQuery: "id=eq.3"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			up.Take()
			resp, body := nginxtest.Do(t, tc.method, ngx.Base+tc.path, tc.header, tc.body)
			require.Equal(t, http.StatusOK, resp.StatusCode, body)
			assert.JSONEq(t, fmt.Sprintf(`[{"upstream_path":%q}]`, tc.wantPath), body)
			assert.Equal(t, "0-0/*", resp.Header.Get("Content-Range"), "PostgREST's headers come back")

			reqs := up.Take()
			require.Len(t, reqs, 1)
			got := reqs[0]
			wantURI := tc.wantPath
			if tc.wantQuery != "" {
				wantURI += "?" + tc.wantQuery
			}
			assert.Equal(t, tc.method, got.Method)
			assert.Equal(t, wantURI, got.RequestURI, "exact upstream path and query")
			assert.Equal(t, tc.wantPath, got.Path)
			assert.Equal(t, tc.wantQuery, got.RawQuery)
			assert.Equal(t, tc.body, got.Body)
			for _, h := range []string{"Authorization", "Prefer", "Accept", "Content-Type"} {
				if v, ok := tc.header[h]; ok {
					assert.Equal(t, v, got.Header.Get(h), "header %s", h)
				}
			}
			assert.NotEmpty(t, got.Header.Get("X-Request-Id"))
			assert.Equal(t, resp.Header.Get("X-Request-Id"), got.Header.Get("X-Request-Id"),
				"the client sees the id the backend got")
			assert.Equal(t, "127.0.0.1", got.Header.Get("X-Forwarded-For"))
			assert.Equal(t, "127.0.0.1", got.Header.Get("X-Real-Ip"))
		})
	}

	t.Run("client request id is kept", func(t *testing.T) {
		up.Take()
		resp, _ := nginxtest.Do(t, "GET", ngx.Base+"/api/users", map[string]string{"X-Request-Id": "req-42"}, "")
		require.Equal(t, http.StatusOK, resp.StatusCode)
		reqs := up.Take()
		require.Len(t, reqs, 1)
		assert.Equal(t, "req-42", reqs[0].Header.Get("X-Request-Id"))
		assert.Equal(t, "req-42", resp.Header.Get("X-Request-Id"))
	})
}

// TestNginxAnswersItself: what nginx answers without the backend, and the headers every
// answer carries.
func TestNginxAnswersItself(t *testing.T) {
	ngx, up := nginxtest.BackedBy(t, nginxtest.EchoBackend, func(s *assets.NginxSettings) { s.Color = "green" })
	nginxtest.WriteRelease(t, ngx.Dirs, "green", "2.3.1")
	cases := []struct {
		name        string
		url         string
		wantStatus  int
		wantType    string // prefix; alternatives separated by |
		wantBody    string // exact unless empty
		wantJSON    string // JSONEq unless empty
		wantContain string
		wantCache   string
	}{
		{name: "probe", url: ngx.Base + "/health", wantStatus: 200, wantType: "text/plain", wantBody: "ok"},
		{name: "release color", url: ngx.Base + "/release/color", wantStatus: 200, wantType: "text/plain",
			wantBody: "green", wantCache: "no-cache"},
		{name: "release version", url: ngx.Base + "/release/version", wantStatus: 200, wantType: "text/plain",
			wantBody: "2.3.1", wantCache: "no-cache"},
		{name: "dashboard", url: ngx.Base + "/", wantStatus: 200, wantType: "text/html",
			wantContain: `<script src="app.js" defer></script>`, wantCache: "no-cache"},
		{name: "dashboard script", url: ngx.Base + "/app.js", wantStatus: 200, wantType: "application/javascript|text/javascript",
			wantContain: "/api/rpc/place_order", wantCache: "max-age=600"},
		{name: "dashboard styles", url: ngx.Base + "/style.css", wantStatus: 200, wantType: "text/css",
			wantCache: "max-age=600"},
		{name: "unknown api path", url: ngx.Base + "/api/foo", wantStatus: 404, wantType: "application/json",
			wantJSON: `{"code":"NOT_FOUND","message":"no such API endpoint","details":null,"hint":null}`},
		{name: "api path below a table", url: ngx.Base + "/api/users/1", wantStatus: 404, wantType: "application/json"},
		{name: "api script-looking path", url: ngx.Base + "/api/app.js", wantStatus: 404, wantType: "application/json"},
		{name: "missing static file", url: ngx.Base + "/nope.html", wantStatus: 404},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			up.Take()
			resp, body := nginxtest.Do(t, "GET", tc.url, nil, "")
			require.Equal(t, tc.wantStatus, resp.StatusCode, body)
			if tc.wantType != "" {
				ct := resp.Header.Get("Content-Type")
				ok := false
				for _, want := range strings.Split(tc.wantType, "|") {
					ok = ok || strings.HasPrefix(ct, want)
				}
				assert.True(t, ok, "Content-Type %q, want %s", ct, tc.wantType)
			}
			if tc.wantBody != "" {
				assert.Equal(t, tc.wantBody, body)
			}
			if tc.wantJSON != "" {
				assert.JSONEq(t, tc.wantJSON, body)
			}
			if tc.wantContain != "" {
				assert.Contains(t, body, tc.wantContain)
			}
			if tc.wantCache != "" {
				assert.Contains(t, resp.Header.Get("Cache-Control"), tc.wantCache)
			}
			assert.Equal(t, "nosniff", resp.Header.Get("X-Content-Type-Options"))
			assert.Equal(t, "DENY", resp.Header.Get("X-Frame-Options"))
			assert.Contains(t, resp.Header.Get("Content-Security-Policy"), "default-src 'self'")
			assert.Equal(t, "nginx", resp.Header.Get("Server"), "server_tokens off: no version")
			assert.Empty(t, up.Take(), "answered by nginx, the backend never saw it")
		})
	}

	t.Run("stub_status on the status port", func(t *testing.T) {
		resp, body := nginxtest.Do(t, "GET", ngx.StatusURL, nil, "")
		require.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Contains(t, body, "Active connections:")
		assert.Contains(t, body, "server accepts handled requests")
	})
	t.Run("stub_status not on the public port", func(t *testing.T) {
		resp, _ := nginxtest.Do(t, "GET", ngx.Base+"/stub_status", nil, "")
		assert.Equal(t, http.StatusNotFound, resp.StatusCode)
	})
}

// TestNginxBackendDown: with nothing listening behind it, the API answers 502 JSON (the
// dashboard shows the backend down) while nginx's own /health stays 200.
func TestNginxBackendDown(t *testing.T) {
	s := nginxtest.DeployedSettings()
	s.BackendHost, s.BackendPort = "127.0.0.1", testkit.FreePort(t)
	ngx := nginxtest.Start(t, s)

	resp, body := nginxtest.Do(t, "GET", ngx.Base+"/api/health", nil, "")
	assert.Equal(t, http.StatusBadGateway, resp.StatusCode)
	assert.JSONEq(t, `{"code":"BACKEND_UNAVAILABLE","message":"the API is unavailable","details":null,"hint":null}`, body)
	resp, _ = nginxtest.Do(t, "GET", ngx.Base+"/health", nil, "")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
}

// TestNginxRateLimit: above rate + burst per client IP the API answers 429; the probe path
// is not limited.
func TestNginxRateLimit(t *testing.T) {
	ngx, up := nginxtest.BackedBy(t, nginxtest.EchoBackend, func(s *assets.NginxSettings) {
		s.RateLimitPerSecond, s.RateLimitBurst = 1, 1
	})
	codes := map[int]int{}
	var limited, limitedType string
	for range 10 {
		resp, body := nginxtest.Do(t, "GET", ngx.Base+"/api/products", nil, "")
		codes[resp.StatusCode]++
		if resp.StatusCode == http.StatusTooManyRequests {
			limited, limitedType = body, resp.Header.Get("Content-Type")
		}
	}
	assert.GreaterOrEqual(t, codes[http.StatusOK], 1, "codes %v", codes)
	assert.GreaterOrEqual(t, codes[http.StatusTooManyRequests], 5, "codes %v", codes)
	assert.Equal(t, 10, codes[http.StatusOK]+codes[http.StatusTooManyRequests], "codes %v", codes)
	assert.Len(t, up.Take(), codes[http.StatusOK], "rejected requests never reach the backend")
	assert.JSONEq(t, `{"code":"RATE_LIMITED","message":"too many requests, slow down","details":null,"hint":null}`, limited)
	assert.Equal(t, "application/json", limitedType)

	for range 5 {
		resp, _ := nginxtest.Do(t, "GET", ngx.Base+"/health", nil, "")
		assert.Equal(t, http.StatusOK, resp.StatusCode, "probes are never rate limited")
	}
}

// nginxAccessLine is one line of the JSON access log.
type nginxAccessLine struct {
	Time                 string  `json:"time"`
	RemoteAddr           string  `json:"remote_addr"`
	Request              string  `json:"request"`
	Method               string  `json:"method"`
	URI                  string  `json:"uri"`
	Status               int     `json:"status"`
	Bytes                int     `json:"bytes"`
	RequestTime          float64 `json:"request_time"`
	UpstreamResponseTime string  `json:"upstream_response_time"`
	UpstreamStatus       string  `json:"upstream_status"`
	RequestID            string  `json:"request_id"`
	UserAgent            string  `json:"user_agent"`
	Color                string  `json:"color"`
}

// nginxReadAccessLog parses what the log collector received, as Fluent Bit does: the syslog
// frame with the deployed nginx_syslog parser's regex, then the JSON line inside it.
func nginxReadAccessLog(t testing.TB, l *nginxtest.Syslog) []nginxAccessLine {
	t.Helper()
	frame := nginxSyslogRegexp(t)
	var lines []nginxAccessLine
	for _, msg := range l.Messages() {
		m := frame.FindStringSubmatch(msg)
		require.NotNil(t, m, "the nginx_syslog parser does not match %q", msg)
		assert.Equal(t, "nginx", m[frame.SubexpIndex("ident")])
		var line nginxAccessLine
		dec := json.NewDecoder(strings.NewReader(m[frame.SubexpIndex("message")]))
		dec.DisallowUnknownFields()
		require.NoError(t, dec.Decode(&line), "not a JSON log line: %s", msg)
		lines = append(lines, line)
	}
	return lines
}

// nginxSyslogRegexp is the deployed nginx_syslog parser's regex (Onigmo's syntax, which Go's
// regexp reads the same for this expression).
func nginxSyslogRegexp(t testing.TB) *regexp.Regexp {
	t.Helper()
	parser := nginxFluentBitKeys(t, "fluent-bit-parsers.conf")
	re, err := regexp.Compile(parser["PARSER:nginx_syslog.regex"])
	require.NoError(t, err)
	return re
}

// TestNginxAccessLogJSON: every line of the access log is one JSON object with the fields
// the log collector expects; probes are not logged.
func TestNginxAccessLogJSON(t *testing.T) {
	ngx, _ := nginxtest.BackedBy(t, nginxtest.EchoBackend, func(s *assets.NginxSettings) { s.Color = "green" })
	nginxtest.Do(t, "GET", ngx.Base+"/health", nil, "")
	nginxtest.Do(t, "GET", ngx.Base+`/api/products?name=eq."quoted"`, map[string]string{
		"User-Agent": `agent "with quotes" \ and backslash`, "X-Request-Id": "log-test-1",
	}, "")
	nginxtest.Do(t, "GET", ngx.Base+"/release/color", nil, "")

	// nginx writes a line after it has sent the answer: wait for the last one.
	require.Eventually(t, func() bool { return len(ngx.Syslog.Messages()) >= 2 }, 5*time.Second, 20*time.Millisecond)
	time.Sleep(100 * time.Millisecond) // a third line, if there were one, would be here by now
	lines := nginxReadAccessLog(t, ngx.Syslog)
	require.Len(t, lines, 2, "the probe is not logged")
	// The same lines reach stdout, the container log.
	assert.Contains(t, ngx.Stderr.String(), `"request_id":"log-test-1"`)
	assert.Equal(t, 2, strings.Count(ngx.Stderr.String(), `"color":"green"`))
	api, static := lines[0], lines[1]

	_, err := time.Parse(time.RFC3339, api.Time)
	assert.NoError(t, err, "time is ISO 8601 (the Fluent Bit parser's Time_Format)")
	assert.Equal(t, "127.0.0.1", api.RemoteAddr)
	assert.Equal(t, `GET /api/products?name=eq."quoted" HTTP/1.1`, api.Request)
	assert.Equal(t, "GET", api.Method)
	assert.Equal(t, 200, api.Status)
	assert.Positive(t, api.Bytes)
	assert.GreaterOrEqual(t, api.RequestTime, 0.0)
	assert.Regexp(t, `^\d+\.\d{3}$`, api.UpstreamResponseTime)
	assert.Equal(t, "200", api.UpstreamStatus)
	assert.Equal(t, "log-test-1", api.RequestID)
	assert.Equal(t, `agent "with quotes" \ and backslash`, api.UserAgent)
	assert.Equal(t, "green", api.Color)

	assert.Equal(t, "/release/color", static.URI)
	assert.Empty(t, static.UpstreamStatus, "answered by nginx itself")
	assert.Len(t, static.RequestID, 32, "nginx's own $request_id when the client sent none")
}

// TestNginxFluentBitReceivesTheAccessLog: the log collector listens where nginx sends its
// access log (the pod's loopback), parses the syslog frame and then the JSON inside it with
// nginx's time format, and serves the health endpoint the probes use.
func TestNginxFluentBitReceivesTheAccessLog(t *testing.T) {
	conf, err := assets.RenderNginxConf(nginxtest.DeployedSettings())
	require.NoError(t, err)
	m := regexp.MustCompile(`access_log\s+syslog:server=([0-9.]+):([0-9]+),\S*\s+json;`).FindStringSubmatch(conf)
	require.NotNil(t, m, "nginx sends its access log to the collector over syslog")
	assert.Regexp(t, `access_log\s+/dev/stdout\s+json;`, conf, "and keeps it in the container log")

	fb := nginxFluentBitKeys(t, "fluent-bit.conf")
	parsers := nginxFluentBitKeys(t, "fluent-bit-parsers.conf")
	cases := []struct{ key, want string }{
		{"INPUT.name", "syslog"},
		{"INPUT.mode", "udp"},
		{"INPUT.listen", m[1]},
		{"INPUT.port", m[2]},
		{"INPUT.parser", "nginx_syslog"},
		{"INPUT.storage.type", "filesystem"},
		{"INPUT.storage.pause_on_chunks_overlimit", "On"},
		{"FILTER.name", "parser"},
		{"FILTER.match", "nginx.access"},
		{"FILTER.key_name", "message"},
		{"FILTER.parser", "nginx_json"},
		{"FILTER.reserve_data", "On"},
		{"OUTPUT.name", "stdout"},
		{"OUTPUT.format", "json_lines"},
		{"SERVICE.http_server", "On"},
		{"SERVICE.http_listen", "0.0.0.0"},
		{"SERVICE.http_port", "2020"},
		{"SERVICE.health_check", "On"},
		{"SERVICE.parsers_file", "/fluent-bit/etc/" + "fluent-bit-parsers.conf"},
		{"PARSER:nginx_syslog.format", "regex"},
		{"PARSER:nginx_json.format", "json"},
		{"PARSER:nginx_json.time_key", "time"},
		{"PARSER:nginx_json.time_format", "%Y-%m-%dT%H:%M:%S%z"}, // $time_iso8601
	}
	for _, tc := range cases {
		t.Run(tc.key, func(t *testing.T) {
			got, ok := fb[tc.key]
			if !ok {
				got, ok = parsers[tc.key]
			}
			require.True(t, ok, "%s not set", tc.key)
			assert.Equal(t, tc.want, got)
		})
	}
	assert.Equal(t, fb["INPUT.tag"], fb["FILTER.match"], "the filter parses what the input tags")
	for k, v := range fb {
		if strings.HasPrefix(v, "/") {
			assert.Truef(t, strings.HasPrefix(v, "/fluent-bit/state/") || strings.HasPrefix(v, "/fluent-bit/etc/"),
				"%s = %s: the root filesystem is read-only; write only under /fluent-bit/state", k, v)
		}
	}
}

// nginxFluentBitKeys reads a classic-mode Fluent Bit file into SECTION.key (key lower
// case) -> value, with Fluent Bit's rules: sections at column 0, every key indented
// exactly like the file's first key, each key with a value.
func nginxFluentBitKeys(t testing.TB, path string) map[string]string {
	t.Helper()
	b := []byte(assets.File(path))
	keys := map[string]string{}
	// Sections of a kind that repeats (PARSER) are told apart by their Name, their first key:
	// PARSER:<name>.key.
	section, indent, named := "", "", false
	for n, raw := range strings.Split(string(b), "\n") {
		line := strings.TrimSpace(raw)
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(raw, "[") && strings.HasSuffix(line, "]"):
			section = strings.Trim(line, "[]")
			named = false
		default:
			require.NotEmpty(t, section, "%s:%d: key outside a section", path, n+1)
			lead := raw[:len(raw)-len(strings.TrimLeft(raw, " \t"))]
			if indent == "" {
				indent = lead
			}
			require.NotEmpty(t, lead, "%s:%d: keys are indented", path, n+1)
			require.Equal(t, indent, lead, "%s:%d: invalid indentation level", path, n+1)
			f := strings.Fields(line)
			require.GreaterOrEqual(t, len(f), 2, "line %q", line)
			if section == "PARSER" && !named {
				require.Equal(t, "name", strings.ToLower(f[0]), "%s:%d: a PARSER starts with its Name", path, n+1)
				section, named = section+":"+f[1], true
			}
			key := section + "." + strings.ToLower(f[0])
			require.NotContains(t, keys, key, "%s set twice", key)
			keys[key] = strings.Join(f[1:], " ")
		}
	}
	return keys
}

// TestFluentBitBufferFitsItsVolume: the collector's filesystem buffer pauses its input at
// storage.max_chunks_up chunks (Fluent Bit's chunks are at most 2 MB), and that bound fits in
// the state volume's size limit with room to spare, so a blocked stdout never grows the
// buffer into an eviction of the frontend pod (measured with Fluent Bit v3.2.10: without the
// bound, 16 MB and rising; with it, 11 MB and flat).
func TestFluentBitBufferFitsItsVolume(t *testing.T) {
	fb := nginxFluentBitKeys(t, "fluent-bit.conf")
	chunks, err := strconv.Atoi(fb["SERVICE.storage.max_chunks_up"])
	require.NoError(t, err, "storage.max_chunks_up must be set")
	assert.Equal(t, "On", fb["INPUT.storage.pause_on_chunks_overlimit"])
	for _, stack := range []string{"dev", "prod"} {
		pod := testkit.TypedPod(t, testkit.MustRun(t, stack, nil).Object(t, testkit.Deployment, "frontend-blue")).Spec
		for _, v := range pod.Volumes {
			if v.Name != "fluent-bit-state" {
				continue
			}
			require.NotNil(t, v.EmptyDir.SizeLimit, stack)
			bound := int64(chunks) * 2 << 20
			assert.LessOrEqual(t, 2*bound, v.EmptyDir.SizeLimit.Value(), "%s: %d chunks of 2 MB, twice over, fit in %s", stack, chunks, v.EmptyDir.SizeLimit)
		}
	}
}
