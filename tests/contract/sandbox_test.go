package contract

// The container contract suite's "kubelet": it runs a container of a recorded pod exactly as
// its spec says (command and args with $(VAR) expansion, env with secretKeyRef,
// configMapKeyRef and downward API fields resolved from the recorded objects, workingDir,
// every volumeMount with ConfigMap and Secret items as files with their modes, subPath,
// emptyDirs and claims as fresh folders), as its uid and gid with no passwd or group entry
// for them, fsGroup as a supplementary group, a read-only root file system, no capabilities,
// no new privileges, in a network namespace shared by the pod's containers (127.0.0.1 is the
// pod) with an address on a bridge the host (the "kubelet") reaches for httpGet and
// tcpSocket probes. Exec probes and hooks enter the running container's namespaces, as
// `kubectl exec` does.
//
// Isolation comes from maintained tools: bubblewrap (mount, PID, IPC and UTS namespaces and
// the read-only root), util-linux nsenter and setpriv (uid, gid, groups, capabilities),
// iproute2 (network namespaces, veth, bridge). Nothing here is a container runtime: images
// are not pulled; the programs are this machine's (see contractImages).

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"

	"ecommerce-platform/tests/testkit"
)

// sandboxNet is a bridge on the host with one network namespace per pod attached to it.
type sandboxNet struct {
	bridge, prefix string // e.g. ctr1a2b, 10.213.7
	next           int    // next pod address
	nextVIP        int    // next Service address (from .200)
}

func newSandboxNet(t testing.TB) *sandboxNet {
	t.Helper()
	testkit.RequireEngine(t, "ip")
	id := randomHex(t, 3)
	n := &sandboxNet{bridge: "cbr" + id, prefix: fmt.Sprintf("10.%d.%d", 100+int(id[0])%100, int(id[1])*7%250), next: 2, nextVIP: 200}
	sandboxIP(t, "link", "add", n.bridge, "type", "bridge")
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", n.bridge).Run() })
	// An address of its own: a bridge otherwise takes its lowest port's, which changes when that
	// pod goes, and the other pods' ARP entry for the gateway then points nowhere for a while.
	sandboxIP(t, "link", "set", n.bridge, "address", "02:"+strings.Join(regexp.MustCompile("..").FindAllString(randomHex(t, 5), -1), ":"))
	sandboxIP(t, "addr", "add", n.prefix+".1/24", "dev", n.bridge)
	sandboxIP(t, "link", "set", n.bridge, "up")
	return n
}

// addPod makes a network namespace for a pod and returns its path and address.
func (n *sandboxNet) addPod(t testing.TB) (nsPath, ip string) {
	t.Helper()
	ns := "cns" + randomHex(t, 4)
	host, pod := "cvh"+randomHex(t, 4), "cvp"+randomHex(t, 4)
	ip = fmt.Sprintf("%s.%d", n.prefix, n.next)
	n.next++
	sandboxIP(t, "netns", "add", ns)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	sandboxIP(t, "link", "add", host, "type", "veth", "peer", "name", pod, "netns", ns)
	sandboxIP(t, "link", "set", host, "master", n.bridge, "up")
	sandboxIP(t, "-n", ns, "link", "set", "lo", "up")
	sandboxIP(t, "-n", ns, "link", "set", pod, "name", "eth0")
	sandboxIP(t, "-n", ns, "addr", "add", ip+"/24", "dev", "eth0")
	sandboxIP(t, "-n", ns, "link", "set", "eth0", "up")
	sandboxIP(t, "-n", ns, "route", "add", "default", "via", n.prefix+".1")
	return "/var/run/netns/" + ns, ip
}

// serviceIP gives a ClusterIP Service an address of its own on the bridge and forwards each
// of its ports to the target port of one pod that the Service selects, as kube-proxy would
// (one endpoint is enough here). It returns the address.
func (n *sandboxNet) serviceIP(t testing.TB, svc corev1.Service, podIP string) string {
	t.Helper()
	vip := n.newVIP(t)
	for _, port := range svc.Spec.Ports {
		n.forwardPort(t, vip, int(port.Port), net.JoinHostPort(podIP, strconv.Itoa(port.TargetPort.IntValue())))
	}
	return vip
}

// newVIP adds a Service address of its own to the bridge and returns it.
func (n *sandboxNet) newVIP(t testing.TB) string {
	t.Helper()
	vip := fmt.Sprintf("%s.%d", n.prefix, n.nextVIP)
	n.nextVIP++
	sandboxIP(t, "addr", "add", vip+"/32", "dev", n.bridge)
	return vip
}

