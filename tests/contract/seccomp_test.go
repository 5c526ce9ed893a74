package contract

import (
	"encoding/binary"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	seccompbpf "github.com/elastic/go-seccomp-bpf"
	"github.com/elastic/go-seccomp-bpf/arch"
	"github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"

	"ecommerce-platform/tests/testkit"
)

// Every pod asks for seccompProfile RuntimeDefault: the container runtime's default profile.
// containerd's is derived from Docker's (moby/profiles/seccomp), which the sandbox compiles
// here for this machine's architecture, for a container with no capabilities (every
// container drops ALL), and hands to bubblewrap (--seccomp), which installs it right before
// the container's process starts, as runc does. Syscalls outside the profile fail with EPERM.

// runtimeDefaultFilter is the path of the compiled profile (a cBPF program as bubblewrap
// reads it), built once per test binary.
func runtimeDefaultFilter(t testing.TB) string {
	t.Helper()
	path, err := compiledRuntimeDefault()
	require.NoError(t, err, "compile the RuntimeDefault seccomp profile")
	return path
}

// compiledRuntimeDefault compiles the profile on first use and returns its file.
var compiledRuntimeDefault = sync.OnceValues(func() (string, error) {
	prog, err := compileRuntimeDefault()
	if err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp("", "seccomp-")
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "runtime-default.bpf")
	return path, os.WriteFile(path, prog, 0o644)
})

// compileRuntimeDefault turns the default profile into raw cBPF (struct sock_filter, native
// byte order).
func compileRuntimeDefault() ([]byte, error) {
	// The profile as the runtime expands it for this architecture, this kernel and a
	// container without capabilities (every container drops ALL).
	noCaps := &specs.Spec{Process: &specs.Process{Capabilities: &specs.LinuxCapabilities{}}}
	profile, err := seccomp.GetDefaultProfile(noCaps)
	if err != nil {
		return nil, fmt.Errorf("default profile: %w", err)
	}
	policy, err := runtimeDefaultPolicy(profile)
	if err != nil {
		return nil, err
	}
	insns, err := policy.Assemble()
	if err != nil {
		return nil, fmt.Errorf("assemble: %w", err)
	}
	raw, err := bpf.Assemble(insns)
	if err != nil {
		return nil, fmt.Errorf("encode: %w", err)
	}
	out := make([]byte, 0, 8*len(raw))
	for _, in := range raw {
		out = binary.NativeEndian.AppendUint16(out, in.Op)
		out = append(out, in.Jt, in.Jf)
		out = binary.NativeEndian.AppendUint32(out, in.K)
	}
	return out, nil
}

// runtimeDefaultPolicy turns an expanded profile into groups: the rules that return an errno
// first, then one group of allowed syscalls (each unconditionally, or under the profile's
// argument conditions); everything else fails with the profile's default errno (EPERM).
func runtimeDefaultPolicy(profile *specs.LinuxSeccomp) (seccompbpf.Policy, error) {
	info, err := arch.GetInfo("")
	if err != nil {
		return seccompbpf.Policy{}, err
	}
	if profile.DefaultAction != specs.ActErrno || profile.DefaultErrnoRet == nil || *profile.DefaultErrnoRet != uint(unix.EPERM) {
		return seccompbpf.Policy{}, fmt.Errorf("default action %s: only ERRNO(EPERM) is modelled", profile.DefaultAction)
	}
	var groups []seccompbpf.SyscallGroup
	allow := seccompbpf.SyscallGroup{Action: seccompbpf.ActionAllow}
	conditional := map[string][]seccompbpf.ArgumentConditions{}
	for _, rule := range profile.Syscalls {
		names := slices.DeleteFunc(slices.Clone(rule.Names), func(n string) bool { _, ok := info.SyscallNames[n]; return !ok })
		switch rule.Action {
		case specs.ActAllow:
			if len(rule.Args) == 0 {
				allow.Names = append(allow.Names, names...)
				continue
			}
			conditions, err := argumentConditions(rule.Args)
			if err != nil {
				return seccompbpf.Policy{}, fmt.Errorf("%v: %w", rule.Names, err)
			}
			for _, n := range names {
				conditional[n] = append(conditional[n], conditions)
			}
		case specs.ActErrno:
			if len(rule.Args) > 0 || rule.ErrnoRet == nil {
				return seccompbpf.Policy{}, fmt.Errorf("%v: only unconditional ERRNO rules with an errno are modelled", rule.Names)
			}
			groups = append(groups, seccompbpf.SyscallGroup{Names: names, Action: seccompbpf.ActionErrno | seccompbpf.Action(*rule.ErrnoRet)})
		default:
			return seccompbpf.Policy{}, fmt.Errorf("%v: action %s is not modelled", rule.Names, rule.Action)
		}
	}
	allow.Names = slices.Compact(slices.Sorted(slices.Values(allow.Names)))
	for _, name := range slices.Sorted(maps.Keys(conditional)) {
		if slices.Contains(allow.Names, name) {
			continue // allowed whatever its arguments
		}
		for _, c := range conditional[name] {
			allow.NamesWithCondtions = append(allow.NamesWithCondtions, seccompbpf.NameWithConditions{Name: name, Conditions: c})
		}
	}
	groups = append(groups, allow)
	return seccompbpf.Policy{DefaultAction: seccompbpf.ActionErrno, Syscalls: groups}, nil
}

