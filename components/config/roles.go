package config

import "github.com/pulumi/pulumi/sdk/v3/go/pulumi"

// RolePasswords are the passwords of the login roles the database's jobs and exporters log in
// as instead of the superuser (issue 27, finding 3): the backup CronJob's pg_dump (backup),
// the release-unpaid CronJob (release_unpaid) and the postgres_exporters (monitor). The
// database-credentials Job sets them; each container mounts only its own.
type RolePasswords struct {
	Backup        pulumi.StringOutput
	ReleaseUnpaid pulumi.StringOutput
	Monitor       pulumi.StringOutput
}
