package testkit

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// OwnedStdio gives a command a stdout/stderr pipe owned by the uid and gid it runs as, as runc
// does for a container's stdio: nginx reopens /dev/stdout for its access log, which an
// unprivileged process may do only on a pipe it owns. What it writes goes to w; the returned
// function closes the pipe once the command has ended and waits for the last bytes.
func OwnedStdio(t testing.TB, cmd *exec.Cmd, w io.Writer, uid, gid int64) func() {
	t.Helper()
	r, pw, err := os.Pipe()
	require.NoError(t, err)
	require.NoError(t, pw.Chown(int(uid), int(gid)))
	cmd.Stdout, cmd.Stderr = pw, pw
	copied := make(chan struct{})
	go func() { _, _ = io.Copy(w, r); close(copied) }()
	return func() { _ = pw.Close(); <-copied; _ = r.Close() }
}

// SyncBuffer collects a process's output while tests read it from other goroutines.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p.
func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String is everything written so far.
func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
