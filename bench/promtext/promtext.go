// Package promtext reads Prometheus's text exposition format as a
// benchmark needs it: one scrape as a map from series (name and labels, as
// written) to value, and a histogram's buckets out of it for
// quantile.Histogram. It is not a full parser: no timestamps, no escapes
// inside label values beyond what Sentinel's exporters write.
package promtext

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"

	"github.com/sentinel-iot/sentinel/quantile"
)

// Set is one scrape: each sample line's series, e.g.
// `sentinel_ingest_inserted_rows_total{table="telemetry"}`, to its value.
type Set map[string]float64

// Scrape fetches url and parses it.
func Scrape(ctx context.Context, url string) (Set, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("promtext: scrape %s: %w", url, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("promtext: scrape %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("promtext: scrape %s: %s", url, resp.Status)
	}
	s, err := Parse(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("promtext: scrape %s: %w", url, err)
	}
	return s, nil
}

// Parse reads the text format: comments and lines without a value are
// skipped, the value is the last space-separated field.
func Parse(r io.Reader) (Set, error) {
	s := Set{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			s[line[:i]] = v
		}
	}
	return s, sc.Err()
}

// Value is the value of series, 0 when the scrape lacks it.
func (s Set) Value(series string) float64 { return s[series] }

// Buckets returns histogram name's buckets whose other labels are exactly
// labels (e.g. `table="telemetry"`, or empty), as
// `name_bucket{labels,le="bound"}` lines give them, unsorted (see
// quantile.Delta, which sorts).
func (s Set) Buckets(name, labels string) []quantile.Bucket {
	prefix := name + "_bucket{"
	if labels != "" {
		prefix += labels + ","
	}
	prefix += `le="`
	var bs []quantile.Bucket
	for k, v := range s {
		rest, ok := strings.CutPrefix(k, prefix)
		if !ok {
			continue
		}
		le, ok := strings.CutSuffix(rest, `"}`)
		if !ok {
			continue
		}
		bound, err := strconv.ParseFloat(le, 64)
		if err != nil {
			continue
		}
		if math.IsInf(bound, -1) {
			continue
		}
		bs = append(bs, quantile.Bucket{UpperBound: bound, Count: v})
	}
	return bs
}
