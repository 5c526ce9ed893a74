package config

import "github.com/pulumi/pulumi/sdk/v3/go/pulumi"

// secretKeys are required and must be set with `pulumi config set --secret`.
var secretKeys = []struct {
	key      string
	minLen   int
	desc     string
	bind     func(*Config) *pulumi.StringOutput
	required func(*Config) bool // nil: always
	issued   bool               // someone else issues it (object storage keys): never generated
}{
	{"dbPassword", 12, "Password of the database owner (postgres superuser of the instance)", func(c *Config) *pulumi.StringOutput { return &c.DBPassword }, nil, false},
	{"apiDbPassword", 12, "Password of the API's `authenticator` login role, used by PgBouncer", func(c *Config) *pulumi.StringOutput { return &c.APIDBPassword }, nil, false},
	{"jwtSecret", 32, "HS256 secret that signs and verifies the API's JWTs (PostgREST needs at least 32 characters)", func(c *Config) *pulumi.StringOutput { return &c.JWTSecret }, nil, false},
	{"replicationPassword", 12, "Password of the `replicator` role the read replicas and the archiver stream with (required when databaseReplicas > 0 or databaseArchive)",
		func(c *Config) *pulumi.StringOutput { return &c.ReplicationPassword }, func(c *Config) bool { return c.Database.Replicas > 0 || c.Database.Archive.Enabled }, false},
	{"backupDbPassword", 12, "Password of the `backup` login role the backup CronJob's pg_dump logs in as (it reads the shop's tables, never the signing key; not a superuser)",
		func(c *Config) *pulumi.StringOutput { return &c.RolePasswords.Backup }, nil, false},
	{"releaseUnpaidDbPassword", 12, "Password of the `release_unpaid` login role the release-unpaid CronJob logs in as (it may call shop.release_unpaid_orders and nothing else)",
		func(c *Config) *pulumi.StringOutput { return &c.RolePasswords.ReleaseUnpaid }, nil, false},
	{"monitorDbPassword", 12, "Password of the `monitor` login role the postgres_exporters log in as (pg_monitor, from inside the database pods only); the exporters read it when they start",
		func(c *Config) *pulumi.StringOutput { return &c.RolePasswords.Monitor }, nil, false},
	{"offsiteAccessKeyId", 3, "Access key id for the S3 endpoint (required with databaseOffsite or databaseRecoverFrom)",
		func(c *Config) *pulumi.StringOutput { return &c.OffsiteAccessKeyID }, func(c *Config) bool { return c.Database.UsesObjectStorage() }, true},
	{"offsiteSecretAccessKey", 8, "Secret access key for the S3 endpoint (required with databaseOffsite or databaseRecoverFrom)",
		func(c *Config) *pulumi.StringOutput { return &c.OffsiteSecretAccessKey }, func(c *Config) bool { return c.Database.UsesObjectStorage() }, true},
	{"databaseOffsiteEncryptionKey", 32, "Key the archive is encrypted with before it leaves the cluster (rclone crypt: contents and names), and decrypted with by a recovery: required with databaseOffsite or databaseRecoverFrom (a recovering stack sets the key of the archive it recovers from). Keep a copy outside the cluster: without it the off-site archive cannot be read",
		func(c *Config) *pulumi.StringOutput { return &c.OffsiteEncryptionKey }, func(c *Config) bool { return c.Database.UsesObjectStorage() }, false},
}
