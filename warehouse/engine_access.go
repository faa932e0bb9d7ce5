package warehouse

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// EngineLimits are the embedded engine's own ceilings, enforced by the
// engine's settings constraints (a settings profile with min/max), so no
// query, SETTINGS clause or URL setting can lift them: what a server in
// front of the engine (package httpserver) sets per role must stay under
// them. They bound every query of the process, the pipeline's own too.
type EngineLimits struct {
	// MaxQueryMemory is max_memory_usage, each query's memory, as a
	// default and a ceiling no query may raise it past (nor to 0,
	// unlimited). Default: DefaultEngineMaxQueryMemory.
	MaxQueryMemory int64
	// MaxMemory is max_memory_usage_for_user: all queries of the engine
	// together (one engine user runs them all), fixed. Default:
	// DefaultEngineMaxMemory.
	MaxMemory int64
}

// The defaults of a zero EngineLimits, exported so that flags state them
// once. The machine this project sizes for has 24 GiB (issue 20): one
// query may take a third of it, all together half, which leaves the rest
// to the Go heap, the page cache and the broker.
const (
	// DefaultEngineMaxQueryMemory is EngineLimits.MaxQueryMemory's default: 8 GiB.
	DefaultEngineMaxQueryMemory = 8 << 30
	// DefaultEngineMaxMemory is EngineLimits.MaxMemory's default: 12 GiB.
	DefaultEngineMaxMemory = 12 << 30
)

func (l *EngineLimits) ensureDefaults() {
	if l.MaxQueryMemory <= 0 {
		l.MaxQueryMemory = DefaultEngineMaxQueryMemory
	}
	if l.MaxMemory <= 0 {
		l.MaxMemory = DefaultEngineMaxMemory
	}
}

// engineGrants are all the engine's one user may do: Sentinel's schema
// (MergeTree tables, views, materialized views), its reads and writes, and
// SYSTEM STOP/START MERGES for tests. Left out on purpose, so the engine
// refuses them with ACCESS_DENIED whatever the query's spelling: SOURCES
// (the file, url, s3, remote, mysql, ... table functions and the table
// engines of the same names), CREATE DICTIONARY, CREATE DATABASE, CREATE
// FUNCTION, BACKUP, KILL QUERY, the rest of SYSTEM (SYSTEM SHUTDOWN signals
// the whole process group), INTROSPECTION and access management.
const engineGrants = "GRANT SHOW, SELECT, INSERT, ALTER, CREATE TABLE, CREATE VIEW, DROP TABLE, DROP VIEW, TRUNCATE, OPTIMIZE, SYSTEM MERGES, dictGet ON *.*"

// fixedSettings name a file or a URL the engine would read, write or
// fetch; the engine's profile pins them (a "const" constraint), so a
// SETTINGS clause or URL parameter cannot point one at the host.
var fixedSettings = []string{
	"format_schema", "format_schema_source", "format_template_resultset", "format_template_row",
	"output_format_schema", "input_format_record_errors_file_path", "rename_files_after_processing",
	"format_avro_schema_registry_url", "max_memory_usage_for_user",
}

// engineAccessDir is where the embedded engine's configuration lives,
// inside its data directory, rewritten at every open.
const engineAccessDir = "sentinel-engine"

// writeEngineConfig writes the engine's configuration under dir and
// returns the path to pass as --config-file: its one user's grants and
// settings profile (users.xml) and empty user_files and user_scripts
// directories (what relative file() paths and the Executable engine would
// reach). The engine honours these in its local mode; absolute paths in
// file() are not confined by user_files_path there, which is why the
// grants leave SOURCES out.
func writeEngineConfig(dir string, l EngineLimits) (string, error) {
	base := filepath.Join(dir, engineAccessDir)
	for _, d := range []string{"user_files", "user_scripts"} {
		if err := os.MkdirAll(filepath.Join(base, d), 0o700); err != nil {
			return "", fmt.Errorf("warehouse: engine config: %w", err)
		}
	}
	var c strings.Builder
	for _, s := range fixedSettings {
		fmt.Fprintf(&c, "        <%s><const/></%s>\n", s, s)
	}
	users := fmt.Sprintf(`<clickhouse>
  <profiles>
    <default>
      <max_memory_usage>%d</max_memory_usage>
      <max_memory_usage_for_user>%d</max_memory_usage_for_user>
      <constraints>
        <max_memory_usage><min>1</min><max>%d</max></max_memory_usage>
%s      </constraints>
    </default>
  </profiles>
  <users>
    <default>
      <password></password>
      <profile>default</profile>
      <quota>default</quota>
      <grants><query>%s</query></grants>
    </default>
  </users>
  <quotas><default></default></quotas>
</clickhouse>
`, l.MaxQueryMemory, l.MaxMemory, l.MaxQueryMemory, c.String(), engineGrants)
	config := fmt.Sprintf(`<clickhouse>
  <user_files_path>%s/</user_files_path>
  <user_scripts_path>%s/</user_scripts_path>
  <users_config>%s</users_config>
</clickhouse>
`, xmlText(filepath.Join(base, "user_files")), xmlText(filepath.Join(base, "user_scripts")), xmlText(filepath.Join(base, "users.xml")))
	for name, text := range map[string]string{"users.xml": users, "config.xml": config} {
		if err := os.WriteFile(filepath.Join(base, name), []byte(text), 0o600); err != nil {
			return "", fmt.Errorf("warehouse: engine config: %w", err)
		}
	}
	return filepath.Join(base, "config.xml"), nil
}

// xmlText escapes s for an XML text node.
func xmlText(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// EngineLimits returns the embedded engine's ceilings, or false when the
// DB talks to a ClickHouse server (whose own profiles bound it).
func (db *DB) EngineLimits() (EngineLimits, bool) {
	e, ok := db.eng.(*embedded)
	if !ok {
		return EngineLimits{}, false
	}
	return e.limits, true
}
