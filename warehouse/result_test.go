package warehouse_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sentinel-iot/sentinel/warehouse"
)

// TestResultFormats holds the machine-readable forms `sentinel sql` and
// `sentinel report` print: a header row, quoting where a value needs it,
// and values as ClickHouse printed them.
func TestResultFormats(t *testing.T) {
	res := &warehouse.Result{
		Columns: []warehouse.Column{{Name: "region", Type: "String"}, {Name: "n", Type: "UInt64"}},
		Rows:    [][]string{{"eu-west", "12"}, {"a,b \"c\"", "3"}},
	}
	tests := []struct {
		name  string
		write func(*strings.Builder) error
		want  string
	}{
		{"csv", func(b *strings.Builder) error { return res.WriteDelimited(b, ',') },
			"region,n\neu-west,12\n\"a,b \"\"c\"\"\",3\n"},
		{"tsv", func(b *strings.Builder) error { return res.WriteDelimited(b, '\t') },
			"region\tn\neu-west\t12\n\"a,b \"\"c\"\"\"\t3\n"},
		{"json", func(b *strings.Builder) error { return res.WriteJSON(b) },
			"[\n  {\n    \"n\": \"12\",\n    \"region\": \"eu-west\"\n  },\n  {\n    \"n\": \"3\",\n    \"region\": \"a,b \\\"c\\\"\"\n  }\n]\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b strings.Builder
			require.NoError(t, tt.write(&b))
			require.Equal(t, tt.want, b.String())
		})
	}
}
