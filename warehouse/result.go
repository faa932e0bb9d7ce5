package warehouse

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// Column names one column of a result and its ClickHouse type.
type Column struct {
	// Name is the column's name or alias.
	Name string `json:"name"`
	// Type is the ClickHouse type, such as "UInt64" or "LowCardinality(String)".
	Type string `json:"type"`
}

// Result is a whole query result, every value as ClickHouse prints it in
// TabSeparated format. Results are meant for people and small programs:
// counts, rankings, reports, not bulk export.
type Result struct {
	// Columns describes each column.
	Columns []Column
	// Rows holds the values, one slice per row, in column order.
	Rows [][]string
}

// Col returns the index of the column called name, or -1.
func (r *Result) Col(name string) int {
	for i, c := range r.Columns {
		if c.Name == name {
			return i
		}
	}
	return -1
}

// WriteTable prints the result as an aligned text table with a header, a
// rule, and numbers right-aligned, ending with a row count.
func (r *Result) WriteTable(w io.Writer) error {
	width := make([]int, len(r.Columns))
	numeric := make([]bool, len(r.Columns))
	for i, c := range r.Columns {
		width[i] = utf8.RuneCountInString(c.Name)
		numeric[i] = isNumericType(c.Type)
	}
	for _, row := range r.Rows {
		for i, v := range row {
			if i < len(width) {
				width[i] = max(width[i], utf8.RuneCountInString(v))
			}
		}
	}
	var b strings.Builder
	line := func(vals []string, header bool) {
		for i, v := range vals {
			if i >= len(width) {
				break
			}
			if i > 0 {
				b.WriteString("  ")
			}
			pad := strings.Repeat(" ", width[i]-utf8.RuneCountInString(v))
			if numeric[i] && !header {
				b.WriteString(pad + v)
			} else if i == len(vals)-1 {
				b.WriteString(v)
			} else {
				b.WriteString(v + pad)
			}
		}
		b.WriteString("\n")
	}
	names := make([]string, len(r.Columns))
	rules := make([]string, len(r.Columns))
	for i, c := range r.Columns {
		names[i] = c.Name
		rules[i] = strings.Repeat("-", width[i])
	}
	line(names, true)
	line(rules, true)
	for _, row := range r.Rows {
		line(row, false)
	}
	fmt.Fprintf(&b, "(%d rows)\n", len(r.Rows))
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteDelimited writes the result as CSV with a header row, its fields
// separated by comma (',' for CSV, '\t' for TSV), quoted as encoding/csv
// quotes them: for spreadsheets and scripts.
func (r *Result) WriteDelimited(w io.Writer, comma rune) error {
	cw := csv.NewWriter(w)
	cw.Comma = comma
	head := make([]string, len(r.Columns))
	for i, c := range r.Columns {
		head[i] = c.Name
	}
	if err := cw.Write(head); err != nil {
		return err
	}
	if err := cw.WriteAll(r.Rows); err != nil {
		return err
	}
	return cw.Error()
}

// WriteJSON writes the result as an indented JSON array of one object per
// row, keyed by column, every value a string as ClickHouse prints it.
func (r *Result) WriteJSON(w io.Writer) error {
	rows := make([]map[string]string, len(r.Rows))
	for i, row := range r.Rows {
		rows[i] = make(map[string]string, len(row))
		for j, v := range row {
			rows[i][r.Columns[j].Name] = v
		}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rows)
}

func isNumericType(t string) bool {
	t = strings.TrimPrefix(t, "Nullable(")
	for _, p := range []string{"Int", "UInt", "Float", "Decimal"} {
		if strings.HasPrefix(t, p) {
			return true
		}
	}
	return false
}
