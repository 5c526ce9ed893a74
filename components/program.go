package components

import (
	"fmt"
	"strings"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"ecommerce-platform/components/assets"
	"ecommerce-platform/components/config"
	"ecommerce-platform/components/database"
	"ecommerce-platform/components/kube"
)

// Program builds the whole stack from its config: load and validate everything first (so
// nothing is registered when config is invalid), check that the namespace's quota admits the
// stack at its peak (capacity.go: a rehearsal in memory), then the tiers in dependency order,
// wired through each other's Outputs.
func Program(ctx *pulumi.Context) error {
	cfg, err := config.Load(ctx)
	if err != nil {
		return err
	}
	if err := checkCapacity(ctx, cfg); err != nil {
		return err
	}
	prior, err := priorReleases(ctx, func(color string) ColorRelease {
		r := cfg.Frontend.Color(color)
		return ColorRelease{Image: r.Image, Version: r.Version}
	})
	if err != nil {
		return err
	}
	warnRecovery(ctx, cfg.Database, prior)
	return build(ctx, cfg, prior)
}

// recoveryDone tells whether an earlier update recorded the recovery from the configured
// databaseRecoverFrom as finished (RecoveredOutput).
func recoveryDone(d config.Database, prior Prior) bool {
	return d.Recovery.From != "" && prior.Recovered == d.Recovery.From
}

// warnRecovery says what databaseRecoverFrom does in this update: the primary reaches object
// storage until an update records the recovery as finished; after that it reaches nothing and
// the key is left for the operator to unset.
func warnRecovery(ctx *pulumi.Context, d config.Database, prior Prior) {
	switch {
	case d.Recovery.From == "":
	case recoveryDone(d, prior):
		ctx.Log.Warn(fmt.Sprintf("databaseRecoverFrom: the recovery from %s finished in an earlier update; the primary no longer reaches "+
			"object storage and its init containers leave the database alone: unset it (pulumi config rm databaseRecoverFrom)", d.Recovery.From), nil)
	default:
		ctx.Log.Warn(fmt.Sprintf("databaseRecoverFrom: the primary may reach %s (port %d) while it recovers from %s; once this update succeeds, "+
			"run pulumi up once more (or unset databaseRecoverFrom) to take that egress away", d.Offsite.Endpoint, database.ObjectStoragePort(d.Offsite.Endpoint), d.Recovery.From), nil)
	}
}

// build registers the stack of a validated config; prior is what each frontend color ran
// after the last update (colorpin.go).
func build(ctx *pulumi.Context, cfg *config.Config, prior Prior) error {
	var err error
	instance := ctx.Stack()
	security := kube.PodSecurity{RunAsUser: cfg.RunAsUser, RunAsGroup: cfg.RunAsGroup, FSGroup: cfg.FSGroup}
	databaseID := kube.Identity{Name: "database", Instance: instance, Component: "database"}
	backendID := kube.Identity{Name: "backend", Instance: instance, Component: "api"}
	frontendID := kube.Identity{Name: "frontend", Instance: instance, Component: "web"}
	protect := pulumi.Protect(cfg.Database.Protect)
	scrapers := kube.Scrapers{Namespace: cfg.MonitoringNamespace, Annotate: cfg.Monitoring.Annotate()}

	foundation, err := NewFoundation(ctx, "foundation", &FoundationArgs{
		Namespace: cfg.Namespace, Instance: instance, Quota: cfg.Quota,
	}, protect)
	if err != nil {
		return fmt.Errorf("foundation: %w", err)
	}
	ns := foundation.Namespace

	db, err := database.New(ctx, "database", &database.Args{
		Namespace: ns, NamespaceName: cfg.Namespace, Identity: databaseID, Security: security, Settings: cfg.Database,
		Password: cfg.DBPassword, APIPassword: cfg.APIDBPassword, JWTSecret: cfg.JWTSecret, ReplicationPassword: cfg.ReplicationPassword,
		RolePasswords:      cfg.RolePasswords,
		OffsiteAccessKeyID: cfg.OffsiteAccessKeyID, OffsiteSecretAccessKey: cfg.OffsiteSecretAccessKey, OffsiteEncryptionKey: cfg.OffsiteEncryptionKey,
		ClientPods: backendID.Selector(), Monitoring: scrapers,
		ExposeNodePorts: cfg.ExposeNodePorts, NodePortFrom: config.CIDRList(cfg.NodePortSources), Spread: cfg.SpreadAcrossNodes,
		RecoveryDone: recoveryDone(cfg.Database, prior),
	}, protect)
	if err != nil {
		return fmt.Errorf("database: %w", err)
	}

	backend, err := NewBackend(ctx, "backend", &BackendArgs{
		Namespace: ns, Identity: backendID, Security: security, Settings: cfg.Backend,
		WaitImage: cfg.Database.Image, DatabaseHost: db.ServiceName, DatabaseName: cfg.Database.Name,
		DatabasePods: databaseID.Selector(), ClientPods: frontendID.Selector(),
		APIPassword: cfg.APIDBPassword, JWTSecret: cfg.JWTSecret, StartAfter: []pulumi.Resource{db.CredentialsJob}, SchemaHash: db.SchemaHash,
		ExposeNodePorts: cfg.ExposeNodePorts, NodePortFrom: config.CIDRList(cfg.NodePortSources), Spread: cfg.SpreadAcrossNodes,
		Monitoring: scrapers,
	})
	if err != nil {
		return fmt.Errorf("backend: %w", err)
	}

	frontend, err := NewBlueGreen(ctx, "frontend", &BlueGreenArgs{
		Namespace: ns, Identity: frontendID, Security: security, Settings: cfg.Frontend,
		BackendHost: backend.ServiceName, BackendPort: BackendPort, BackendPods: backendID.Selector(),
		Monitoring:      scrapers,
		ExposeNodePorts: cfg.ExposeNodePorts, Spread: cfg.SpreadAcrossNodes, Prior: prior,
	})
	if err != nil {
		return fmt.Errorf("frontend: %w", err)
	}

	if cfg.Monitoring.Mode == config.MonitoringOperator {
		if _, err := NewMonitoring(ctx, "monitoring", &MonitoringArgs{
			Namespace: ns, Labels: kube.Identity{Name: "monitoring", Instance: instance, Component: "monitoring"}.TierLabels(),
			Settings: cfg.Monitoring, Targets: scrapeTargets(cfg, databaseID, backendID, frontendID),
			Alerts: alertSettings(cfg, backendID),
		}); err != nil {
			return fmt.Errorf("monitoring: %w", err)
		}
	}

	ctx.Export("namespace", ns)
	ctx.Export("databaseService", db.ServiceName)
	ctx.Export("backendService", backend.ServiceName)
	ctx.Export("activeColor", frontend.ActiveColor)
	ctx.Export("productionAddress", frontend.ProductionAddress)
	ctx.Export("previewAddresses", frontend.PreviewAddresses)
	ctx.Export(ReleasesOutput, releasesOutput(frontend.Releases, frontend.LiveColor))
	ctx.Export(LiveOutput, frontend.LiveColor)
	ctx.Export("programVersion", pulumi.String(Version))
	ctx.Export("schemaVersion", pulumi.Int(db.SchemaVersion))
	ctx.Export(RecoveredOutput, db.RecoveredFrom)
	return nil
}

