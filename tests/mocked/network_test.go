package mocked

import (
	"net"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"

	"github.com/stretchr/testify/assert"

	"ecommerce-platform/tests/testkit"
)

// Who may talk to whom, evaluated from the registered NetworkPolicies the way a CNI does:
// a connection needs an egress rule on the source and an ingress rule on the destination.
func TestNetworkPoliciesAdmitOnlyTheTiersPaths(t *testing.T) {
	for _, stack := range []string{"dev", "prod"} {
		t.Run(stack, func(t *testing.T) {
			r := testkit.MustRun(t, stack, nil)
			pods := map[string]map[string]string{}
			for _, w := range r.Workloads() {
				pods[w.K8sName()] = testkit.TypedPod(t, w).Labels
			}
			// Clients outside the namespace, with the address they come from.
			outside := map[string]string{"ip": "203.0.113.9"}  // the internet
			private := map[string]string{"ip": "192.168.49.1"} // a developer's machine next to the cluster
			monitoring := map[string]string{"namespace": "monitoring", "ip": "10.244.3.7"}
			nodePorts := stack == "dev"
			cases := []struct {
				from, to string
				port     int
				want     bool
			}{
				{"frontend-blue", "backend", 8080, true},
				{"frontend-green", "backend", 8080, true},
				{"backend", "database", 5432, true},
				{"database-backup", "database", 5432, true},
				{"database-credentials", "database", 5432, true},
				{"frontend-promotion-check", "frontend-blue", 8080, true},
				{"frontend-promotion-check", "frontend-green", 8080, false},
				{"frontend-promotion-check", "backend", 8080, false},
				{"frontend-promotion-check", "database", 5432, false},
				{"database-credentials", "backend", 8080, false},
				{"outside", "database-credentials", 5432, false},
				{"outside", "frontend-blue", 8080, true},
				{"outside", "frontend-green", 8080, true},
				{"monitoring", "frontend-blue", 9113, true},
				{"monitoring", "database", 9187, true},
				{"frontend-blue", "database", 5432, false},
				{"frontend-green", "database", 5432, false},
				{"outside", "backend", 8080, false},
				{"outside", "database", 5432, false},
				{"private", "backend", 8080, nodePorts},
				{"private", "database", 5432, nodePorts},
				{"private", "backend", 3000, false},
				{"private", "database", 9187, false},
				{"outside", "backend", 3000, false},
				{"outside", "backend", 6432, false},
				{"backend", "frontend-blue", 8080, false},
				{"database", "backend", 8080, false},
				{"outside", "database", 9187, false},
				{"outside", "frontend-blue", 9113, false},
				{"database-backup", "backend", 8080, false},
			}
			if stack == "prod" {
				cases = append(cases, []struct {
					from, to string
					port     int
					want     bool
				}{
					// Patroni's members: streaming and pg_rewind, and one another's REST API;
					// nobody else reaches the REST API.
					{"database", "database", 5432, true},
					{"database", "database", 8008, true},
					{"backend", "database", 8008, false},
					{"database-archiver", "database", 8008, false},
					{"monitoring", "database", 8008, false},
					{"outside", "database", 8008, false},
				}...)
			}
			for _, tc := range cases {
				from := pods[tc.from]
				external := true
				switch tc.from {
				case "outside":
					from = outside
				case "private":
					from = private
				case "monitoring":
					from = monitoring
				default:
					external = false
				}
				got := allowed(t, r, from, external, pods[tc.to], tc.port)
				assert.Equalf(t, tc.want, got, "%s -> %s:%d", tc.from, tc.to, tc.port)
			}
		})
	}
}

// allowed evaluates the policies for one connection. Sources outside the namespace carry
// a pseudo label "namespace" naming theirs.
func allowed(t testing.TB, r testkit.Run, from map[string]string, fromOutside bool, to map[string]string, port int) bool {
	egressOK := fromOutside // egress of pods outside the namespace is not ours to judge
	ingressOK := false
	for _, rec := range r.OfType(testkit.NetworkPolicy) {
		p := testkit.DecodeAs[networkingv1.NetworkPolicy](t, rec.Inputs)
		sel := p.Spec.PodSelector.MatchLabels
		all := len(sel) == 0
		if !fromOutside && (all || testkit.Selects(sel, from)) {
			for _, rule := range p.Spec.Egress {
				if ruleMatches(rule.Ports, rule.To, to, false, port) {
					egressOK = true
				}
			}
		}
		if all || testkit.Selects(sel, to) {
			for _, rule := range p.Spec.Ingress {
				if ruleMatches(rule.Ports, rule.From, from, fromOutside, port) {
					ingressOK = true
				}
			}
		}
	}
	return egressOK && ingressOK
}

