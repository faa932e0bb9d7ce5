package warehouse

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"
)

// migrationFiles holds the schema's history, one SQL file a migration,
// named NNNN_what.sql with NNNN its version (see parseMigration for the
// file's form). migrations/released.sha256 freezes every released one: a
// test fails when a released migration's statements change, so a fix to
// the schema is always a new file, never an edit.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations is the schema's history, oldest first: every file of
// migrations/, in version order. Add a file with the next version; never
// edit a released one (TestMigrationsFrozen holds them).
var Migrations = mustLoadMigrations(migrationFiles, "migrations")

// mustLoadMigrations reads the migrations embedded in the binary; they are
// checked by the package's tests, so a malformed one is a build defect.
func mustLoadMigrations(fsys fs.FS, dir string) []Migration {
	ms, err := loadMigrations(fsys, dir)
	if err != nil {
		panic(err)
	}
	return ms
}

// loadMigrations reads every NNNN_*.sql file of dir, in name order, and
// checks that the versions run 1, 2, 3... without a gap or a repeat, so
// the order is the files' and nothing else (no init order, no builder
// shared by two versions).
func loadMigrations(fsys fs.FS, dir string) ([]Migration, error) {
	names, err := fs.Glob(fsys, path.Join(dir, "*.sql"))
	if err != nil {
		return nil, fmt.Errorf("warehouse: list migrations: %w", err)
	}
	ms := make([]Migration, 0, len(names))
	for i, name := range names { // fs.Glob returns names sorted
		base := path.Base(name)
		num, _, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || len(num) != 4 || err != nil {
			return nil, fmt.Errorf("warehouse: migration file %s: want NNNN_what.sql", base)
		}
		if v != i+1 {
			return nil, fmt.Errorf("warehouse: migration file %s: version %d where %d comes next", base, v, i+1)
		}
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, fmt.Errorf("warehouse: read migration %s: %w", base, err)
		}
		m, err := parseMigration(string(b))
		if err != nil {
			return nil, fmt.Errorf("warehouse: migration file %s: %w", base, err)
		}
		m.Version = v
		ms = append(ms, m)
	}
	return ms, nil
}

// parseMigration reads one migration file. Its first line is
// `-- name: what it does` (the name schema_migrations records); then come
// statements, each ending with a ';' at the end of a line, which must be
// the only ';' that ends a line in it. Blank lines and lines starting with
// "--" between statements are comments, not part of any statement; a
// statement's text is its lines up to the ';', without the white space
// around them.
func parseMigration(text string) (Migration, error) {
	first, rest, _ := strings.Cut(text, "\n")
	name, ok := strings.CutPrefix(first, "-- name: ")
	if !ok || strings.TrimSpace(name) == "" {
		return Migration{}, fmt.Errorf("first line %q: want -- name: <what the migration does>", first)
	}
	m := Migration{Name: strings.TrimSpace(name)}
	var stmt []string // the lines of the statement being read
	for _, line := range strings.Split(rest, "\n") {
		if len(stmt) == 0 && (strings.TrimSpace(line) == "" || strings.HasPrefix(line, "--")) {
			continue
		}
		body, end := strings.CutSuffix(strings.TrimRight(line, " \t\r"), ";")
		stmt = append(stmt, body)
		if !end {
			continue
		}
		s := strings.TrimSpace(strings.Join(stmt, "\n"))
		if s == "" {
			return Migration{}, fmt.Errorf("statement %d is empty", len(m.Statements)+1)
		}
		m.Statements = append(m.Statements, s)
		stmt = stmt[:0]
	}
	if len(stmt) > 0 {
		return Migration{}, fmt.Errorf("statement %d does not end with ';' at the end of a line", len(m.Statements)+1)
	}
	if len(m.Statements) == 0 {
		return Migration{}, fmt.Errorf("no statement")
	}
	return m, nil
}

// Checksum is the SHA-256 of the migration's statements, as run: what
// migrations/released.sha256 records for a released migration. Comments
// and the name are outside it, so a released file's explanation may still
// be improved.
func (m Migration) Checksum() string {
	h := sha256.New()
	for _, s := range m.Statements {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}