// argumentConditions translates a rule's argument checks (all must hold).
func argumentConditions(args []specs.LinuxSeccompArg) (seccompbpf.ArgumentConditions, error) {
	ops := map[specs.LinuxSeccompOperator]seccompbpf.Operation{
		specs.OpEqualTo: seccompbpf.Equal, specs.OpNotEqual: seccompbpf.NotEqual,
		specs.OpLessThan: seccompbpf.LessThan, specs.OpLessEqual: seccompbpf.LessOrEqual,
		specs.OpGreaterThan: seccompbpf.GreaterThan, specs.OpGreaterEqual: seccompbpf.GreaterOrEqual,
	}
	var out seccompbpf.ArgumentConditions
	for _, a := range args {
		op, ok := ops[a.Op]
		value := a.Value
		if a.Op == specs.OpMaskedEqual && a.ValueTwo == 0 {
			op, ok = seccompbpf.BitsNotSet, true // (arg & mask) == 0
		}
		if !ok {
			return nil, fmt.Errorf("argument operator %s (value two %d) is not modelled", a.Op, a.ValueTwo)
		}
		out = append(out, seccompbpf.Condition{Argument: uint32(a.Index), Operation: op, Value: value})
	}
	return out, nil
}

// The compiled filter refuses what RuntimeDefault refuses to a container without
// capabilities (new namespaces: unshare) and lets ordinary programs run.
func TestRuntimeDefaultFilterRefusesWhatTheProfileRefuses(t *testing.T) {
	bwrap := testkit.RequireEngine(t, "bwrap")
	unshare := testkit.RequireEngine(t, "unshare")
	run := func(filtered bool, argv ...string) (string, error) {
		args := []string{"--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"}
		cmd := exec.Command(bwrap)
		if filtered {
			filter, err := os.Open(runtimeDefaultFilter(t))
			require.NoError(t, err)
			defer filter.Close()
			cmd.ExtraFiles = []*os.File{filter}
			args = append(args, "--seccomp", "3")
		}
		cmd.Args = append(append(append(cmd.Args, args...), "--"), argv...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := run(false, unshare, "--user", "true")
	require.NoError(t, err, "without the filter a new user namespace is allowed here: %s", out)
	out, err = run(true, unshare, "--user", "true")
	require.Error(t, err, "RuntimeDefault refuses unshare without CAP_SYS_ADMIN")
	assert.Contains(t, out, "Operation not permitted")
	out, err = run(true, "sh", "-c", "echo filtered && grep '^Seccomp:' /proc/self/status")
	require.NoError(t, err, out)
	assert.Equal(t, "filtered\nSeccomp:\t2\n", out)
}
