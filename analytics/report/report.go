// Package report renders the analytics library as one self-contained HTML
// page: charts drawn server-side as inline SVG (go-chart), the numbers
// beside them, no scripts and no network fetches, so the file can be mailed,
// archived or opened on an air-gapped laptop.
package report

import (
	"bytes"
	"context"
	"fmt"
	"html/template"
	"io"
	"math"
	"sort"
	"strconv"
	"time"

	chart "github.com/wcharczuk/go-chart/v2"
	"github.com/wcharczuk/go-chart/v2/drawing"

	"github.com/sentinel-iot/sentinel/analytics"
	"github.com/sentinel-iot/sentinel/warehouse"
)

// Section is one chart with the table it was drawn from.
type Section struct {
	// Title heads the section.
	Title string
	// Why says how to read it.
	Why string
	// SVG is the chart, or empty when there was nothing to draw.
	SVG template.HTML
	// Note replaces the chart when there was nothing to draw.
	Note string
	// Table is the query result behind the chart.
	Table *warehouse.Result
}

// Report is what the page shows.
type Report struct {
	// Generated is when the report was made.
	Generated time.Time
	// Filter narrowed every query.
	Filter analytics.Filter
	// Sections are the charts, in page order.
	Sections []Section
}

// Build runs the queries behind the charts against db and draws them.
func Build(ctx context.Context, db *warehouse.DB, f analytics.Filter) (*Report, error) {
	r := &Report{Generated: time.Now().UTC(), Filter: f}
	for _, s := range []struct {
		query string
		draw  func(*warehouse.Result) (string, error)
	}{
		{"regional_ranking", drawRanking},
		{"moving_failure_rate", drawFailureRate},
		{"rollout_funnel", drawFunnel},
		{"retry_success_by_attempt", drawRecovery},
		{"time_to_recover", drawRecoveryTime},
	} {
		q, err := analytics.Get(s.query)
		if err != nil {
			return nil, err
		}
		res, err := analytics.Run(ctx, db, s.query, f)
		if err != nil {
			return nil, fmt.Errorf("report: %w", err)
		}
		sec := Section{Title: q.Title, Why: q.Doc, Table: res}
		if len(res.Rows) == 0 {
			sec.Note = "No data in this window."
		} else if svg, err := s.draw(res); err != nil {
			sec.Note = "Chart not drawn: " + err.Error()
		} else {
			sec.SVG = template.HTML(svg) // go-chart's own SVG output, values from our warehouse
		}
		r.Sections = append(r.Sections, sec)
	}
	return r, nil
}

// WriteHTML writes the report as one HTML document.
func (r *Report) WriteHTML(w io.Writer) error {
	return page.Execute(w, r)
}

var palette = []drawing.Color{
	{R: 0x1f, G: 0x77, B: 0xb4, A: 255}, {R: 0xd6, G: 0x27, B: 0x28, A: 255}, {R: 0x2c, G: 0xa0, B: 0x2c, A: 255},
	{R: 0xff, G: 0x7f, B: 0x0e, A: 255}, {R: 0x94, G: 0x67, B: 0xbd, A: 255}, {R: 0x8c, G: 0x56, B: 0x4b, A: 255},
}

// column returns the values of the named column, parsed as floats (NULL
// and unparsable values as NaN).
func column(res *warehouse.Result, name string) []float64 {
	i := res.Col(name)
	out := make([]float64, len(res.Rows))
	for j, row := range res.Rows {
		v, err := strconv.ParseFloat(row[i], 64)
		if i < 0 || err != nil {
			v = math.NaN()
		}
		out[j] = v
	}
	return out
}

func text(res *warehouse.Result, name string) []string {
	i := res.Col(name)
	out := make([]string, len(res.Rows))
	for j, row := range res.Rows {
		if i >= 0 {
			out[j] = row[i]
		}
	}
	return out
}

