package failover

// TCP forwarders that stand in for the network between pods: database-service (connections
// go to the pod the API server labels role=primary, among the ready ones, as kube-proxy does
// with the Service's role selector) and each member's path to the API server (which a test
// can cut, dropping every byte both ways as a partition does, and heal).

import (
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// forwarder accepts on 127.0.0.1:Port and connects each connection to target()'s port.
type forwarder struct {
	Port   int
	ln     net.Listener
	target func() (int, bool)
	cut    atomic.Bool
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
}

// startForwarder listens on a free port until the test ends.
func startForwarder(t *testing.T, name string, target func() (int, bool)) *forwarder {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err, name)
	f := &forwarder{Port: ln.Addr().(*net.TCPAddr).Port, ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	go f.serve()
	t.Cleanup(func() { _ = ln.Close(); f.closeAll() })
	return f
}

func (f *forwarder) serve() {
	for {
		in, err := f.ln.Accept()
		if err != nil {
			return
		}
		go f.handle(in)
	}
}

// handle connects one client; with no target the connection is closed at once (a Service
// without endpoints refuses).
func (f *forwarder) handle(in net.Conn) {
	port, ok := f.target()
	if !ok {
		_ = in.Close()
		return
	}
	out, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), 2*time.Second)
	if err != nil {
		_ = in.Close()
		return
	}
	f.track(in, out)
	done := make(chan struct{}, 2)
	go func() { f.pipe(out, in); done <- struct{}{} }()
	go func() { f.pipe(in, out); done <- struct{}{} }()
	<-done
	_ = in.Close()
	_ = out.Close()
	<-done
	f.untrack(in, out)
}

// pipe copies src to dst; while the link is cut, what arrives is dropped.
func (f *forwarder) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !f.cut.Load() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// Cut drops every byte both ways from now on, on open and new connections (a partition:
// the other side sees silence, not a reset).
func (f *forwarder) Cut() { f.cut.Store(true) }

// Heal ends the partition: the connections that lived through it are closed (their streams
// lost bytes), new ones work.
func (f *forwarder) Heal() {
	f.closeAll()
	f.cut.Store(false)
}

func (f *forwarder) track(conns ...net.Conn) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range conns {
		f.conns[c] = struct{}{}
	}
}

func (f *forwarder) untrack(conns ...net.Conn) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range conns {
		delete(f.conns, c)
	}
}

func (f *forwarder) closeAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for c := range f.conns {
		_ = c.Close()
	}
}

// primaryService is database-service: every 200 ms it lists the pods labelled role=primary
// and keeps those whose Patroni answers GET /readiness with 200 (the readiness probe); new
// connections go to one of them. More than one is recorded.
type primaryService struct {
	*forwarder
	ports    atomic.Pointer[[]int] // the ready primaries' PostgreSQL ports
	mu       sync.Mutex
	doubled  []string // times two ready pods were labelled primary
	selected []string // the pod each change of target went to, with its time
}

func startPrimaryService(t *testing.T, c *shopCluster) *primaryService {
	t.Helper()
	s := &primaryService{}
	s.ports.Store(&[]int{})
	// kube-proxy spreads new connections over the Service's endpoints: at random here too.
	s.forwarder = startForwarder(t, "database-service", func() (int, bool) {
		ports := *s.ports.Load()
		if len(ports) == 0 {
			return 0, false
		}
		return ports[rand.IntN(len(ports))], true
	})
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		byName := map[string]*member{}
		for _, m := range c.members {
			byName[m.Name] = m
		}
		current := ""
		for {
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Millisecond):
			}
			list, err := c.cp.pods(namespace, "cluster-name="+scope+",role=primary")
			if err != nil {
				continue // the API server's state is kept, as kube-proxy keeps its rules
			}
			var ready []*member
			for _, p := range list.Items {
				if m := byName[p.Metadata.Name]; m != nil {
					if code, err := rest(m, "/readiness", nil); err == nil && code == http.StatusOK {
						ready = append(ready, m)
					}
				}
			}
			var names []string
			ports := []int{}
			for _, m := range ready {
				names = append(names, m.Name)
				ports = append(ports, m.PGPort)
			}
			name := strings.Join(names, "+")
			s.mu.Lock()
			if len(ready) > 1 {
				s.doubled = append(s.doubled, time.Now().Format("15:04:05.000"))
			}
			if name != current {
				s.selected = append(s.selected, time.Now().Format("15:04:05.000")+" "+orNone(name))
				current = name
			}
			s.mu.Unlock()
			s.ports.Store(&ports)
		}
	}()
	t.Cleanup(func() { close(stop); <-done })
	return s
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// history returns the targets taken and the moments two pods were ready primaries.
func (s *primaryService) history() (selected, doubled []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.selected...), append([]string(nil), s.doubled...)
}
