package report

import "html/template"

// page is the report's HTML: inline CSS, inline SVG, nothing fetched.
var page = template.Must(template.New("report").Funcs(template.FuncMap{
	"since": func(r *Report) string {
		if r.Filter.Since.IsZero() {
			return "the beginning"
		}
		return r.Filter.Since.Format("2006-01-02 15:04 MST")
	},
}).Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Sentinel rollout report</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; color: #222; }
h1 { margin-bottom: 0; }
.meta { color: #666; margin-top: .25rem; }
section { margin: 2.5rem 0; }
.why { color: #444; white-space: pre-line; font-size: .9rem; }
.chart svg { max-width: 100%; height: auto; border: 1px solid #eee; }
table { border-collapse: collapse; font-size: .85rem; margin-top: .75rem; }
th, td { border-bottom: 1px solid #ddd; padding: .2rem .6rem; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.note { color: #a33; }
details summary { cursor: pointer; color: #555; }
</style>
</head>
<body>
<h1>Sentinel rollout report</h1>
<p class="meta">Generated {{.Generated.Format "2006-01-02 15:04 MST"}} from events since {{since .}}{{with .Filter.Firmware}}, firmware {{.}}{{end}}{{with .Filter.Region}}, region {{.}}{{end}}.</p>
{{range .Sections}}
<section>
<h2>{{.Title}}</h2>
<p class="why">{{.Why}}</p>
{{if .SVG}}<div class="chart">{{.SVG}}</div>{{else}}<p class="note">{{.Note}}</p>{{end}}
{{with .Table}}{{if .Rows}}
<details><summary>{{len .Rows}} rows</summary>
<table>
<tr>{{range .Columns}}<th>{{.Name}}</th>{{end}}</tr>
{{range .Rows}}<tr>{{range .}}<td>{{.}}</td>{{end}}</tr>
{{end}}</table>
</details>
{{end}}{{end}}
</section>
{{end}}
</body>
</html>
`))
