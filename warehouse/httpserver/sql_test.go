package httpserver

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseStatement(t *testing.T) {
	tests := []struct {
		name     string
		query    string
		kind     kind
		text     string
		format   string
		head     string
		settings string
		data     string // the query text from the data offset on
		code     int
	}{
		{name: "select", query: "SELECT 1", kind: kindRead, text: "SELECT 1"},
		{name: "select with format", query: "SELECT a FROM t FORMAT JSONEachRow", kind: kindRead, text: "SELECT a FROM t FORMAT JSONEachRow", format: "JSONEachRow"},
		{name: "format inside a subquery is not the output", query: "SELECT * FROM (SELECT 1) FORMAT CSV", kind: kindRead, format: "CSV", text: "SELECT * FROM (SELECT 1) FORMAT CSV"},
		{name: "format word in a string", query: "SELECT 'FORMAT CSV'", kind: kindRead, text: "SELECT 'FORMAT CSV'"},
		{name: "trailing semicolon", query: "SELECT 1 ;  \n", kind: kindRead, text: "SELECT 1"},
		{name: "comments", query: "/* c */ SELECT 1 -- x; DROP\n", kind: kindRead, text: "/* c */ SELECT 1 -- x; DROP"},
		{name: "with", query: "WITH x AS (SELECT 1) SELECT * FROM x", kind: kindRead, text: "WITH x AS (SELECT 1) SELECT * FROM x"},
		{name: "parenthesized", query: "(SELECT 1) UNION ALL (SELECT 2)", kind: kindRead, text: "(SELECT 1) UNION ALL (SELECT 2)"},
		{name: "show, describe, exists, explain", query: "DESCRIBE TABLE t", kind: kindRead, text: "DESCRIBE TABLE t"},
		{name: "ddl", query: "CREATE TABLE t (a UInt8) ENGINE = MergeTree ORDER BY a SETTINGS index_granularity = 8192", kind: kindWrite,
			text: "CREATE TABLE t (a UInt8) ENGINE = MergeTree ORDER BY a SETTINGS index_granularity = 8192"},
		{name: "insert format", query: "INSERT INTO t FORMAT Native", kind: kindInsert, text: "INSERT INTO t ", format: "Native", head: "INSERT INTO t", data: ""},
		{name: "insert with columns, settings and inline data", query: "INSERT INTO db.t (a, b) SETTINGS x = 1 FORMAT CSV  \n1,2\n", kind: kindInsert,
			text: "INSERT INTO db.t (a, b) SETTINGS x = 1 ", format: "CSV", head: "INSERT INTO db.t (a, b)", settings: "x = 1", data: "1,2\n"},
		{name: "insert values", query: "INSERT INTO t VALUES (1, 'a;b')", kind: kindInsert, text: "INSERT INTO t ", format: "Values", head: "INSERT INTO t", data: " (1, 'a;b')"},
		{name: "insert binary data is not lexed", query: "INSERT INTO t FORMAT RowBinary\n\x00'\x01;\"", kind: kindInsert, text: "INSERT INTO t ", format: "RowBinary", head: "INSERT INTO t", data: "\x00'\x01;\""},
		{name: "insert select", query: "INSERT INTO t SELECT * FROM u", kind: kindInsertSelect, text: "INSERT INTO t SELECT * FROM u"},
		{name: "insert without data format", query: "INSERT INTO t", code: codeSyntaxError},
		{name: "empty", query: " -- nothing\n", code: codeSyntaxError},
		{name: "multi-statement", query: "SELECT 1; DROP TABLE t", code: codeSyntaxError},
		{name: "unterminated string", query: "SELECT 'x", code: codeSyntaxError},
		{name: "set", query: "SET readonly = 0", code: codeSupportIsDisabled},
		{name: "use", query: "use other", code: codeSupportIsDisabled},
		{name: "a column named file is fine", query: "SELECT file FROM t", kind: kindRead, text: "SELECT file FROM t"},
		{name: "into outfile", query: "SELECT 1 INTO OUTFILE 'x'", code: codeSupportIsDisabled},
		{name: "from infile", query: "INSERT INTO t FROM INFILE 'x' FORMAT CSV", code: codeSupportIsDisabled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, err := parseStatement(tt.query)
			if tt.code != 0 {
				var ex *Exception
				require.ErrorAs(t, err, &ex)
				require.Equal(t, tt.code, ex.Code, ex.Message)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.kind, st.kind)
			require.Equal(t, tt.text, st.text)
			require.Equal(t, tt.format, st.format)
			if tt.kind == kindInsert {
				require.Equal(t, tt.head, st.head)
				require.Equal(t, tt.settings, st.settings)
				require.Equal(t, tt.data, tt.query[st.data:])
			}
		})
	}
}

func TestHelloBlock(t *testing.T) {
	b := helloBlock("vm", "26.7.2.1", "UTC", false)
	require.Equal(t, []byte("\x04\x01\x0ddisplayName()\x06String\x02vm\x09version()\x06String\x0826.7.2.1\x0arevision()\x06UInt32\x00\x00\x00\x00\x0atimezone()\x06String\x03UTC"), b)
	withInfo := helloBlock("vm", "26.7.2.1", "UTC", true)
	require.Equal(t, []byte("\x01\x00\x02\xff\xff\xff\xff\x00"), withInfo[:8], "block info")
	require.Len(t, withInfo, len(b)+8+4, "block info and one custom-serialization byte per column")
}

// FuzzParseStatement checks the lexer never panics or loops, and that an
// INSERT's data offset stays inside the query.
func FuzzParseStatement(f *testing.F) {
	for _, s := range []string{"SELECT 1", "INSERT INTO t FORMAT CSV\n1,2", "INSERT INTO t VALUES (1)", "SELECT 'a''b' -- c", "/* x", "`a", "SELECT file(", "(((", ")))", "SELECT 1;;", "INSERT INTO t SETTINGS a=1 FORMAT"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, q string) {
		st, err := parseStatement(q)
		if err != nil {
			var ex *Exception
			require.ErrorAs(t, err, &ex)
			return
		}
		if st.kind == kindInsert {
			require.True(t, st.data >= 0 && st.data <= len(q))
			require.NotEmpty(t, st.format)
		}
	})
}