// forwardPort forwards every connection to vip:port to target until the test ends.
func (n *sandboxNet) forwardPort(t testing.TB, vip string, port int, target string) {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(vip, strconv.Itoa(port)))
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })
	go func() {
		for {
			in, err := l.Accept()
			if err != nil {
				return
			}
			go forward(in, target)
		}
	}()
}

// forward copies a connection both ways to target, closing both when either side ends.
func forward(in net.Conn, target string) {
	defer in.Close()
	out, err := net.DialTimeout("tcp", target, 5*time.Second)
	if err != nil {
		return
	}
	defer out.Close()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(out, in); done <- struct{}{} }()
	go func() { _, _ = io.Copy(in, out); done <- struct{}{} }()
	<-done
}

func sandboxIP(t testing.TB, args ...string) {
	t.Helper()
	out, err := exec.Command("ip", args...).CombinedOutput()
	require.NoError(t, err, "ip %s: %s", strings.Join(args, " "), out)
}

func randomHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return hex.EncodeToString(b)
}

// sandboxCluster holds what pods share: the recorded objects, the network, the claims and
// the pods, whose addresses answer for the Services that select them.
type sandboxCluster struct {
	run      testkit.Run
	net      *sandboxNet
	claims   map[string]string // claim name -> host folder (outlives pods)
	pods     []*sandboxPod
	vips     map[string]string // Service name -> its address (ClusterIP Services)
	scratch  string
	mu       sync.Mutex
	services []corev1.Service
	// external are Secrets the stack names but its users create (the TLS certificate).
	external map[string]map[string]string
	// hosts are names outside the cluster the pods resolve (the object storage endpoint).
	hosts map[string]string
	// api is the cluster's API server, for stacks whose pods hold a ServiceAccount token (nil
	// for the others).
	api *sandboxAPI
	// started are the containers started, as "name@image".
	started map[string]bool
}

func newSandboxCluster(t testing.TB, r testkit.Run) *sandboxCluster {
	t.Helper()
	for _, tool := range []string{"bwrap", "nsenter", "setpriv", "getent"} {
		testkit.RequireEngine(t, tool)
	}
	testkit.RequireNSSWrapper(t)
	dir, err := os.MkdirTemp("", "contract")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	require.NoError(t, os.Chmod(dir, 0o755))
	c := &sandboxCluster{run: r, net: newSandboxNet(t), claims: map[string]string{}, vips: map[string]string{}, scratch: dir,
		external: map[string]map[string]string{}, hosts: map[string]string{}, started: map[string]bool{}}
	for _, s := range r.OfType(testkit.Service) {
		c.services = append(c.services, testkit.DecodeAs[corev1.Service](t, s.Inputs))
	}
	if podsHoldTokens(t, r) {
		c.api = startSandboxAPI(t, c)
	}
	return c
}

// claim is a PersistentVolumeClaim's folder, made on first use.
func (c *sandboxCluster) claim(t testing.TB, name string, fsGroup int64) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if dir, ok := c.claims[name]; ok {
		return dir
	}
	dir := sandboxVolumeDir(t, filepath.Join(c.scratch, "claims", name), fsGroup)
	c.claims[name] = dir
	return dir
}

// sandboxVolumeDir makes a writable volume folder as the kubelet does for an emptyDir or a
// host-path claim: mode 0777, group fsGroup, setgid so new files keep the group.
func sandboxVolumeDir(t testing.TB, dir string, fsGroup int64) string {
	t.Helper()
	require.NoError(t, os.MkdirAll(dir, 0o755))
	require.NoError(t, os.Chown(dir, 0, int(fsGroup)))
	require.NoError(t, os.Chmod(dir, 0o777|os.ModeSetgid))
	return dir
}

// sandboxPod is one pod: its spec, its volumes on the host and its network namespace.
type sandboxPod struct {
	Name    string
	IP      string
	Spec    corev1.PodSpec
	Labels  map[string]string
	cluster *sandboxCluster
	nsPath  string
	root    string
	volumes map[string]string // volume name -> host folder
	etc     map[string]string // /etc/passwd, /etc/group, /etc/hosts -> host file
	// token is the host folder of the pod's ServiceAccount token volume (token, ca.crt,
	// namespace), "" for a pod without one; such a pod has an object in the API server.
	token string
}

