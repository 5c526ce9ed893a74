package contract

import (
	"strings"
)

// contractImage is what the contract suite knows of an image (read from its Dockerfile and
// entrypoint upstream) and how this machine stands in for it.
type contractImage struct {
	Runnable   bool
	Path       string            // the image's PATH
	Env        map[string]string // other ENV of the image the programs read
	Entrypoint []string          // as this machine names the image's entrypoint program
	Cmd        []string
	Standin    func(argv []string) []string // replaces a program that is not here
	Files      map[string]string            // path in the image -> stand-in file of this package
	Symlinks   map[string]string            // path in the image -> its target
	Covered    string                       // not runnable: the check that covers it instead
	Note       string                       // where this machine's program differs
}

const debianPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// contractImages, by repository (tag left out). Facts from upstream (2026-11-27):
//   - postgres:15 (bookworm): ENV PATH ends with /usr/lib/postgresql/15/bin; ENTRYPOINT
//     docker-entrypoint.sh, CMD postgres. The entrypoint is not here: postgres-entrypoint.sh
//     in testdata follows its first-start path (initdb under nss_wrapper, init scripts).
//   - edoburu/pgbouncer: alpine with postgresql-client (pg_isready) and busybox sh;
//     /usr/bin/pgbouncer; a `command:` override bypasses /entrypoint.sh. Debian's 1.18 here.
//   - quay.io/prometheuscommunity/postgres-exporter: ENTRYPOINT /bin/postgres_exporter (USER
//     nobody); reads DATA_SOURCE_URI (no scheme), DATA_SOURCE_USER, DATA_SOURCE_PASS_FILE;
//     :9187, / answers 200. Debian's 0.11 here reads the same variables.
//   - nginx/nginx-prometheus-exporter: FROM scratch, ENTRYPOINT
//     /usr/bin/nginx-prometheus-exporter, kingpin flags --nginx.scrape-uri and
//     --web.listen-address. Debian's 0.11 uses Go's flag package, which takes the same
//     double-dash flags.
//   - nginxinc/nginx-unprivileged: ENTRYPOINT /docker-entrypoint.sh, CMD nginx -g 'daemon
//     off;', uid 101. The entrypoint's helper scripts (listen on IPv6, envsubst templates,
//     worker tuning) are not run here; nginx.conf is mounted over the image's, so they change
//     nothing the program deploys. Debian's nginx 1.22 here.
//   - curlimages/curl: alpine with curl and busybox sh; its command is overridden.
//   - rclone/rclone: alpine with busybox sh, /usr/local/bin/rclone, ENTRYPOINT rclone; the
//     program overrides the command (sh and a script). Debian's rclone 1.60 here.
//   - percona/percona-distribution-postgresql (ubi9; FIELD-GUIDE 2026-12-07): Patroni 4.x at
//     /usr/bin/patroni (an RPM's Python entry script), PostgreSQL 15 in /usr/pgsql-15/bin,
//     libnss_wrapper at /usr/lib64/libnss_wrapper.so, uid 26 (the pod's 1000 has no entry);
//     the program overrides the command (patroni /etc/patroni/patroni.yml). Here: Debian's
//     Patroni 4.0.7 as scripts/tools.sh unpacks it (.tools/patroni): its modules where Debian's
//     package puts them (/usr/lib/python3/dist-packages), its patroni and patronictl scripts
//     on PATH (/usr/local/bin), on this machine's python3; Debian's PostgreSQL 15 and
//     libnss-wrapper under the image's paths.
//   - postgrest/postgrest (scratch, no shell), envoyproxy/envoy, fluent/fluent-bit: no
//     binary here.
var contractImages = map[string]contractImage{
	"postgres": {
		Runnable: true, Path: debianPath + ":/usr/lib/postgresql/15/bin",
		Entrypoint: []string{"docker-entrypoint.sh"}, Cmd: []string{"postgres"},
		Files: map[string]string{"/usr/local/bin/docker-entrypoint.sh": "testdata/postgres-entrypoint.sh"},
		Note:  "Debian's PostgreSQL 15; the image's entrypoint is followed by testdata/postgres-entrypoint.sh",
	},
	"edoburu/pgbouncer": {
		Runnable: true, Path: debianPath, Entrypoint: []string{"/entrypoint.sh"},
		Cmd:  []string{"/usr/bin/pgbouncer", "/etc/pgbouncer/pgbouncer.ini"},
		Note: "Debian's PgBouncer 1.18 (the image has 1.23); pg_isready from Debian's postgresql-client-15",
	},
	"quay.io/prometheuscommunity/postgres-exporter": {
		Runnable: true, Path: debianPath, Entrypoint: []string{"prometheus-postgres-exporter"},
		Note: "Debian's postgres_exporter 0.11 (the image has 0.17): same DATA_SOURCE_* variables and port",
	},
	"nginx/nginx-prometheus-exporter": {
		Runnable: true, Path: debianPath, Entrypoint: []string{"prometheus-nginx-exporter"},
		Note: "Debian's nginx exporter 0.11 (the image has 1.4): single-dash Go flags, which accept the image's --flags",
	},
	"nginxinc/nginx-unprivileged": {
		Runnable: true, Path: debianPath, Entrypoint: []string{"/docker-entrypoint.sh"},
		Cmd:      []string{"nginx", "-g", "daemon off;"},
		Symlinks: map[string]string{"/var/log/nginx/access.log": "/dev/stdout", "/var/log/nginx/error.log": "/dev/stderr"},
		Standin: func(argv []string) []string {
			if len(argv) > 0 && argv[0] == "/docker-entrypoint.sh" {
				return argv[1:]
			}
			return argv
		},
		Note: "Debian's nginx 1.22 (the image has 1.27); the entrypoint's helper scripts are skipped",
	},
	"postgrest/postgrest": {Covered: "TestPostgres* and TestAuth* run its SQL in PostgreSQL 15 under its roles and JWT claims; " +
		"TestPgBouncerPooledApiAccess runs its transaction through PgBouncer; the mocked suite checks its env, probes and ports"},
	"curlimages/curl": {
		Runnable: true, Path: debianPath, Entrypoint: []string{"/entrypoint.sh"}, Cmd: []string{"curl"},
		Note: "Debian's curl and sh (the image: alpine with curl and busybox sh)",
	},
	"rclone/rclone": {
		Runnable: true, Path: debianPath, Entrypoint: []string{"rclone"},
		Note: "Debian's rclone 1.60 (the image has 1.68: alpine with busybox sh); its command is overridden",
	},
	"migrate/migrate": {
		Runnable: true, Path: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", Entrypoint: []string{"migrate"},
		Files: map[string]string{"/usr/local/bin/migrate": "../../.tools/bin/migrate"},
		Note:  "golang-migrate's CLI at the image's version, built by `make tools` with the image's drivers (postgres, file)",
	},
	"percona/percona-distribution-postgresql": {
		// No Entrypoint or Cmd: the program always sets the command.
		Runnable: true, Path: debianPath,
		Files: map[string]string{
			// On PATH where the image has them in /usr/bin: a file bound into /usr/bin would
			// mirror its 1000-odd entries one bind mount each.
			"/usr/local/bin/patroni":                   patroniTool + "/usr/bin/patroni",
			"/usr/local/bin/patronictl":                patroniTool + "/usr/bin/patronictl",
			patroniModules + "/patroni":                patroniTool + patroniModules + "/patroni",
			patroniModules + "/patroni-4.0.7.egg-info": patroniTool + patroniModules + "/patroni-4.0.7.egg-info",
			patroniModules + "/ydiff.py":               patroniTool + patroniModules + "/ydiff.py",
			patroniModules + "/ydiff-1.4.2.egg-info":   patroniTool + patroniModules + "/ydiff-1.4.2.egg-info",
		},
		Symlinks: map[string]string{
			"/usr/pgsql-15/bin":            "/usr/lib/postgresql/15/bin",
			"/usr/lib64/libnss_wrapper.so": "/usr/lib/x86_64-linux-gnu/libnss_wrapper.so",
		},
		Note: "Debian's Patroni 4.0.7 (`make tools`; the image has Patroni 4.x) on this machine's python3, " +
			"Debian's PostgreSQL 15.18 at the image's /usr/pgsql-15/bin and libnss-wrapper at its /usr/lib64/libnss_wrapper.so",
	},
	"envoyproxy/envoy": {Covered: "TestEnvoyConfigIsAValidBootstrap decodes envoy.yaml into Envoy's bootstrap v3 types and validates it"},
	"fluent/fluent-bit": {Covered: "TestNginxFluentBitReceivesTheAccessLog checks fluent-bit.conf against what nginx sends, " +
		"and its parsers against real nginx syslog lines (TestNginxAccessLogJSON)"},
}

// patroniTool is Debian's Patroni package as scripts/tools.sh unpacks it; patroniModules is
// where Debian's package puts its Python modules.
const (
	patroniTool    = "../../.tools/patroni"
	patroniModules = "/usr/lib/python3/dist-packages"
)

// contractImageOf finds an image's entry by its repository.
func contractImageOf(image string) (contractImage, bool) {
	repo := image
	if i := strings.LastIndex(image, ":"); i > strings.LastIndex(image, "/") {
		repo = image[:i]
	}
	img, ok := contractImages[repo]
	return img, ok
}
