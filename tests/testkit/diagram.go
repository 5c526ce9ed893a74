package testkit

import (
	"fmt"
	"slices"
	"strings"
)

// Diagram is a Mermaid flowchart of one recorded stack: its workloads, Services, Ingress and
// volume claims grouped by tier, with the paths traffic and data may take. Every edge comes
// from the recorded objects: a Service to the workloads its selector matches, a workload to
// another where a NetworkPolicy admits it (port on the edge), a LoadBalancer, NodePort or
// Ingress from clients, egress to outside addresses, and a workload to its claims (dashed).
func Diagram(r Run) string {
	d := diagram{nodes: map[string]diagramNode{}, edges: map[string]string{}}
	workloads := d.addWorkloads(r)
	d.addServices(r, workloads)
	d.addIngresses(r)
	d.addPolicies(r, workloads)
	return d.mermaid()
}

type diagramNode struct {
	tier, shape string
}

type workload struct {
	id     string
	labels map[string]string
}

type diagram struct {
	nodes map[string]diagramNode // Mermaid text of the node by id
	edges map[string]string      // "from arrow to" -> port labels
}

const (
	clients = "clients"
	outside = "outside"
)

func nodeID(kind, name string) string {
	return strings.NewReplacer("-", "_", ".", "_").Replace(kind + "_" + name)
}

func (d *diagram) node(id, tier, shape string) { d.nodes[id] = diagramNode{tier, shape} }

func (d *diagram) edge(from, arrow, to, label string) {
	key := from + " " + arrow + " " + to
	old, seen := d.edges[key]
	switch {
	case !seen || old == "":
		d.edges[key] = label
	case label != "" && !slices.Contains(strings.Split(old, ","), label):
		d.edges[key] = old + "," + label
	}
}

func (d *diagram) addWorkloads(r Run) []workload {
	var out []workload
	for _, res := range r.Workloads() {
		kind := res.Type[strings.LastIndex(res.Type, ":")+1:]
		tmpl := podTemplate(res)
		labels := stringMap(dig(tmpl, "metadata", "labels"))
		id := nodeID(strings.ToLower(kind), res.K8sName())
		label := fmt.Sprintf("%s<br/>%s%s", res.K8sName(), kind, replicaNote(res))
		d.node(id, labels["app.kubernetes.io/name"], fmt.Sprintf("[%q]", label))
		out = append(out, workload{id, labels})
		d.addClaims(res, id, labels["app.kubernetes.io/name"])
	}
	return out
}

// podTemplate is the pod template of a Deployment, StatefulSet, Job or CronJob.
func podTemplate(res Recorded) map[string]any {
	spec, _ := res.Inputs["spec"].(map[string]any)
	if jt, ok := dig(spec, "jobTemplate", "spec").(map[string]any); ok {
		spec = jt
	}
	tmpl, _ := spec["template"].(map[string]any)
	return tmpl
}

func replicaNote(res Recorded) string {
	if n := dig(res.Inputs, "spec", "replicas"); n != nil {
		return fmt.Sprintf(" x%v", n)
	}
	if s, ok := dig(res.Inputs, "spec", "schedule").(string); ok {
		return " " + s
	}
	return ""
}

// addClaims links a workload to its claim templates and to the claims its pods mount.
func (d *diagram) addClaims(res Recorded, id, tier string) {
	templates, _ := dig(res.Inputs, "spec", "volumeClaimTemplates").([]any)
	for _, t := range templates {
		name, _ := dig(t, "metadata", "name").(string)
		size, _ := dig(t, "spec", "resources", "requests", "storage").(string)
		claim := nodeID("pvc", res.K8sName()+"_"+name)
		d.node(claim, tier, fmt.Sprintf("[(%q)]", name+" per pod<br/>"+size))
		d.edge(id, "-.-", claim, "")
	}
	volumes, _ := dig(podTemplate(res), "spec", "volumes").([]any)
	for _, v := range volumes {
		if name, ok := dig(v, "persistentVolumeClaim", "claimName").(string); ok {
			d.node(nodeID("pvc", name), tier, fmt.Sprintf("[(%q)]", name))
			d.edge(id, "-.-", nodeID("pvc", name), "")
		}
	}
}

func (d *diagram) addServices(r Run, workloads []workload) {
	for _, svc := range r.OfType(Service) {
		selector := stringMap(dig(svc.Inputs, "spec", "selector"))
		typ, _ := dig(svc.Inputs, "spec", "type").(string)
		id := nodeID("svc", svc.K8sName())
		label := svc.K8sName()
		if typ != "" && typ != "ClusterIP" {
			label += "<br/>" + typ
			d.edge(clients, "-->", id, "")
		}
		d.node(id, selector["app.kubernetes.io/name"], fmt.Sprintf("([%q])", label))
		for _, w := range workloads {
			if Selects(selector, w.labels) {
				d.edge(id, "-->", w.id, "")
			}
		}
	}
}