// newPod materializes a recorded pod template: claims named by claimPrefix (a StatefulSet
// pod's "<template>-<pod>"), every other volume fresh.
func (c *sandboxCluster) newPod(t testing.TB, name string, tmpl corev1.PodTemplateSpec, claimPrefix map[string]string) *sandboxPod {
	t.Helper()
	nsPath, ip := c.net.addPod(t)
	p := &sandboxPod{Name: name, IP: ip, Spec: tmpl.Spec, Labels: tmpl.Labels, cluster: c, nsPath: nsPath,
		root: filepath.Join(c.scratch, "pods", name), volumes: map[string]string{}, etc: map[string]string{}}
	require.NoError(t, os.MkdirAll(p.root, 0o755))
	fsGroup := int64(0)
	if sc := tmpl.Spec.SecurityContext; sc != nil && sc.FSGroup != nil {
		fsGroup = *sc.FSGroup
	}
	for _, v := range tmpl.Spec.Volumes {
		p.volumes[v.Name] = p.materialize(t, v, fsGroup)
	}
	for claim, full := range claimPrefix {
		p.volumes[claim] = c.claim(t, full, fsGroup)
	}
	if holdsToken(tmpl.Spec) {
		require.NotNil(t, c.api, "pod %s mounts a ServiceAccount token: the sandbox needs its API server", name)
		p.token = c.api.admit(t, p, claimPrefix, fsGroup)
	}
	c.mu.Lock()
	c.pods = append(c.pods, p)
	c.mu.Unlock()
	return p
}

// materialize writes one volume's files as the kubelet would and returns its folder.
func (p *sandboxPod) materialize(t testing.TB, v corev1.Volume, fsGroup int64) string {
	t.Helper()
	dir := filepath.Join(p.root, "volumes", v.Name)
	switch {
	case v.EmptyDir != nil:
		return sandboxVolumeDir(t, dir, fsGroup)
	case v.PersistentVolumeClaim != nil:
		return p.cluster.claim(t, v.PersistentVolumeClaim.ClaimName, fsGroup)
	case v.ConfigMap != nil:
		cm := testkit.TypedConfigMap(t, p.cluster.run, v.ConfigMap.Name)
		p.writeItems(t, dir, cm.Data, v.ConfigMap.Items, v.ConfigMap.DefaultMode, 0o644, fsGroup)
	case v.Secret != nil && p.cluster.external[v.Secret.SecretName] != nil:
		// A Secret the stack names but does not create (the TLS certificate).
		p.writeItems(t, dir, p.cluster.external[v.Secret.SecretName], v.Secret.Items, v.Secret.DefaultMode, 0o644, fsGroup)
	case v.Secret != nil:
		s := testkit.TypedSecret(t, p.cluster.run, v.Secret.SecretName)
		data := map[string]string{}
		for k, b := range s.Data {
			data[k] = string(b)
		}
		for k, s := range s.StringData {
			data[k] = s
		}
		p.writeItems(t, dir, data, v.Secret.Items, v.Secret.DefaultMode, 0o644, fsGroup)
	case v.DownwardAPI != nil:
		data := map[string]string{}
		var items []corev1.KeyToPath
		for _, f := range v.DownwardAPI.Items {
			require.NotNil(t, f.FieldRef, "downward API volume %s: only fieldRef items are modelled", v.Name)
			data[f.Path] = p.field(t, f.FieldRef.FieldPath)
			items = append(items, corev1.KeyToPath{Key: f.Path, Path: f.Path, Mode: f.Mode})
		}
		p.writeItems(t, dir, data, items, v.DownwardAPI.DefaultMode, 0o644, fsGroup)
	default:
		require.FailNowf(t, "volume type not modelled", "volume %s of pod %s", v.Name, p.Name)
	}
	return dir
}

// writeItems writes data (or only the listed items) as files owned by root and group
// fsGroup with the item's mode, else defaultMode, else fallback.
func (p *sandboxPod) writeItems(t testing.TB, dir string, data map[string]string, items []corev1.KeyToPath, defaultMode *int32, fallback os.FileMode, fsGroup int64) {
	t.Helper()
	require.NoError(t, os.MkdirAll(dir, 0o755))
	if len(items) == 0 {
		for _, k := range slices.Sorted(maps.Keys(data)) {
			items = append(items, corev1.KeyToPath{Key: k, Path: k})
		}
	}
	for _, it := range items {
		value, ok := data[it.Key]
		require.Truef(t, ok, "volume item %s is not in its object", it.Key)
		mode := fallback
		if defaultMode != nil {
			mode = os.FileMode(*defaultMode)
		}
		if it.Mode != nil {
			mode = os.FileMode(*it.Mode)
		}
		path := filepath.Join(dir, it.Path)
		require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
		require.NoError(t, os.WriteFile(path, []byte(value), 0o600))
		require.NoError(t, os.Chown(path, 0, int(fsGroup)))
		require.NoError(t, os.Chmod(path, mode))
	}
}

