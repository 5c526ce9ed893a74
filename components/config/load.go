// Package config is the stack's configuration: one table of keys (keys.go, secrets.go), each
// with its type, default, description and own validation; loading that reports every problem
// at once; the rules that span keys (validate.go); and the typed tiers (types.go) that
// program.go maps into each component's Args. Files depend downward only: load -> keys ->
// key -> problems -> types. It imports nothing else of this project.
package config

import (
	"strconv"
	"unicode/utf8"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	pulumiconfig "github.com/pulumi/pulumi/sdk/v3/go/pulumi/config"
)

// Schema lists every config key with its type, default and description.
func Schema() []Key {
	keys := append([]Key(nil), configKeys...)
	for _, s := range secretKeys {
		keys = append(keys, Key{Key: s.key, Type: string(kindString), Description: s.desc, Secret: true, Issued: s.issued})
	}
	return keys
}

// Load reads and validates the stack config. It reports every problem at once.
func Load(ctx *pulumi.Context) (*Config, error) {
	var problems problemList
	cfg := &Config{}
	for _, k := range configKeys {
		raw, err := pulumiconfig.Try(ctx, k.Key)
		if err != nil {
			raw = k.Default
		}
		if ctx.IsConfigSecret(ctx.Project() + ":" + k.Key) {
			problems.add(k.Key, "<secret>", "a plain value (it is not a secret; set it without --secret)")
			continue
		}
		switch target := k.bind(cfg).(type) {
		case *string:
			*target = raw
		case *int:
			n, err := strconv.Atoi(raw)
			if err != nil {
				problems.add(k.Key, raw, "a whole number")
			}
			*target = n
		case *bool:
			b, err := strconv.ParseBool(raw)
			if err != nil {
				problems.add(k.Key, raw, "true or false")
			}
			*target = b
		}
	}
	for _, s := range secretKeys {
		full := ctx.Project() + ":" + s.key
		raw, err := pulumiconfig.Try(ctx, s.key)
		switch {
		case (err != nil || raw == "") && s.required != nil && !s.required(cfg):
			*s.bind(cfg) = pulumi.ToSecret(pulumi.String("")).(pulumi.StringOutput)
			continue
		case err != nil || raw == "":
			problems.addf(s.key, "is missing; set it with `pulumi config set --secret %s <value>` (at least %d characters)", s.key, s.minLen)
			continue
		case !ctx.IsConfigSecret(full):
			problems.addf(s.key, "is stored in plain text; remove it and set it with `pulumi config set --secret %s <value>`", s.key)
		case utf8.RuneCountInString(raw) < s.minLen:
			// Characters, as the database's own checks count them (length()), not bytes.
			problems.addf(s.key, "is %d characters long; it must be at least %d", utf8.RuneCountInString(raw), s.minLen)
		}
		*s.bind(cfg) = pulumi.ToSecret(pulumi.String(raw)).(pulumi.StringOutput)
	}
	if cfg.Database.Offsite.Prefix == "" {
		cfg.Database.Offsite.Prefix = ctx.Stack()
	}
	problems = append(problems, cfg.Validate()...)
	if err := problems.err(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// Defaults is the config with every key at its default and no secrets, for tests and
// documentation.
func Defaults() Config {
	cfg := Config{}
	for _, k := range configKeys {
		switch target := k.bind(&cfg).(type) {
		case *string:
			*target = k.Default
		case *int:
			*target, _ = strconv.Atoi(k.Default)
		case *bool:
			*target, _ = strconv.ParseBool(k.Default)
		}
	}
	return cfg
}