// scrapeTargets are the stack's exporters, for the operator's PodMonitors: the primary's
// and the replicas' postgres_exporter, the backend's Envoy statistics, the archiver's
// metrics file, the frontend's nginx exporter (both colors).
func scrapeTargets(cfg *config.Config, db, backend, frontend kube.Identity) []ScrapeTarget {
	targets := []ScrapeTarget{{Name: db.Object(), Selector: db.MatchLabels()}, {Name: backend.Object(), Selector: backend.MatchLabels()}}
	if cfg.Database.Replicas > 0 && !cfg.Database.Failover.Enabled {
		targets = append(targets, ScrapeTarget{Name: db.Object("replica"), Selector: db.WithComponent("replica").MatchLabels()})
	}
	if cfg.Database.Archive.Enabled {
		targets = append(targets, ScrapeTarget{Name: db.Object("archiver"), Selector: db.WithComponent("archiver").MatchLabels()})
	}
	return append(targets, ScrapeTarget{Name: frontend.Object(), Selector: frontend.MatchLabels()})
}

// replicaSlots matches the replicas' slots on the primary: Patroni names each after its
// member (database_1), the replica StatefulSet's bootstrap after its pod (database_replica_0).
func replicaSlots(d config.Database) string {
	if d.Failover.Enabled {
		return "database_[0-9]+"
	}
	return "database_replica_.*"
}

// alertSettings are the alerts' scope and thresholds, from the stack's config.
func alertSettings(cfg *config.Config, backend kube.Identity) assets.AlertSettings {
	d, m := cfg.Database, cfg.Monitoring
	return assets.AlertSettings{
		Namespace: cfg.Namespace, Replicas: d.Replicas > 0, ReplicaSlots: replicaSlots(d), Failover: d.Failover.Enabled,
		ReplicaMaxLagSeconds: d.ReplicaMaxLagSeconds,
		ConnectionsPercent:   m.ConnectionsPercent, ErrorPercent: m.ErrorPercent, Archive: d.Archive.Enabled,
		BaseBackupMaxAgeSeconds: d.Archive.BaseBackupIntervalHours*3600 + 3600,
		Offsite:                 d.Offsite.Enabled, OffsiteMaxAgeSeconds: 3 * d.Offsite.IntervalSeconds,
		Restarts: m.Restarts, Autoscale: cfg.Backend.Autoscale, HPAName: backend.Object(), HPAMaxMinutes: m.HPAMaxMinutes,
	}
}

// checkCapacity rehearses the stack of cfg and refuses it, naming the numbers, when its
// ResourceQuota cannot admit its own peak.
func checkCapacity(ctx *pulumi.Context, cfg *config.Config) error {
	rec := &rehearsal{}
	if err := pulumi.RunErr(func(mock *pulumi.Context) error { return build(mock, cfg, Prior{}) },
		pulumi.WithMocks(ctx.Project(), ctx.Stack(), rec)); err != nil {
		return fmt.Errorf("capacity check (a rehearsal of the stack in memory): %w", err)
	}
	problems, _, err := QuotaShortfalls(rec.objects)
	if err != nil {
		return fmt.Errorf("capacity check: %w", err)
	}
	if len(problems) > 0 {
		return fmt.Errorf("the namespace's ResourceQuota cannot admit this stack at its peak (the backend HPA at its maximum, "+
			"a surge pod per Deployment during a rollout, every replica, Job and CronJob pod, every claim):\n  %s\n"+
			"raise the quota keys above (pulumi config set <key> <value>) or lower the maxima", strings.Join(problems, "\n  "))
	}
	return nil
}