// field is a downward API field of the pod.
func (p *sandboxPod) field(t testing.TB, path string) string {
	t.Helper()
	if m := regexp.MustCompile(`^metadata\.labels\['(.+)'\]$`).FindStringSubmatch(path); m != nil {
		return p.Labels[m[1]]
	}
	switch path {
	case "metadata.name":
		return p.Name
	case "status.podIP":
		return p.IP
	}
	require.FailNowf(t, "downward API field not modelled", "%s", path)
	return ""
}

// etcFiles writes the pod's /etc/passwd and /etc/group (root and nobody only: the
// containers' uids have no entry) and /etc/hosts (the Services' names, as cluster DNS
// would answer them, and the pod's own name).
func (p *sandboxPod) etcFiles(t testing.TB) {
	t.Helper()
	dir := filepath.Join(p.root, "etc")
	require.NoError(t, os.MkdirAll(dir, 0o755))
	hosts := []string{"127.0.0.1 localhost", p.IP + " " + p.Name}
	c := p.cluster
	c.mu.Lock()
	for _, svc := range c.services {
		if ip := c.serviceAddress(t, svc); ip != "" {
			ns := svc.Namespace
			hosts = append(hosts, fmt.Sprintf("%s %s %s.%s %s.%s.svc.cluster.local", ip, svc.Name, svc.Name, ns, svc.Name, ns))
		}
	}
	for name, ip := range c.hosts {
		hosts = append(hosts, ip+" "+name)
	}
	c.mu.Unlock()
	files := map[string]string{
		"passwd": "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
		"group":  "root:x:0:\nnogroup:x:65534:\n",
		"hosts":  strings.Join(hosts, "\n") + "\n",
	}
	for name, content := range files {
		path := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(path, []byte(content), 0o644))
		p.etc["/etc/"+name] = path
	}
}

// serviceAddress is what cluster DNS answers for a Service: for a headless one, the address of
// the pod it selects; for any other, its own address, whose ports lead to that pod's target
// ports. "" while no sandbox pod matches (callers hold c.mu).
func (c *sandboxCluster) serviceAddress(t testing.TB, svc corev1.Service) string {
	if vip, ok := c.vips[svc.Name]; ok {
		return vip
	}
	for _, pod := range c.pods {
		labels := pod.Labels
		if pod.token != "" { // labels its own program may change (Patroni's role)
			labels = c.api.labels(t, pod.Name)
		}
		if !testkit.Selects(svc.Spec.Selector, labels) {
			continue
		}
		if svc.Spec.ClusterIP == corev1.ClusterIPNone {
			return pod.IP
		}
		c.vips[svc.Name] = c.net.serviceIP(t, svc, pod.IP)
		return c.vips[svc.Name]
	}
	return ""
}

// identity is the uid, gid and supplementary groups a container runs with.
func (p *sandboxPod) identity(c corev1.Container) (uid, gid int64, groups []int64) {
	if sc := p.Spec.SecurityContext; sc != nil {
		if sc.RunAsUser != nil {
			uid = *sc.RunAsUser
		}
		if sc.RunAsGroup != nil {
			gid = *sc.RunAsGroup
		}
		if sc.FSGroup != nil {
			groups = append(groups, *sc.FSGroup)
		}
		groups = append(groups, sc.SupplementalGroups...)
	}
	if sc := c.SecurityContext; sc != nil {
		if sc.RunAsUser != nil {
			uid = *sc.RunAsUser
		}
		if sc.RunAsGroup != nil {
			gid = *sc.RunAsGroup
		}
	}
	return uid, gid, groups
}

// env resolves a container's environment as the kubelet does: the image's PATH first, then
// each variable in order with $(VAR) expanded against the ones before it.
func (p *sandboxPod) env(t testing.TB, c corev1.Container, img contractImage) []string {
	t.Helper()
	vars := map[string]string{"PATH": img.Path, "HOSTNAME": p.Name}
	order := []string{"PATH", "HOSTNAME"}
	if api := p.cluster.api; api != nil { // the kubernetes Service's variables, whatever enableServiceLinks says
		for _, kv := range api.serviceEnv() {
			k, v, _ := strings.Cut(kv, "=")
			vars[k] = v
			order = append(order, k)
		}
	}
	for k, v := range img.Env {
		vars[k] = v
		order = append(order, k)
	}
	for _, e := range c.Env {
		value := expandKube(e.Value, vars)
		if from := e.ValueFrom; from != nil {
			switch {
			case from.SecretKeyRef != nil:
				s := testkit.TypedSecret(t, p.cluster.run, from.SecretKeyRef.Name)
				v, ok := s.StringData[from.SecretKeyRef.Key]
				if !ok {
					v = string(s.Data[from.SecretKeyRef.Key])
				}
				value = v
			case from.ConfigMapKeyRef != nil:
				value = testkit.TypedConfigMap(t, p.cluster.run, from.ConfigMapKeyRef.Name).Data[from.ConfigMapKeyRef.Key]
			case from.FieldRef != nil:
				value = p.field(t, from.FieldRef.FieldPath)
			default:
				require.FailNowf(t, "env source not modelled", "%s of %s", e.Name, c.Name)
			}
		}
		if _, seen := vars[e.Name]; !seen {
			order = append(order, e.Name)
		}
		vars[e.Name] = value
	}
	out := make([]string, 0, len(order))
	for _, k := range order {
		out = append(out, k+"="+vars[k])
	}
	return out
}

