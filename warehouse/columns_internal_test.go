package warehouse

import (
	"reflect"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestRowBinaryColumnsCoverRows keeps the hand-written RowBinary encoders
// honest: a field added to a row type must be added to its column list (and
// encoder), or the embedded engine would silently store its default.
func TestRowBinaryColumnsCoverRows(t *testing.T) {
	for _, tc := range []struct {
		row     any
		columns string
	}{
		{TelemetryRow{}, telemetryColumns},
		{StatusRow{}, statusColumns},
	} {
		var tags []string
		typ := reflect.TypeOf(tc.row)
		for i := 0; i < typ.NumField(); i++ {
			tags = append(tags, typ.Field(i).Tag.Get("ch"))
		}
		require.Equal(t, strings.Join(tags, ", "), tc.columns, "%s: columns in field order", typ.Name())
	}
}
