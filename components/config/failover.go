package config

// validate checks what Patroni itself would only refuse at run time, or never: a member to
// fail over to, timings that let the leader renew its lock before it expires, and the
// features not yet built on top of Patroni.
func (f *Failover) validate(v *problemList, d *Database) {
	if !f.Enabled {
		return
	}
	if d.Replicas < 1 {
		v.addf("databaseReplicas", "0 leaves databaseFailover nothing to fail over to; use at least 1 (2 for quorum commit that survives a lost member), or set databaseFailover false")
	}
	if budget := f.LoopWaitSeconds + 2*f.RetryTimeoutSeconds; budget > f.TTLSeconds {
		v.addf("databaseFailoverTtlSeconds", "%d is shorter than databaseFailoverLoopWaitSeconds + 2 x databaseFailoverRetryTimeoutSeconds = %d, so a leader that retries once can lose its lock while healthy; use at least %d",
			f.TTLSeconds, budget, budget)
	}
	if d.Recovery.From != "" {
		v.addf("databaseRecoverFrom", "%q with databaseFailover true: a recovery bootstraps a single primary; recover with databaseFailover false, then turn it on (Patroni takes the recovered data directory over as its leader)", d.Recovery.From)
	}
}

// syncCandidates are the standbys a commit may wait for: every replica and, without Patroni,
// the archiver (Patroni manages synchronous_standby_names itself and counts only members).
func (d *Database) syncCandidates() (int, string) {
	if d.Failover.Enabled {
		return d.Replicas, "databaseReplicas with databaseFailover: Patroni counts only members, never the archiver"
	}
	if d.Archive.Enabled {
		return d.Replicas + 1, "databaseReplicas plus 1 with databaseArchive"
	}
	return d.Replicas, "databaseReplicas"
}