func (d *diagram) addIngresses(r Run) {
	for _, ing := range r.OfType(Ingress) {
		id := nodeID("ingress", ing.K8sName())
		d.node(id, "frontend", fmt.Sprintf("{{%q}}", ing.K8sName()+"<br/>Ingress"))
		d.edge(clients, "-->", id, "")
		rules, _ := dig(ing.Inputs, "spec", "rules").([]any)
		for _, rule := range rules {
			paths, _ := dig(rule, "http", "paths").([]any)
			for _, p := range paths {
				if name, ok := dig(p, "backend", "service", "name").(string); ok {
					d.edge(id, "-->", nodeID("svc", name), "")
				}
			}
		}
	}
}

// addPolicies draws the connections NetworkPolicies admit between the stack's own pods (both
// ingress and egress rules), and egress to addresses outside the cluster. DNS and the
// monitoring namespace's scrapes are left out: every pod has them.
func (d *diagram) addPolicies(r Run, workloads []workload) {
	for _, np := range r.OfType(NetworkPolicy) {
		spec, _ := np.Inputs["spec"].(map[string]any)
		selected := matching(workloads, stringMap(dig(spec, "podSelector", "matchLabels")))
		for _, rule := range anySlice(spec["ingress"]) {
			ports := portList(rule)
			for _, peer := range anySlice(dig(rule, "from")) {
				for _, from := range matching(workloads, peerPods(peer)) {
					for _, to := range selected {
						d.edge(from.id, "-->", to.id, ports)
					}
				}
			}
		}
		for _, rule := range anySlice(spec["egress"]) {
			ports := portList(rule)
			for _, peer := range anySlice(dig(rule, "to")) {
				targets := matching(workloads, peerPods(peer))
				for _, from := range selected {
					for _, to := range targets {
						d.edge(from.id, "-->", to.id, ports)
					}
					if dig(peer, "ipBlock") != nil {
						d.edge(from.id, "-->", outside, ports)
					}
				}
			}
		}
	}
}

// peerPods is a policy peer's pod selector within the stack's namespace (nil for other
// namespaces and address blocks).
func peerPods(peer any) map[string]string {
	if dig(peer, "namespaceSelector") != nil {
		return nil
	}
	return stringMap(dig(peer, "podSelector", "matchLabels"))
}

func matching(workloads []workload, selector map[string]string) []workload {
	var out []workload
	for _, w := range workloads {
		if Selects(selector, w.labels) {
			out = append(out, w)
		}
	}
	return out
}

func portList(rule any) string {
	var ports []string
	for _, p := range anySlice(dig(rule, "ports")) {
		ports = append(ports, fmt.Sprint(dig(p, "port")))
	}
	return strings.Join(ports, ",")
}

// mermaid writes the flowchart: outside nodes, one subgraph per tier, then every edge,
// all sorted so the text changes only when the objects do.
func (d *diagram) mermaid() string {
	var b strings.Builder
	b.WriteString("```mermaid\nflowchart LR\n")
	ids := sortedKeys(d.nodes)
	tiers := map[string][]string{}
	for _, id := range ids {
		tiers[d.nodes[id].tier] = append(tiers[d.nodes[id].tier], id)
	}
	fmt.Fprintf(&b, "  %s((clients))\n", clients)
	if d.used(outside) {
		fmt.Fprintf(&b, "  %s((\"outside the cluster<br/>object storage\"))\n", outside)
	}
	for _, tier := range sortedKeys(tiers) {
		if tier != "" {
			fmt.Fprintf(&b, "  subgraph %s\n", tier)
		}
		for _, id := range tiers[tier] {
			fmt.Fprintf(&b, "    %s%s\n", id, d.nodes[id].shape)
		}
		if tier != "" {
			b.WriteString("  end\n")
		}
	}
	for _, key := range sortedKeys(d.edges) {
		parts := strings.Fields(key)
		if label := d.edges[key]; label != "" {
			fmt.Fprintf(&b, "  %s %s|%s| %s\n", parts[0], parts[1], label, parts[2])
			continue
		}
		fmt.Fprintf(&b, "  %s %s %s\n", parts[0], parts[1], parts[2])
	}
	b.WriteString("```\n")
	return b.String()
}

func (d *diagram) used(id string) bool {
	for key := range d.edges {
		if strings.HasSuffix(key, " "+id) || strings.HasPrefix(key, id+" ") {
			return true
		}
	}
	return false
}

// dig walks nested maps by key.
func dig(v any, path ...string) any {
	for _, k := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

func anySlice(v any) []any {
	s, _ := v.([]any)
	return s
}

func stringMap(v any) map[string]string {
	m, _ := v.(map[string]any)
	out := map[string]string{}
	for k, val := range m {
		if s, ok := val.(string); ok {
			out[k] = s
		}
	}
	return out
}
