package warehouse

// Version 6: status events carry the rollout wave (proto StatusEvent.Wave),
// so the rollout funnel can be split by wave. Existing rows read 0, unknown.
func init() {
	Migrations = append(Migrations, Migration{
		Version: 6,
		Name:    "rollout wave on status events",
		Statements: []string{
			`ALTER TABLE status_events ADD COLUMN IF NOT EXISTS wave UInt16 DEFAULT 0`,
		},
	})
}