func ruleMatches(ports []networkingv1.NetworkPolicyPort, peers []networkingv1.NetworkPolicyPeer, peer map[string]string, peerOutside bool, port int) bool {
	portOK := false
	for _, p := range ports {
		if p.Port != nil && p.Port.IntValue() == port {
			portOK = true
		}
	}
	if !portOK {
		return false
	}
	for _, p := range peers {
		switch {
		case p.IPBlock != nil:
			if peerOutside && inCIDR(peer["ip"], p.IPBlock.CIDR) {
				return true
			}
		case p.NamespaceSelector != nil && len(p.NamespaceSelector.MatchLabels) > 0:
			if peerOutside && p.NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"] == peer["namespace"] && peer["namespace"] != "" {
				return true
			}
		case p.PodSelector != nil:
			if !peerOutside && testkit.Selects(p.PodSelector.MatchLabels, peer) {
				return true
			}
		}
	}
	return false
}

// inCIDR reports whether an address lies in a CIDR.
func inCIDR(ip, cidr string) bool {
	_, block, err := net.ParseCIDR(cidr)
	return err == nil && block.Contains(net.ParseIP(ip))
}

// Every controller's selector matches its own pod template, and every Service selects
// exactly the pods it is meant to.
func TestSelectorsMatchExactlyTheIntendedPods(t *testing.T) {
	for _, stack := range []string{"dev", "prod"} {
		t.Run(stack, func(t *testing.T) {
			r := testkit.MustRun(t, stack, map[string]string{"activeColor": "green"})
			pods := map[string]map[string]string{}
			for _, w := range r.Workloads() {
				labels := testkit.TypedPod(t, w).Labels
				pods[w.K8sName()] = labels
				if w.Type == testkit.CronJob || w.Type == testkit.Job {
					continue
				}
				sel := workloadSelector(t, w)
				assert.Truef(t, testkit.Selects(sel, labels), "%s selector %v does not match its pods %v", w.K8sName(), sel, labels)
				assert.NotContainsf(t, sel, "app.kubernetes.io/version", "%s selector must not change with a release", w.K8sName())
			}
			want := map[string][]string{
				"database-service":       {"database"},
				"database-readonly":      {"database"}, // prod: the replicas (below)
				"backend-service":        {"backend"},
				"frontend-service":       {"frontend-green"},
				"frontend-internal":      {"frontend-green"},
				"frontend-blue-preview":  {"frontend-blue"},
				"frontend-green-preview": {"frontend-green"},
				"database-archiver":      {"database-archiver"},
			}
			if stack == "prod" {
				// Patroni labels each member with its role at run time: the leader's pod and
				// a replica's, as the API server then holds them.
				member := pods["database"]
				delete(pods, "database")
				pods["database (leader)"] = withLabel(member, "role", "primary")
				pods["database (replica)"] = withLabel(member, "role", "replica")
				want["database-service"] = []string{"database (leader)"}
				want["database-readonly"] = []string{"database (replica)"}
			}
			if stack == "dev" {
				want["database-nodeport"] = []string{"database"}
				want["backend-nodeport"] = []string{"backend"}
				want["frontend-nodeport"] = []string{"frontend-green"}
			}
			assert.Len(t, r.OfType(testkit.Service), len(want))
			for name, workloads := range want {
				sel := testkit.TypedService(t, r, name).Spec.Selector
				var got []string
				for w, labels := range pods {
					if testkit.Selects(sel, labels) {
						got = append(got, w)
					}
				}
				assert.ElementsMatchf(t, workloads, got, "pods selected by %s", name)
			}
			for _, pdb := range r.OfType(testkit.PodDisruptionBudget) {
				sel := testkit.DecodeAs[policyv1.PodDisruptionBudget](t, pdb.Inputs).Spec.Selector.MatchLabels
				covered := map[string]bool{}
				for name, labels := range pods {
					if testkit.Selects(sel, labels) {
						workload, _, _ := strings.Cut(name, " (") // a member in either role is one workload
						covered[workload] = true
					}
				}
				assert.Lenf(t, covered, 1, "PodDisruptionBudget %s covers exactly one workload", pdb.K8sName())
			}
		})
	}
}

// workloadSelector is a Deployment's or StatefulSet's pod selector.
func workloadSelector(t testing.TB, w testkit.Recorded) map[string]string {
	if w.Type == testkit.StatefulSet {
		return testkit.DecodeAs[appsv1.StatefulSet](t, w.Inputs).Spec.Selector.MatchLabels
	}
	return testkit.DecodeAs[appsv1.Deployment](t, w.Inputs).Spec.Selector.MatchLabels
}
