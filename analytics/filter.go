package analytics

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/sentinel-iot/sentinel/cohortstat"
)

// ErrBadFilter means a filter value cannot be used; the message says which.
var ErrBadFilter = errors.New("analytics: bad filter")

// Filter narrows every query in the library the same way. The zero Filter
// means everything. Values reach the engine as query parameters
// ({since:DateTime64(3, 'UTC')}, {firmware:String}, ...), never as SQL text.
type Filter struct {
	// Since and Until bound event time, [Since, Until). Zero means unbounded.
	Since, Until time.Time
	// Firmware keeps only events of rollouts to this target version; "" keeps all.
	Firmware string
	// Region keeps only this region; "" keeps all.
	Region string
	// Top bounds per-group lists such as the top problem devices. Zero
	// means DefaultTop.
	Top int
	// MinSample and Threshold are the parameters of the warehouse view
	// cohort_failure_rate (migration 9's Wilson rule, the recoverer's
	// --breaker-rule wilson): the fewest settled devices a cohort needs,
	// and the failure share the lower bound of the one-sided 95 % Wilson
	// interval must reach. The library's cohort_failure_rate query shows
	// the verdict the recoverer logged, whatever its rule; the view's
	// Wilson columns are there to select directly. Zero means
	// DefaultMinSample and DefaultThreshold.
	MinSample int
	Threshold float64
}

// The defaults of a zero Filter, exported so that flags state them once.
// The breaker's are the recoverer's Wilson rule's (cohortstat).
const (
	// DefaultTop is Filter.Top's default.
	DefaultTop = 5
	// DefaultMinSample is Filter.MinSample's default: cohortstat's
	// DefaultRawMinSample, migration 9's min_sample.
	DefaultMinSample = cohortstat.DefaultRawMinSample
	// DefaultThreshold is Filter.Threshold's default: cohortstat's
	// DefaultWilsonThreshold, the recoverer's DefaultBreakerThreshold.
	DefaultThreshold = cohortstat.DefaultWilsonThreshold
)

// Bounds used when a time bound is not given: wide enough for any fleet,
// inside DateTime64(3)'s range.
var (
	minTime = time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)
	maxTime = time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC)
)

// Params returns the query parameters every library query declares.
func (f Filter) Params() (map[string]string, error) {
	since, until := f.Since, f.Until
	if since.IsZero() {
		since = minTime
	}
	if until.IsZero() {
		until = maxTime
	}
	if !until.After(since) {
		return nil, fmt.Errorf("%w: until (%s) must be after since (%s)", ErrBadFilter, until.Format(time.RFC3339), since.Format(time.RFC3339))
	}
	if since.Before(minTime) || until.After(maxTime) {
		return nil, fmt.Errorf("%w: time range %s..%s outside %d..%d", ErrBadFilter, since.Format(time.RFC3339), until.Format(time.RFC3339), minTime.Year(), maxTime.Year())
	}
	for name, v := range map[string]string{"firmware": f.Firmware, "region": f.Region} {
		if len(v) > 64 || strings.ContainsAny(v, "\x00\n\r\t") {
			return nil, fmt.Errorf("%w: %s %.20q: at most 64 printable characters", ErrBadFilter, name, v)
		}
	}
	top := f.Top
	if top == 0 {
		top = DefaultTop
	}
	if top < 0 || top > 10000 {
		return nil, fmt.Errorf("%w: top %d not in 1..10000", ErrBadFilter, top)
	}
	minSample := f.MinSample
	if minSample == 0 {
		minSample = DefaultMinSample
	}
	if minSample < 0 {
		return nil, fmt.Errorf("%w: min sample %d is negative", ErrBadFilter, minSample)
	}
	threshold := f.Threshold
	if threshold == 0 {
		threshold = DefaultThreshold
	}
	if !(threshold > 0 && threshold <= 1) {
		return nil, fmt.Errorf("%w: threshold %g not in (0, 1]", ErrBadFilter, threshold)
	}
	const layout = "2006-01-02 15:04:05.000"
	return map[string]string{
		"since":      since.UTC().Format(layout),
		"until":      until.UTC().Format(layout),
		"firmware":   f.Firmware,
		"region":     f.Region,
		"top":        strconv.Itoa(top),
		"min_sample": strconv.Itoa(minSample),
		"threshold":  strconv.FormatFloat(threshold, 'f', -1, 64),
	}, nil
}

// ParseTime reads a filter time: RFC 3339 ("2026-11-27T08:00:00Z"), a date
// ("2026-11-27", midnight UTC), "2006-01-02 15:04:05" in UTC, or a duration
// before now ("24h", "90m"). The error says which forms are accepted.
func ParseTime(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02 15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return now.Add(-d).UTC(), nil
	}
	return time.Time{}, fmt.Errorf("%w: time %q: want RFC 3339 (2026-11-27T08:00:00Z), a date (2026-11-27), or a duration ago (24h)", ErrBadFilter, s)
}