// expandKube is Kubernetes' $(VAR) expansion: a defined VAR is replaced, an undefined one is
// left as written, $$ is a literal $.
func expandKube(s string, vars map[string]string) string {
	var out strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 >= len(s) {
			out.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			out.WriteByte('$')
			i++
		case '(':
			end := strings.IndexByte(s[i:], ')')
			if end < 0 {
				out.WriteString(s[i:])
				return out.String()
			}
			name := s[i+2 : i+end]
			if v, ok := vars[name]; ok {
				out.WriteString(v)
			} else {
				out.WriteString(s[i : i+end+1])
			}
			i += end
		default:
			out.WriteByte('$')
		}
	}
	return out.String()
}

// argv is what the container runs: command and args expanded, or the image's entrypoint and
// command (as this machine has them) where the spec leaves them out.
func (p *sandboxPod) argv(c corev1.Container, img contractImage, env []string) []string {
	vars := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		vars[k] = v
	}
	var out []string
	switch {
	case len(c.Command) > 0:
		out = append(append(out, c.Command...), c.Args...)
	case len(c.Args) > 0:
		out = append(append(out, img.Entrypoint...), c.Args...)
	default:
		out = append(append(out, img.Entrypoint...), img.Cmd...)
	}
	for i, a := range out {
		out[i] = expandKube(a, vars)
	}
	return out
}

// mountArgs are bubblewrap's arguments for the container's root and mounts: the machine's
// /usr, /etc, /var and /opt read-only, every mount point made in a tmpfs that is remounted
// read-only at the end (readOnlyRootFilesystem).
func (p *sandboxPod) mountArgs(t testing.TB, c corev1.Container, img contractImage) []string {
	t.Helper()
	require.NotNil(t, c.SecurityContext, "%s: security context", c.Name)
	require.True(t, c.SecurityContext.ReadOnlyRootFilesystem != nil && *c.SecurityContext.ReadOnlyRootFilesystem,
		"%s: the sandbox models a read-only root file system only", c.Name)
	dests := map[string]string{} // mount point -> "--bind"/"--ro-bind" src
	var order []string
	add := func(flag, src, dest string) {
		dest = throughSymlinks(dest)
		dests[dest] = flag + "\x00" + src
		order = append(order, dest)
	}
	for dest, src := range p.etc {
		add("--ro-bind", src, dest)
	}
	if p.token != "" {
		add("--ro-bind", p.token, serviceAccountDir)
	}
	for dest, target := range img.Symlinks {
		add("--symlink", target, dest)
	}
	for dest, src := range img.Files {
		abs, err := filepath.Abs(src)
		require.NoError(t, err)
		add("--ro-bind", abs, dest)
	}
	for _, m := range c.VolumeMounts {
		src, ok := p.volumes[m.Name]
		require.Truef(t, ok, "%s mounts unknown volume %s", c.Name, m.Name)
		if m.SubPath != "" {
			src = filepath.Join(src, m.SubPath)
		}
		flag := "--bind"
		if m.ReadOnly {
			flag = "--ro-bind"
		}
		add(flag, src, m.MountPath)
	}
	// /dev/shm as every runtime mounts it: a tmpfs anyone may write (PostgreSQL's shared memory).
	args := []string{"--dev", "/dev", "--perms", "1777", "--tmpfs", "/dev/shm", "--proc", "/proc", "--dir", "/tmp", "--dir", "/run"}
	for _, link := range []string{"bin", "lib", "lib64", "sbin"} {
		if target, err := os.Readlink("/" + link); err == nil {
			args = append(args, "--symlink", target, "/"+link)
		}
	}
	for _, top := range []string{"/usr", "/etc", "/var", "/opt"} {
		args = append(args, mirror(t, top, dests)...)
	}
	sort.SliceStable(order, func(i, j int) bool { return len(order[i]) < len(order[j]) })
	// Folders a mount point needs that the machine does not have, made 0755 as the runtime
	// makes them (bubblewrap would make them 0700).
	made := map[string]bool{}
	for _, dest := range order {
		for dir := filepath.Dir(dest); dir != "/"; dir = filepath.Dir(dir) {
			if _, err := os.Lstat(dir); err == nil || made[dir] {
				continue
			}
			made[dir] = true
		}
	}
	for _, dir := range sortedByLength(made) {
		args = append(args, "--perms", "0755", "--dir", dir)
	}
	for _, dest := range order {
		flag, src, _ := strings.Cut(dests[dest], "\x00")
		args = append(args, flag, src, dest)
	}
	return append(args, "--remount-ro", "/")
}

