package pgtest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// Process is a server process (postgres, pgbouncer) started by a test.
type Process struct {
	name    string
	logPath string
	Cmd     *exec.Cmd
	Done    chan struct{}
	err     error
}

// StartProcess starts a long-running server as the server user, logging to logPath, and
// stops it when the test ends (stopSignal first, SIGKILL after 15 s). The process gets
// SIGKILL should the test binary die. It is started from a goroutine locked to its OS thread
// because the kernel sends that "parent died" signal when the starting thread exits.
func StartProcess(t testing.TB, name, logPath string, stopSignal syscall.Signal, bin string, args ...string) *Process {
	t.Helper()
	return StartProcessEnv(t, name, logPath, stopSignal, nil, bin, args...)
}

// StartProcessEnv is StartProcess with variables added to the environment.
func StartProcessEnv(t testing.TB, name, logPath string, stopSignal syscall.Signal, env []string, bin string, args ...string) *Process {
	t.Helper()
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	require.NoError(t, err)
	cmd := exec.Command(bin, args...)
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	cmd.Dir = filepath.Dir(logPath)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: RunAs(t), Pdeathsig: syscall.SIGKILL, Setpgid: true}
	p := &Process{name: name, logPath: logPath, Cmd: cmd, Done: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with this goroutine
		defer close(p.Done)
		defer logFile.Close()
		if err := cmd.Start(); err != nil {
			p.err = err
			started <- err
			return
		}
		started <- nil
		p.err = cmd.Wait()
	}()
	require.NoError(t, <-started, "start %s", name)
	t.Cleanup(func() {
		select {
		case <-p.Done:
		default:
			_ = cmd.Process.Signal(stopSignal)
			select {
			case <-p.Done:
			case <-time.After(15 * time.Second):
				_ = cmd.Process.Kill()
				<-p.Done
			}
		}
		if t.Failed() {
			t.Logf("--- %s log (%s):\n%s", name, logPath, p.Log())
		}
	})
	return p
}

// Log returns what the process wrote so far.
func (p *Process) Log() string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	return string(b)
}

// Exited tells whether the process has ended.
func (p *Process) Exited() bool {
	select {
	case <-p.Done:
		return true
	default:
		return false
	}
}

// WaitConnect connects with connString until it works, the process dies or 30 s pass.
func WaitConnect(t testing.TB, p *Process, connString string) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(30 * time.Second)
	for {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		conn, err := pgx.Connect(cctx, connString)
		cancel()
		if err == nil {
			require.NoError(t, conn.Close(ctx))
			return
		}
		if p.Exited() {
			t.Fatalf("%s exited before accepting connections (%v):\n%s", p.name, p.err, p.Log())
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not accept connections within 30 s: %v\n%s", p.name, err, p.Log())
		}
		time.Sleep(100 * time.Millisecond)
	}
}
