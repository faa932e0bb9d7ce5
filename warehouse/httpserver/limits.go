package httpserver

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync"
	"time"
)

// ErrBadLimits means a role's limits do not fit the server's or the
// engine's.
var ErrBadLimits = errors.New("httpserver: bad limits")

// RoleLimits bound each query of one role's users. The engine enforces
// each as the setting named; the server sets it on every query after the
// client's own URL settings, and refuses a URL setting that asks for more
// (or for 0, unlimited) with SETTING_CONSTRAINT_VIOLATION, except
// max_execution_time, which clients send on their own and which only ever
// lowers the bound. A read-only
// user's query carries no SETTINGS clause (readonly=1); a read-write
// user's top-level SETTINGS clause may raise its query's memory as far as
// the engine's own ceiling (warehouse.EngineLimits), never past it.
type RoleLimits struct {
	// MaxQueryMemory is max_memory_usage: what one query may allocate
	// before the engine stops it (MEMORY_LIMIT_EXCEEDED, code 241). The
	// engine runs one query at a time, so it is also what one user may
	// hold. Default: DefaultReadOnlyLimits's or DefaultReadWriteLimits's,
	// capped at the engine's ceiling.
	MaxQueryMemory int64
	// MaxResultRows is max_result_rows (TOO_MANY_ROWS_OR_BYTES, code 396).
	MaxResultRows int64
	// MaxResultBytes is max_result_bytes (code 396); results are built in
	// memory before they are sent.
	MaxResultBytes int64
	// MaxExecutionTime is max_execution_time (TIMEOUT_EXCEEDED, code
	// 159); a client may ask for less. At most Config.QueryTimeout.
	MaxExecutionTime time.Duration
	// MaxConcurrentQueries caps one user's queries running or waiting for
	// the engine; more are refused (TOO_MANY_SIMULTANEOUS_QUERIES, 202).
	MaxConcurrentQueries int
}

// The roles' default limits. An analyst's query gets a quarter of a
// service's memory, so a heavy dashboard query is stopped long before the
// engine's total (warehouse.DefaultEngineMaxMemory) and the ingest path's
// inserts, which need a few MiB each, always find room.
var (
	// DefaultReadOnlyLimits are RoleReadOnly's defaults.
	DefaultReadOnlyLimits = RoleLimits{
		MaxQueryMemory: 2 << 30, MaxResultRows: 10_000_000, MaxResultBytes: 128 << 20,
		MaxExecutionTime: 30 * time.Second, MaxConcurrentQueries: 2,
	}
	// DefaultReadWriteLimits are RoleReadWrite's defaults.
	DefaultReadWriteLimits = RoleLimits{
		MaxQueryMemory: 8 << 30, MaxResultRows: 100_000_000, MaxResultBytes: 256 << 20,
		MaxExecutionTime: DefaultQueryTimeout, MaxConcurrentQueries: DefaultMaxConcurrentQueries,
	}
)

// ensureDefaults fills l's zero fields from def, then caps memory at the
// engine's ceiling and time at the server's.
func (l *RoleLimits) ensureDefaults(def RoleLimits, engineMemory int64, timeout time.Duration) {
	if l.MaxQueryMemory <= 0 {
		l.MaxQueryMemory = min(def.MaxQueryMemory, engineMemory)
	}
	if l.MaxResultRows <= 0 {
		l.MaxResultRows = def.MaxResultRows
	}
	if l.MaxResultBytes <= 0 {
		l.MaxResultBytes = def.MaxResultBytes
	}
	if l.MaxExecutionTime <= 0 {
		l.MaxExecutionTime = min(def.MaxExecutionTime, timeout)
	}
	if l.MaxConcurrentQueries <= 0 {
		l.MaxConcurrentQueries = def.MaxConcurrentQueries
	}
}

// validate checks l fits the engine and the server.
func (l RoleLimits) validate(role Role, engineMemory int64, timeout time.Duration) error {
	if l.MaxQueryMemory > engineMemory {
		return fmt.Errorf("%w: %s MaxQueryMemory %d is over the engine's ceiling %d (warehouse.EngineLimits.MaxQueryMemory)", ErrBadLimits, role, l.MaxQueryMemory, engineMemory)
	}
	if l.MaxExecutionTime > timeout {
		return fmt.Errorf("%w: %s MaxExecutionTime %s is over the server's QueryTimeout %s", ErrBadLimits, role, l.MaxExecutionTime, timeout)
	}
	return nil
}

// bounded are the settings RoleLimits set, by URL parameter name: a client
// may lower them, never raise them or set 0.
func (l RoleLimits) bounded() map[string]int64 {
	return map[string]int64{
		"max_memory_usage": l.MaxQueryMemory, "max_result_rows": l.MaxResultRows,
		"max_result_bytes": l.MaxResultBytes, "max_execution_time": int64(math.Ceil(l.MaxExecutionTime.Seconds())),
	}
}

// settings are the SETTINGS the server gives a query of this role: the
// role's bounds, or the client's lower values from the URL. A URL value
// over the bound, or 0, is refused.
func (l RoleLimits) settings(role Role, params map[string][]string, read bool) ([]string, error) {
	var out []string
	for _, name := range []string{"max_memory_usage", "max_execution_time", "max_result_rows", "max_result_bytes"} {
		if !read && (name == "max_result_rows" || name == "max_result_bytes") {
			continue
		}
		limit := l.bounded()[name]
		v := limit
		if vals := params[name]; len(vals) > 0 && vals[0] != "" {
			n, err := strconv.ParseFloat(vals[0], 64)
			if err != nil || n < 0 {
				return nil, newException(codeCannotParseNumber, fmt.Sprintf("Cannot parse URL setting %s=%q as a number", name, vals[0]))
			}
			if name == "max_execution_time" {
				// Clients send their own (clickhouse-go: its read timeout);
				// as before, it lowers the bound and never raises it.
				if n > 0 && n < float64(limit) {
					v = int64(math.Ceil(n))
				}
				out = append(out, fmt.Sprintf("%s=%d", name, v))
				continue
			}
			if n == 0 || n > float64(limit) {
				return nil, newException(codeSettingConstraintViolation, fmt.Sprintf("Setting %s shouldn't be %s for a %s user: this server's limit is %d (0 is unlimited, which no user may ask for)", name, vals[0], role, limit))
			}
			v = int64(math.Ceil(n))
		}
		out = append(out, fmt.Sprintf("%s=%d", name, v))
	}
	return out, nil
}

// userSlots counts each user's queries running or waiting.
type userSlots struct {
	mu sync.Mutex
	n  map[string]int
}

// acquire takes one of user's limit slots, or reports false.
func (u *userSlots) acquire(user string, limit int) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.n[user] >= limit {
		return false
	}
	if u.n == nil {
		u.n = map[string]int{}
	}
	u.n[user]++
	return true
}

func (u *userSlots) release(user string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.n[user]--; u.n[user] <= 0 {
		delete(u.n, user)
	}
}
