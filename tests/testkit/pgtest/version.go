package pgtest

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"ecommerce-platform/components/assets"
)

// NewestVersion is the newest migration's version: the schema the database-migrate Job brings
// every shop to.
func NewestVersion(t testing.TB) int {
	t.Helper()
	_, newest, err := assets.Migrations()
	require.NoError(t, err)
	return newest
}

// VerifiedClean is what migrate-verify.sh prints for a shop at the newest version, not dirty.
func VerifiedClean(t testing.TB) string {
	return fmt.Sprintf("schema at version %d (clean)", NewestVersion(t))
}

// VersionRow is migrations.schema_migrations' row ("version|dirty") of a shop at the newest
// version, not dirty.
func VersionRow(t testing.TB) string {
	return fmt.Sprintf("%d|false", NewestVersion(t))
}
