package warehouse

import "context"

// MigrateTo applies the migrations up to version, as a binary released
// before the later ones would, so tests can check an upgrade.
func (db *DB) MigrateTo(ctx context.Context, version int) error {
	var ms []Migration
	for _, m := range Migrations {
		if m.Version <= version {
			ms = append(ms, m)
		}
	}
	return db.migrate(ctx, ms)
}
