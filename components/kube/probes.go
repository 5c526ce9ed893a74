package kube

import (
	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// ProbeTiming is how often and how patiently a probe asks.
type ProbeTiming struct {
	Period   int
	Timeout  int
	Failures int
}

// The three timings every container uses: startup is patient (slow first start such as
// initdb), readiness reacts fast, liveness restarts only a container that is really stuck.
var (
	StartupTiming   = ProbeTiming{Period: 5, Timeout: 3, Failures: 60}
	ReadinessTiming = ProbeTiming{Period: 10, Timeout: 3, Failures: 3}
	LivenessTiming  = ProbeTiming{Period: 20, Timeout: 5, Failures: 3}
)

// ProbeCheck is what a probe does; timing is added by probe().
type ProbeCheck func(*corev1.ProbeArgs)

func HTTPCheck(path string, port int) ProbeCheck {
	return func(p *corev1.ProbeArgs) {
		p.HttpGet = &corev1.HTTPGetActionArgs{Path: pulumi.String(path), Port: pulumi.Int(port)}
	}
}

func TCPCheck(port int) ProbeCheck {
	return func(p *corev1.ProbeArgs) { p.TcpSocket = &corev1.TCPSocketActionArgs{Port: pulumi.Int(port)} }
}

func ExecCheck(command ...string) ProbeCheck {
	return func(p *corev1.ProbeArgs) {
		p.Exec = &corev1.ExecActionArgs{Command: pulumi.ToStringArray(command)}
	}
}

func Probe(check ProbeCheck, t ProbeTiming) *corev1.ProbeArgs {
	p := &corev1.ProbeArgs{
		PeriodSeconds:    pulumi.Int(t.Period),
		TimeoutSeconds:   pulumi.Int(t.Timeout),
		FailureThreshold: pulumi.Int(t.Failures),
	}
	check(p)
	return p
}

// Probes are a long-running container's three probes.
type Probes struct {
	Startup, Readiness, Liveness *corev1.ProbeArgs
}

// ServingProbes: startup and readiness ask whether the container serves (ready, which may
// depend on what it serves from); liveness asks something narrower (alive: the process
// answers at all), so a dependency that is down takes the pod out of its Services but never
// gets it restarted. The kubelet probes httpGet and tcpSocket from the node, so alive must
// reach a port on the pod's address; a process bound to 127.0.0.1 needs an exec check.
func ServingProbes(ready, alive ProbeCheck) Probes {
	return Probes{Probe(ready, StartupTiming), Probe(ready, ReadinessTiming), Probe(alive, LivenessTiming)}
}

// CloningProbes are for a container that may take unbounded time before it serves (a database
// member copying its leader, sized by the data): started as soon as it is alive, so the
// kubelet never kills a long copy and starts it over; ready once it serves.
func CloningProbes(ready, alive ProbeCheck) Probes {
	return Probes{Probe(alive, StartupTiming), Probe(ready, ReadinessTiming), Probe(alive, LivenessTiming)}
}
