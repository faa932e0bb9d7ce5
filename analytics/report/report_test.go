package report_test

import (
	"bytes"
	"context"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sentinel-iot/sentinel/analytics"
	"github.com/sentinel-iot/sentinel/analytics/internal/fixture"
	"github.com/sentinel-iot/sentinel/analytics/report"
	"github.com/sentinel-iot/sentinel/warehouse"
	"github.com/sentinel-iot/sentinel/warehouse/warehousetest"
)

func TestHTMLReport(t *testing.T) {
	ctx := context.Background()
	db := warehousetest.Open(t)
	events, decisions := fixture.Fleet()
	require.NoError(t, warehouse.Insert(ctx, db, warehouse.TableStatusEvents, fixture.StatusRows(events)))
	drows, crows := fixture.DecisionRows(decisions)
	require.NoError(t, warehouse.Insert(ctx, db, warehouse.TableDecisions, drows))
	require.NoError(t, warehouse.Insert(ctx, db, warehouse.TableCommands, crows))

	r, err := report.Build(ctx, db, analytics.Filter{})
	require.NoError(t, err)
	var b bytes.Buffer
	require.NoError(t, r.WriteHTML(&b))
	html := b.String()

	// Every section has its chart, drawn as inline SVG.
	require.Len(t, r.Sections, 5)
	for _, s := range r.Sections {
		require.NotEmpty(t, s.SVG, "section %q: %s", s.Title, s.Note)
	}
	require.Equal(t, 5, strings.Count(html, "<svg"))
	// Self-contained: nothing fetched, nothing run.
	require.NotContains(t, html, "<script")
	require.NotRegexp(t, regexp.MustCompile(`(?i)(src|href)\s*=\s*["']?(https?:)?//`), html)
	require.NotRegexp(t, regexp.MustCompile(`(?i)url\(\s*["']?(https?:)?//`), html)
	// The numbers are there too.
	require.Contains(t, html, "ap-south")

	// An empty window still renders, saying so.
	empty, err := report.Build(ctx, db, analytics.Filter{Region: "nowhere"})
	require.NoError(t, err)
	require.NoError(t, empty.WriteHTML(&bytes.Buffer{}))
	require.Equal(t, "No data in this window.", empty.Sections[0].Note)

	screenshot(t, html)
}

// screenshot renders the page in Debian's headless Chromium and checks the
// picture: not blank, and the charts' colours are on it.
func screenshot(t *testing.T, html string) {
	bin, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("chromium is required in CI (apt-get install chromium)")
		}
		t.Skip("chromium not installed (apt-get install chromium); the page checks above still ran")
	}
	dir := t.TempDir()
	page := filepath.Join(dir, "report.html")
	require.NoError(t, os.WriteFile(page, []byte(html), 0o644))
	shot := filepath.Join(dir, "report.png")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
		"--user-data-dir="+filepath.Join(dir, "profile"), "--window-size=1200,4000", "--screenshot="+shot, "file://"+page)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "chromium: %s", out)
	f, err := os.Open(shot)
	require.NoError(t, err)
	defer f.Close()
	img, err := png.Decode(f)
	require.NoError(t, err)
	if dst := os.Getenv("SENTINEL_REPORT_SCREENSHOT"); dst != "" {
		data, _ := os.ReadFile(shot)
		require.NoError(t, os.WriteFile(dst, data, 0o644))
	}
	var ink, chartBlue int
	bounds := img.Bounds()
	for y := bounds.Min.Y; y < bounds.Max.Y; y += 2 {
		for x := bounds.Min.X; x < bounds.Max.X; x += 2 {
			r, g, b, _ := img.At(x, y).RGBA()
			r, g, b = r>>8, g>>8, b>>8
			if r < 240 || g < 240 || b < 240 {
				ink++
			}
			if near(r, 0x1f) && near(g, 0x77) && near(b, 0xb4) {
				chartBlue++
			}
		}
	}
	total := (bounds.Dx() / 2) * (bounds.Dy() / 2)
	require.Greater(t, ink, total/50, "the page is nearly blank")
	require.Greater(t, chartBlue, 500, "no chart bars on the screenshot")
}

func near(v, want uint32) bool { return v+12 >= want && v <= want+12 }