// bars draws one bar per value, coloured per group.
func bars(title string, labels []string, values []float64, groups []string) (string, error) {
	colorOf := map[string]drawing.Color{}
	var vals []chart.Value
	for i := range labels {
		if math.IsNaN(values[i]) {
			continue
		}
		c, ok := colorOf[groups[i]]
		if !ok {
			c = palette[len(colorOf)%len(palette)]
			colorOf[groups[i]] = c
		}
		vals = append(vals, chart.Value{Label: labels[i], Value: values[i],
			Style: chart.Style{FillColor: c, StrokeColor: c}})
	}
	if len(vals) == 0 {
		return "", fmt.Errorf("no values")
	}
	// go-chart needs a non-empty range: anchor bars at zero.
	bc := chart.BarChart{
		Title: title, Width: max(640, 70*len(vals)), Height: 360, BarWidth: 40,
		Background:   chart.Style{Padding: chart.Box{Top: 40, Left: 10, Right: 10, Bottom: 60}},
		UseBaseValue: true, BaseValue: 0,
		YAxis: chart.YAxis{Range: &chart.ContinuousRange{Min: 0, Max: maxOf(values) * 1.1}},
		Bars:  vals,
	}
	var b bytes.Buffer
	if err := bc.Render(chart.SVG, &b); err != nil {
		return "", err
	}
	return b.String(), nil
}

func maxOf(xs []float64) float64 {
	m := 0.0
	for _, x := range xs {
		if !math.IsNaN(x) && x > m {
			m = x
		}
	}
	if m == 0 {
		return 1
	}
	return m
}

func drawRanking(res *warehouse.Result) (string, error) {
	fw, region := text(res, "firmware"), text(res, "region")
	labels := make([]string, len(fw))
	for i := range fw {
		labels[i] = region[i] + " " + fw[i]
	}
	return bars("Partial-failure rate by region (colour: target firmware)", labels, column(res, "partial_rate"), fw)
}

func drawFunnel(res *warehouse.Result) (string, error) {
	fw, wave, stage := text(res, "firmware"), text(res, "wave"), text(res, "stage")
	labels, groups := make([]string, len(fw)), make([]string, len(fw))
	for i := range fw {
		labels[i] = fw[i] + " w" + wave[i] + " " + stage[i]
		groups[i] = fw[i] + " w" + wave[i]
	}
	return bars("Devices reaching each OTA stage, per firmware and wave (share of started)", labels, column(res, "share_of_started"), groups)
}

func drawRecovery(res *warehouse.Result) (string, error) {
	kind, attempt := text(res, "kind"), text(res, "attempt_no")
	var labels, groups []string
	var values []float64
	for i, a := range attempt {
		for _, c := range []string{"succeeded", "failed", "refused", "no_result"} {
			labels = append(labels, kind[i]+" #"+a+" "+c)
			values = append(values, column(res, c)[i])
			groups = append(groups, c)
		}
	}
	return bars("Retry outcomes by kind (download, flash) and attempt number", labels, values, groups)
}

func drawRecoveryTime(res *warehouse.Result) (string, error) {
	region := text(res, "region")
	return bars("Median seconds from first failure to recovery, by region", region, column(res, "p50_s"), make([]string, len(region)))
}

func drawFailureRate(res *warehouse.Result) (string, error) {
	fw, minute, rate := text(res, "firmware"), text(res, "minute"), column(res, "moving_rate_5m")
	type pts struct {
		x []time.Time
		y []float64
	}
	series := map[string]*pts{}
	for i := range fw {
		t, err := time.Parse(time.DateTime, minute[i])
		if err != nil {
			return "", fmt.Errorf("minute %q: %w", minute[i], err)
		}
		p := series[fw[i]]
		if p == nil {
			p = &pts{}
			series[fw[i]] = p
		}
		p.x, p.y = append(p.x, t), append(p.y, rate[i])
	}
	names := make([]string, 0, len(series))
	for n := range series {
		names = append(names, n)
	}
	sort.Strings(names)
	g := chart.Chart{
		Title: "Failure rate over time, 5-minute moving, per firmware", Width: 960, Height: 360,
		Background: chart.Style{Padding: chart.Box{Top: 40, Left: 10, Right: 10, Bottom: 10}},
		XAxis:      chart.XAxis{ValueFormatter: chart.TimeMinuteValueFormatter},
		YAxis:      chart.YAxis{Range: &chart.ContinuousRange{Min: 0, Max: maxOf(rate) * 1.1}},
	}
	for i, n := range names {
		p := series[n]
		if len(p.x) == 1 { // a line needs two points
			p.x, p.y = append(p.x, p.x[0].Add(time.Minute)), append(p.y, p.y[0])
		}
		c := palette[i%len(palette)]
		g.Series = append(g.Series, chart.TimeSeries{Name: "firmware " + n, XValues: p.x, YValues: p.y,
			Style: chart.Style{StrokeColor: c, StrokeWidth: 2}})
	}
	g.Elements = []chart.Renderable{chart.Legend(&g)}
	var b bytes.Buffer
	if err := g.Render(chart.SVG, &b); err != nil {
		return "", err
	}
	return b.String(), nil
}