// throughSymlinks rewrites a mount point whose folders pass through a symlink of the
// machine's (Debian's /var/run -> /run, as in the images) to the folder it names, since
// bubblewrap makes mount points as the host resolves them.
func throughSymlinks(dest string) string {
	parts := strings.Split(strings.TrimPrefix(dest, "/"), "/")
	cur := "/"
	for i, part := range parts {
		next := filepath.Join(cur, part)
		if i < len(parts)-1 {
			if target, err := os.Readlink(next); err == nil {
				if !filepath.IsAbs(target) {
					target = filepath.Join(cur, target)
				}
				next = target
			}
		}
		cur = next
	}
	return cur
}

func sortedByLength(set map[string]bool) []string {
	out := slices.Sorted(maps.Keys(set))
	sort.SliceStable(out, func(i, j int) bool { return len(out[i]) < len(out[j]) })
	return out
}

// mirror binds a host folder read-only, or, when a mount point lies inside it, recreates it
// as a folder whose entries are bound one by one, so the mount point can be made.
func mirror(t testing.TB, dir string, dests map[string]string) []string {
	t.Helper()
	info, err := os.Lstat(dir)
	if err != nil {
		return nil
	}
	if _, isDest := dests[dir]; isDest {
		return nil
	}
	if info.Mode()&os.ModeSymlink != 0 {
		target, err := os.Readlink(dir)
		require.NoError(t, err)
		return []string{"--symlink", target, dir}
	}
	inside := false
	for dest := range dests {
		if strings.HasPrefix(dest, dir+"/") {
			inside = true
		}
	}
	if !inside || !info.IsDir() {
		return []string{"--ro-bind", dir, dir}
	}
	args := []string{"--dir", dir}
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	for _, e := range entries {
		args = append(args, mirror(t, filepath.Join(dir, e.Name()), dests)...)
	}
	return args
}

// setprivArgs switch to the container's uid, gid and groups with no capabilities and no
// new privileges, then run argv.
func setprivArgs(uid, gid int64, groups []int64, argv []string) []string {
	gs := make([]string, len(groups))
	for i, g := range groups {
		gs[i] = strconv.FormatInt(g, 10)
	}
	groupArg := "--clear-groups"
	if len(gs) > 0 {
		groupArg = "--groups=" + strings.Join(gs, ",")
	}
	return append([]string{"setpriv", "--reuid=" + strconv.FormatInt(uid, 10), "--regid=" + strconv.FormatInt(gid, 10),
		groupArg, "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--"}, argv...)
}

// ctr is a container process started in a pod.
type ctr struct {
	Name string
	Pod  *sandboxPod
	Spec corev1.Container
	PID  int // the container's PID 1, as the host sees it
	Env  []string
	out  *testkit.SyncBuffer
	cmd  *exec.Cmd
	done chan struct{}
	err  error
	uid  int64
	gid  int64
	grp  []int64
}

