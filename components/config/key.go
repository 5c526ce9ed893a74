package config

import "strconv"

// settingKind is a key's type as Pulumi.yaml spells it.
type settingKind string

const (
	kindString settingKind = "string"
	kindInt    settingKind = "integer"
	kindBool   settingKind = "boolean"
)

// Key describes one stack config key. The table in keys.go is the one declaration of each
// key: Load fills Config from it, Validate runs its check, ProjectYAML writes Pulumi.yaml.
type Key struct {
	Key         string
	Type        string // string, integer or boolean, as Pulumi.yaml spells them
	Default     string
	Description string
	Secret      bool
	// Issued is a secret someone else issues (object storage keys): never generated.
	Issued bool
	bind   func(*Config) any
	check  func(*problemList, *Config) // this key's own validation, if any
}

// between allows an integer key values from lo to hi.
func (k Key) between(lo, hi int) Key {
	k.check = func(p *problemList, c *Config) { p.intRange(k.Key, *k.bind(c).(*int), lo, hi) }
	return k
}

// checked validates a string key with one of problemList's checks.
func (k Key) checked(f func(p *problemList, key, value string)) Key {
	k.check = func(p *problemList, c *Config) { f(p, k.Key, *k.bind(c).(*string)) }
	return k
}

// quantity requires a positive Kubernetes quantity.
func (k Key) quantity() Key { return k.checked((*problemList).quantity) }

// memory requires a PostgreSQL memory size (kB, MB, GB, TB).
func (k Key) memory() Key { return k.checked((*problemList).pgMemory) }

// image requires a pinned image reference.
func (k Key) image() Key { return k.checked((*problemList).image) }

// cron requires a five-field cron schedule.
func (k Key) cron() Key { return k.checked((*problemList).cron) }

// cidrList requires comma-separated CIDRs (none at all only when emptyOK).
func (k Key) cidrList(emptyOK bool) Key {
	return k.checked(func(p *problemList, key, value string) { p.cidrs(key, value, emptyOK) })
}

func str(key, def, desc string, bind func(*Config) *string) Key {
	return Key{Key: key, Type: string(kindString), Default: def, Description: desc, bind: func(c *Config) any { return bind(c) }}
}

func num(key string, def int, desc string, bind func(*Config) *int) Key {
	return Key{Key: key, Type: string(kindInt), Default: strconv.Itoa(def), Description: desc, bind: func(c *Config) any { return bind(c) }}
}

func flag(key string, def bool, desc string, bind func(*Config) *bool) Key {
	return Key{Key: key, Type: string(kindBool), Default: strconv.FormatBool(def), Description: desc, bind: func(c *Config) any { return bind(c) }}
}
