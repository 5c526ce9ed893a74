package components

import (
	"fmt"
	"strings"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"ecommerce-platform/components/config"
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
	return build(ctx, cfg)
}

// build registers the stack of a validated config.
func build(ctx *pulumi.Context, cfg *config.Config) error {
	var err error
	instance := ctx.Stack()
	security := PodSecurity{RunAsUser: cfg.RunAsUser, RunAsGroup: cfg.RunAsGroup, FSGroup: cfg.FSGroup}
	databaseID := Identity{Name: "database", Instance: instance, Component: "database"}
	backendID := Identity{Name: "backend", Instance: instance, Component: "api"}
	frontendID := Identity{Name: "frontend", Instance: instance, Component: "web"}
	protect := pulumi.Protect(cfg.Database.Protect)

	foundation, err := NewFoundation(ctx, "foundation", &FoundationArgs{
		Namespace: cfg.Namespace, Instance: instance, Quota: cfg.Quota,
	}, protect)
	if err != nil {
		return fmt.Errorf("foundation: %w", err)
	}
	ns := foundation.Namespace

	database, err := NewDatabase(ctx, "database", &DatabaseArgs{
		Namespace: ns, Identity: databaseID, Security: security, Settings: cfg.Database,
		Password: cfg.DBPassword, APIPassword: cfg.APIDBPassword, JWTSecret: cfg.JWTSecret, ReplicationPassword: cfg.ReplicationPassword,
		OffsiteAccessKeyID: cfg.OffsiteAccessKeyID, OffsiteSecretAccessKey: cfg.OffsiteSecretAccessKey,
		ClientPods: backendID.Selector(), MonitoringNamespace: cfg.MonitoringNamespace,
		ExposeNodePorts: cfg.ExposeNodePorts, NodePortFrom: config.CIDRList(cfg.NodePortSources), Spread: cfg.SpreadAcrossNodes,
	}, protect)
	if err != nil {
		return fmt.Errorf("database: %w", err)
	}

	backend, err := NewBackend(ctx, "backend", &BackendArgs{
		Namespace: ns, Identity: backendID, Security: security, Settings: cfg.Backend,
		WaitImage: cfg.Database.Image, DatabaseHost: database.ServiceName, DatabaseName: cfg.Database.Name,
		DatabasePods: databaseID.Selector(), ClientPods: frontendID.Selector(),
		APIPassword: cfg.APIDBPassword, JWTSecret: cfg.JWTSecret, StartAfter: []pulumi.Resource{database.CredentialsJob},
		ExposeNodePorts: cfg.ExposeNodePorts, NodePortFrom: config.CIDRList(cfg.NodePortSources), Spread: cfg.SpreadAcrossNodes,
	})
	if err != nil {
		return fmt.Errorf("backend: %w", err)
	}

	frontend, err := NewBlueGreen(ctx, "frontend", &BlueGreenArgs{
		Namespace: ns, Identity: frontendID, Security: security, Settings: cfg.Frontend,
		BackendHost: backend.ServiceName, BackendPort: BackendPort, BackendPods: backendID.Selector(),
		MonitoringNamespace: cfg.MonitoringNamespace,
		ExposeNodePorts:     cfg.ExposeNodePorts, Spread: cfg.SpreadAcrossNodes,
	})
	if err != nil {
		return fmt.Errorf("frontend: %w", err)
	}

	ctx.Export("namespace", ns)
	ctx.Export("databaseService", database.ServiceName)
	ctx.Export("backendService", backend.ServiceName)
	ctx.Export("activeColor", frontend.ActiveColor)
	ctx.Export("productionAddress", frontend.ProductionAddress)
	ctx.Export("previewAddresses", frontend.PreviewAddresses)
	return nil
}

// checkCapacity rehearses the stack of cfg and refuses it, naming the numbers, when its
// ResourceQuota cannot admit its own peak.
func checkCapacity(ctx *pulumi.Context, cfg *config.Config) error {
	rec := &rehearsal{}
	if err := pulumi.RunErr(func(mock *pulumi.Context) error { return build(mock, cfg) },
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
