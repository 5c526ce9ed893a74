package nginxtest

import (
	"net"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// Syslog is a UDP syslog listener: what the log collector sidecar receives.
type Syslog struct {
	Addr string
	mu   sync.Mutex
	msgs []string
}

func listenSyslog(t testing.TB) *Syslog {
	t.Helper()
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	l := &Syslog{Addr: conn.LocalAddr().String()}
	go func() {
		buf := make([]byte, 65536)
		for {
			n, _, err := conn.ReadFrom(buf)
			if err != nil {
				return
			}
			l.mu.Lock()
			l.msgs = append(l.msgs, string(buf[:n]))
			l.mu.Unlock()
		}
	}()
	return l
}

// Messages are the datagrams received so far.
func (l *Syslog) Messages() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.msgs...)
}