// start runs a container of the pod (its image must be in contractImages) in the background.
func (p *sandboxPod) start(t testing.TB, name string) *ctr {
	t.Helper()
	spec := testkit.TypedContainer(t, p.Spec, name)
	img, ok := contractImageOf(spec.Image)
	require.Truef(t, ok && img.Runnable, "%s (%s) cannot run on this machine", name, spec.Image)
	if len(p.etc) == 0 {
		p.etcFiles(t)
	}
	p.cluster.mu.Lock()
	p.cluster.started[spec.Name+"@"+spec.Image] = true
	p.cluster.mu.Unlock()
	env := p.env(t, spec, img)
	argv := p.argv(spec, img, env)
	if img.Standin != nil {
		argv = img.Standin(argv)
	}
	uid, gid, groups := p.identity(spec)
	wd := spec.WorkingDir
	if wd == "" {
		wd = "/"
	}
	args := []string{"--net=" + p.nsPath, "--", "bwrap", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
		"--hostname", p.Name, "--as-pid-1", "--die-with-parent", "--info-fd", "3", "--seccomp", "4", "--clearenv"}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		args = append(args, "--setenv", k, v)
	}
	args = append(args, p.mountArgs(t, spec, img)...)
	args = append(args, "--chdir", wd, "--")
	args = append(args, setprivArgs(uid, gid, groups, argv)...)

	c := &ctr{Name: name, Pod: p, Spec: spec, Env: env, out: &testkit.SyncBuffer{}, done: make(chan struct{}), uid: uid, gid: gid, grp: groups}
	c.cmd = exec.Command("nsenter", args...)
	infoR, infoW, err := os.Pipe()
	require.NoError(t, err)
	filter, err := os.Open(runtimeDefaultFilter(t))
	require.NoError(t, err)
	defer filter.Close()
	c.cmd.ExtraFiles = []*os.File{infoW, filter}
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdioDone := testkit.OwnedStdio(t, c.cmd, c.out, uid, gid)
	require.NoError(t, c.cmd.Start(), "start %s", name)
	_ = infoW.Close()
	go func() {
		c.err = c.cmd.Wait()
		stdioDone()
		close(c.done)
	}()
	var info struct {
		ChildPID int `json:"child-pid"`
	}
	err = json.NewDecoder(infoR).Decode(&info)
	_ = infoR.Close()
	require.NoErrorf(t, err, "%s did not start:\n%s", name, c.out.String())
	c.PID = info.ChildPID
	// bubblewrap reports the pid, then installs the filter right before it executes the
	// container's command.
	filtered := regexp.MustCompile(`(?m)^Seccomp:\s+2$`)
	require.Eventuallyf(t, func() bool {
		status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", c.PID))
		return err != nil || filtered.Match(status) // an exited container is judged by its output
	}, 5*time.Second, 5*time.Millisecond, "%s runs under the RuntimeDefault seccomp filter", name)
	t.Cleanup(func() {
		c.stop(10 * time.Second)
		if t.Failed() {
			t.Logf("--- %s/%s output:\n%s", p.Name, name, c.out.String())
		}
	})
	return c
}

// Exited tells whether the container has ended.
func (c *ctr) Exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// Output is what the container wrote to stdout and stderr (its container log).
func (c *ctr) Output() string { return c.out.String() }

// wait waits for the container to end and returns its exit code (-1 on timeout).
func (c *ctr) wait(timeout time.Duration) int {
	select {
	case <-c.done:
		if c.err == nil {
			return 0
		}
		if ee, ok := c.err.(*exec.ExitError); ok {
			return ee.ExitCode()
		}
		return -2
	case <-time.After(timeout):
		return -1
	}
}

// signal sends a signal to the container's PID 1, as the runtime does.
func (c *ctr) signal(sig syscall.Signal) {
	if c.PID > 0 && !c.Exited() {
		_ = syscall.Kill(c.PID, sig)
	}
}

// stop is the runtime's stop: SIGTERM, then SIGKILL after the grace period.
func (c *ctr) stop(grace time.Duration) {
	c.signal(syscall.SIGTERM)
	if c.wait(grace) == -1 {
		c.signal(syscall.SIGKILL)
		_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
		c.wait(5 * time.Second)
	}
}

// exec runs a command inside the running container (its mount, network, PID, IPC and UTS
// namespaces, its root and working directory, its env, uid, gid and groups), as an exec
// probe or hook does, with a timeout. It returns the exit code and the output.
func (c *ctr) exec(timeout time.Duration, argv ...string) (int, string) {
	return c.execEnv(nil, timeout, argv...)
}

// execEnv is exec with variables added to the container's env (a client's password).
func (c *ctr) execEnv(extra []string, timeout time.Duration, argv ...string) (int, string) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	// Inside the container's namespaces, bubblewrap (bound into every container's root from
	// /usr) installs the same seccomp filter before the command runs, as runc's exec does. The
	// container's env is set only there (env -i), so that nothing of it (an LD_PRELOAD of a
	// path in the image) applies to nsenter on the host.
	args := append([]string{"--target", strconv.Itoa(c.PID), "--mount", "--net", "--pid", "--ipc", "--uts", "--root", "--wd", "--", "env", "-i"},
		append(append(append([]string(nil), c.Env...), extra...), "bwrap", "--bind", "/", "/", "--seccomp", "3", "--")...)
	args = append(args, setprivArgs(c.uid, c.gid, c.grp, argv)...)
	cmd := exec.CommandContext(ctx, "nsenter", args...)
	path, err := compiledRuntimeDefault()
	if err != nil {
		return -2, err.Error()
	}
	filter, err := os.Open(path)
	if err != nil {
		return -2, err.Error()
	}
	defer filter.Close()
	cmd.ExtraFiles = []*os.File{filter}
	cmd.Env = []string{"PATH=" + debianPath}
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		return -1, string(out) + "\n(timed out after " + timeout.String() + ")"
	}
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode(), string(out)
		}
		return -2, string(out) + err.Error()
	}
	return 0, string(out)
}

