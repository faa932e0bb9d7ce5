package warehouse

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/require"
)

// TestMigrationsFrozen holds every released migration to the checksum
// recorded when it was released: an edit to a released statement fails
// here, since databases that already ran it would never see the edit.
func TestMigrationsFrozen(t *testing.T) {
	f, err := os.Open("migrations/released.sha256")
	require.NoError(t, err)
	defer f.Close()
	released := map[int]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		num, sum, ok := strings.Cut(line, " ")
		v, err := strconv.Atoi(num)
		require.True(t, ok && err == nil, "released.sha256: bad line %q", line)
		require.NotContains(t, released, v, "released.sha256: version %d listed twice", v)
		released[v] = sum
	}
	require.NoError(t, sc.Err())
	require.NotEmpty(t, released)

	byVersion := map[int]Migration{}
	for _, m := range Migrations {
		byVersion[m.Version] = m
	}
	for v, sum := range released {
		m, ok := byVersion[v]
		require.True(t, ok, "released migration %d is gone: a released migration is never removed", v)
		require.Equal(t, sum, m.Checksum(), "released migration %d (%s) changed: "+
			"databases that ran it will never see the change; put it in a new migration instead", v, m.Name)
	}
	for _, m := range Migrations {
		_, ok := released[m.Version]
		require.True(t, ok, "migration %d (%s) is not in migrations/released.sha256: "+
			"once it is final, release it by adding the line\n%04d %s", m.Version, m.Name, m.Version, m.Checksum())
	}
}

func TestParseMigration(t *testing.T) {
	tests := []struct {
		name, text string
		want       []string
		err        string
	}{
		{"two statements with comments", "-- name: n\n-- about\n\nCREATE TABLE a (x UInt8);\n\n-- why\nCREATE VIEW b AS\n\tSELECT 1;\n",
			[]string{"CREATE TABLE a (x UInt8)", "CREATE VIEW b AS\n\tSELECT 1"}, ""},
		{"indentation inside a statement is kept", "-- name: n\nSELECT\n\t\t\t1,\n\t\t\t2;\n-- trailing comment\n",
			[]string{"SELECT\n\t\t\t1,\n\t\t\t2"}, ""},
		{"a ; inside a line does not split", "-- name: n\nSELECT ';' AS x;\n", []string{"SELECT ';' AS x"}, ""},
		{"no name", "CREATE TABLE a (x UInt8);\n", nil, "want -- name:"},
		{"empty name", "-- name: \nSELECT 1;\n", nil, "want -- name:"},
		{"unterminated", "-- name: n\nSELECT 1;\nSELECT 2\n", nil, "does not end with ';'"},
		{"empty statement", "-- name: n\nSELECT 1;\n;\n", nil, "statement 2 is empty"},
		{"no statement", "-- name: n\n-- nothing\n", nil, "no statement"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := parseMigration(tt.text)
			if tt.err != "" {
				require.ErrorContains(t, err, tt.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, "n", m.Name)
			require.Equal(t, tt.want, m.Statements)
		})
	}
}

func TestLoadMigrationsOrder(t *testing.T) {
	file := func(name string) *fstest.MapFile {
		return &fstest.MapFile{Data: []byte(fmt.Sprintf("-- name: %s\nSELECT 1;\n", name))}
	}
	ms, err := loadMigrations(fstest.MapFS{"m/0002_b.sql": file("b"), "m/0001_a.sql": file("a"), "m/README": file("x")}, "m")
	require.NoError(t, err)
	require.Len(t, ms, 2)
	require.Equal(t, 1, ms[0].Version)
	require.Equal(t, "a", ms[0].Name)
	require.Equal(t, 2, ms[1].Version)

	for name, fsys := range map[string]fstest.MapFS{
		"a gap":          {"m/0001_a.sql": file("a"), "m/0003_c.sql": file("c")},
		"a repeat":       {"m/0001_a.sql": file("a"), "m/0001_b.sql": file("b")},
		"no number":      {"m/a.sql": file("a")},
		"a short number": {"m/1_a.sql": file("a")},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := loadMigrations(fsys, "m")
			require.Error(t, err)
		})
	}
}

// TestMigrationNames keeps the names that schema_migrations recorded
// before the migrations moved into files: the name of a released
// migration is part of its record.
func TestMigrationNames(t *testing.T) {
	want := []string{
		"initial tables",
		"dashboard rollups and latest device state",
		"simulator ground truth",
		"cohort failure rate view (cohort breaker input)",
		"rollout rollup: distinct devices per firmware, region and hour",
		"rollout wave on status events",
		"cohort failure rate over settled devices (breaker)",
		"ground truth run window",
		"cohort breaker trips on the Wilson lower bound of the settled rate",
	}
	require.GreaterOrEqual(t, len(Migrations), len(want))
	for i, name := range want {
		require.Equal(t, i+1, Migrations[i].Version)
		require.Equal(t, name, Migrations[i].Name)
	}
}
