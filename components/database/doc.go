// Package database is the PostgreSQL tier: the primary (or the Patroni members with
// databaseFailover), the read replicas, the WAL archiver and its off-site copies, the
// database-migrate and credentials Jobs, the backup and release-unpaid CronJobs, their roles,
// Secrets and NetworkPolicies. It is its own package because it is the largest tier and the
// one whose changes (migrations, Patroni) reach users through upgrades; it builds on
// components/kube and the embedded assets, and nothing in it knows the other tiers beyond the
// pods that may connect (Args.ClientPods).
package database
