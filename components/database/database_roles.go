package database

// The database-credentials Secret's keys and the login roles that read them. Every
// container mounts exactly the keys it reads (kube.SecretKeysVolume), never the whole Secret
// (issue 27, finding 4): the superuser's password is in the server's own container (the
// image's first start), the database-migrate Job's bootstrap and the database-credentials Job,
// and nowhere else.
const (
	superuserPasswordKey     = "password"                // dbPassword: the image's POSTGRES_USER
	authenticatorPasswordKey = "authenticator-password"  // apiDbPassword: PgBouncer's login
	jwtSecretKey             = "jwt-secret"              // jwtSecret: shop.jwt_keys
	replicationPasswordKey   = "replication-password"    // replicationPassword: replicas and archiver
	backupPasswordKey        = "backup-password"         // backupDbPassword: role backup
	releaseUnpaidPasswordKey = "release-unpaid-password" // releaseUnpaidDbPassword: role release_unpaid
	monitorPasswordKey       = "monitor-password"        // monitorDbPassword: role monitor
)

// The login roles of the jobs and exporters (issue 27, finding 3): none is a superuser, none
// may run a program on the server. Prefixed, so no role an operator made for something else
// is taken over (bootstrap.sql corrects their attributes on every run). bootstrap.sql creates them, the credentials Job sets their
// passwords, migration 000006 grants what each needs.
const (
	// backupRole dumps the shop: SELECT on its schemas' tables (shop.jwt_keys included, so
	// pg_dump can lock it, but row-level security shows it no row).
	backupRole = "shop_backup"
	// releaseUnpaidRole may call shop.release_unpaid_orders (SECURITY DEFINER) and nothing else.
	releaseUnpaidRole = "shop_release_unpaid"
	// monitorRole is pg_monitor and the version table, logging in from the loopback of the
	// database pods only (pg_hba.conf).
	monitorRole = "shop_monitor"
)

// credentialsSyncKeys are the keys the database-credentials Job reads: the superuser's
// password it logs in with and every value it sets.
var credentialsSyncKeys = []string{
	superuserPasswordKey, authenticatorPasswordKey, jwtSecretKey, replicationPasswordKey,
	backupPasswordKey, releaseUnpaidPasswordKey, monitorPasswordKey,
}