// check runs one probe once, as the kubelet does: exec inside the container, httpGet and
// tcpSocket against the pod's address. It returns nil on success.
func (c *ctr) check(p *corev1.Probe) error {
	timeout := time.Duration(max(p.TimeoutSeconds, 1)) * time.Second
	switch {
	case p.Exec != nil:
		code, out := c.exec(timeout, p.Exec.Command...)
		if code != 0 {
			return fmt.Errorf("exec %v: exit %d: %s", p.Exec.Command, code, strings.TrimSpace(out))
		}
		return nil
	case p.HTTPGet != nil:
		url := fmt.Sprintf("http://%s:%d%s", c.Pod.IP, p.HTTPGet.Port.IntValue(), p.HTTPGet.Path)
		resp, err := (&http.Client{Timeout: timeout}).Get(url)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode < 200 || resp.StatusCode >= 400 {
			return fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		return nil
	case p.TCPSocket != nil:
		conn, err := net.DialTimeout("tcp", net.JoinHostPort(c.Pod.IP, strconv.Itoa(p.TCPSocket.Port.IntValue())), timeout)
		if err != nil {
			return err
		}
		return conn.Close()
	}
	return fmt.Errorf("probe has no handler")
}

// awaitStarted polls the startup probe until it passes or its budget (period x failure
// threshold, after the initial delay) runs out; it polls every second at most, which can only
// make a slow start look faster than the kubelet would see it, never hide a failure. It
// returns how long the container took.
func (c *ctr) awaitStarted(t testing.TB) time.Duration {
	t.Helper()
	p := c.Spec.StartupProbe
	require.NotNil(t, p, "%s has no startup probe", c.Name)
	budget := time.Duration(p.InitialDelaySeconds+p.PeriodSeconds*p.FailureThreshold) * time.Second
	start := time.Now()
	var last error
	for time.Since(start) < budget {
		if c.Exited() {
			require.FailNowf(t, "container exited before it was ready", "%s/%s (%v):\n%s", c.Pod.Name, c.Name, c.err, c.Output())
		}
		if last = c.check(p); last == nil {
			return time.Since(start)
		}
		time.Sleep(time.Duration(min(p.PeriodSeconds, 1)) * time.Second)
	}
	require.FailNowf(t, "startup probe budget ran out", "%s/%s after %s: %v\n%s", c.Pod.Name, c.Name, budget, last, c.Output())
	return 0
}

// requireReadyAndLive runs the readiness and liveness probes once each.
func (c *ctr) requireReadyAndLive(t testing.TB) {
	t.Helper()
	require.NotNil(t, c.Spec.ReadinessProbe, "%s readiness probe", c.Name)
	require.NotNil(t, c.Spec.LivenessProbe, "%s liveness probe", c.Name)
	require.NoError(t, c.check(c.Spec.ReadinessProbe), "%s/%s readiness:\n%s", c.Pod.Name, c.Name, c.Output())
	require.NoError(t, c.check(c.Spec.LivenessProbe), "%s/%s liveness:\n%s", c.Pod.Name, c.Name, c.Output())
}

// preStop runs the container's preStop hook as the kubelet does (exec inside the container,
// or sleep), then sends SIGTERM, and returns how long the container took to exit (-1 if it
// outlived its grace period).
func (c *ctr) preStop(t testing.TB, grace time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	if l := c.Spec.Lifecycle; l != nil && l.PreStop != nil {
		switch {
		case l.PreStop.Exec != nil:
			// A hook that stops the container's PID 1 ends with it (the PID namespace goes).
			code, out := c.exec(grace, l.PreStop.Exec.Command...)
			if code != 0 && c.wait(time.Second) == -1 {
				require.Failf(t, "preStop failed", "%s preStop exited %d: %s", c.Name, code, out)
			}
		case l.PreStop.Sleep != nil:
			time.Sleep(time.Duration(l.PreStop.Sleep.Seconds) * time.Second)
		}
	}
	c.signal(syscall.SIGTERM)
	if c.wait(grace-time.Since(start)) == -1 {
		return -1
	}
	return time.Since(start)
}

// dirSize is the total size of the files under a folder.
func dirSize(t testing.TB, dir string) int64 {
	t.Helper()
	var total int64
	require.NoError(t, filepath.Walk(dir, func(_ string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if !info.IsDir() {
			total += info.Size()
		}
		return nil
	}))
	return total
}
