package httpserver

import (
	"context"
	"strings"

	"github.com/sentinel-iot/sentinel/warehouse"
)

// astNode is one node of the engine's own parse of a query, as EXPLAIN AST
// prints it: one node a line, indented one space per level, e.g.
// "Function file (children 1)" or "Storage definition (children 1)".
type astNode struct {
	// text is the line without its indent and "(children N)" suffix.
	text     string
	parent   *astNode
	children []*astNode
}

// is reports whether n's text is typ, alone or followed by a name.
func (n *astNode) is(typ string) bool {
	return n.text == typ || strings.HasPrefix(n.text, typ+" ")
}

// function is the name of a Function node ("" for other nodes).
func (n *astNode) function() string {
	if !strings.HasPrefix(n.text, "Function ") {
		return ""
	}
	return strings.Trim(strings.TrimPrefix(n.text, "Function "), "`\"")
}

// parseAST reads EXPLAIN AST's output into a tree under a synthetic root.
func parseAST(out string) *astNode {
	root := &astNode{}
	stack := []*astNode{root} // stack[d] is the last node at depth d-1
	for _, line := range strings.Split(out, "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		depth := len(line) - len(strings.TrimLeft(line, " "))
		text := strings.TrimSpace(line)
		if i := strings.LastIndex(text, " (children "); i >= 0 && strings.HasSuffix(text, ")") {
			text = strings.TrimSpace(text[:i])
		}
		if depth+1 > len(stack) {
			depth = len(stack) - 1
		}
		parent := stack[depth]
		n := &astNode{text: text, parent: parent}
		parent.children = append(parent.children, n)
		stack = append(stack[:depth+1], n)
	}
	return root
}

// deniedFunctions reach the server host's files, processes or network:
// table functions, and the scalar file() and catboostEvaluate() that read
// a path. The engine's grants refuse the table functions already (the
// engine's user has no SOURCES grant, package warehouse); the scalar ones
// it does not check in its local mode, so this list is what stops them.
// Names compare case-insensitively, as the engine resolves them.
var deniedFunctions = map[string]bool{
	"file": true, "filecluster": true, "url": true, "urlcluster": true, "s3": true, "s3cluster": true,
	"gcs": true, "oss": true, "cosn": true, "hdfs": true, "hdfscluster": true, "remote": true, "remotesecure": true,
	"cluster": true, "clusterallreplicas": true, "mysql": true, "postgresql": true, "sqlite": true,
	"mongodb": true, "redis": true, "odbc": true, "jdbc": true, "executable": true, "azureblobstorage": true,
	"azureblobstoragecluster": true, "iceberg": true, "icebergs3": true, "icebergazure": true, "icebergHDFS": true,
	"icebergLocal": true, "deltalake": true, "deltalakelocal": true, "hudi": true, "arrowflight": true, "ytsaurus": true,
	"input": true, "python": true, "catboostevaluate": true, "paimon": true,
}

// allowedEngines are the table engines a CREATE may name: Sentinel's
// schema needs the MergeTree family and views; the rest keep data in the
// engine's own directory or memory. Any other (File, URL, S3, MySQL,
// Executable, Dictionary, Distributed, Kafka, ...) reaches outside.
var allowedEngines = map[string]bool{
	"mergetree": true, "replacingmergetree": true, "summingmergetree": true, "aggregatingmergetree": true,
	"collapsingmergetree": true, "versionedcollapsingmergetree": true, "coalescingmergetree": true,
	"memory": true, "null": true, "log": true, "tinylog": true, "stripelog": true, "set": true, "join": true,
	"buffer": true, "merge": true, "generaterandom": true,
}

func init() {
	// The map literals above are written for reading; compare lower case.
	for name := range deniedFunctions {
		if l := strings.ToLower(name); l != name {
			delete(deniedFunctions, name)
			deniedFunctions[l] = true
		}
	}
}

// confine asks the engine to parse st (EXPLAIN AST: a parse only, nothing
// runs) and refuses what the tree shows reaching the host or lifting a
// limit: a syntax error comes back first, as the engine words it, before
// any question of role. What it refuses, for every user:
//
//   - a function of deniedFunctions, however quoted or cased, at any depth;
//   - a table engine outside allowedEngines in CREATE;
//   - FROM INFILE and INTO OUTFILE (a Literal under the statement itself);
//   - a SETTINGS clause in a subquery, CTE or view, whose settings the
//     engine applies without its constraints (SELECT * FROM (SELECT ...
//     SETTINGS max_memory_usage = 0) ran unbounded in 26.7), and, for a
//     read-only user, any SETTINGS clause (readonly=1, as ClickHouse's).
func (s *Server) confine(ctx context.Context, q *request, st *statement) error {
	text := st.text
	switch {
	case st.kind == kindInsert:
		// The statement up to its data (for VALUES, up to the keyword).
		text = st.text + " FORMAT " + st.format
	case st.format != "" && st.formatEnd <= len(text):
		text = text[:st.formatAt] + " " + text[st.formatEnd:]
	}
	res, err := s.db.RawQuery(ctx, "EXPLAIN AST "+text, "TSVRaw", warehouse.WithParams(q.queryParams()))
	if err != nil {
		return s.engineError(err)
	}
	root := parseAST(string(res.Data))
	if len(root.children) != 1 {
		return newException(codeSyntaxError, "Syntax error: the engine read no single statement in the query")
	}
	top := root.children[0]
	var walk func(n *astNode) error
	walk = func(n *astNode) error {
		if f := n.function(); f != "" && deniedFunctions[strings.ToLower(f)] {
			return newException(codeAccessDenied, q.user+": Not enough privileges: "+f+"() reaches the server host's files, processes or network, and no user of this server may call it")
		}
		// A storage definition's engine is its first child (then PARTITION
		// BY, ORDER BY, ... SETTINGS); with no ENGINE clause the first
		// child may be ORDER BY's expression, refused here when it is a
		// function: the safe side of a false refusal.
		if n.is("Storage definition") && len(n.children) > 0 {
			if e := n.children[0].function(); e != "" && !allowedEngines[strings.ToLower(e)] {
				return newException(codeAccessDenied, q.user+": Not enough privileges: table engine "+e+" keeps its data outside the warehouse, and no user of this server may create one")
			}
		}
		if n.text == "Set" && !settingsAtTop(n, top) {
			return newException(codeSupportIsDisabled, "SETTINGS inside a subquery, CTE or view are not served: the engine applies them unchecked; put SETTINGS at the end of the query")
		}
		if n.text == "Set" && q.readonly && n.parent != nil && !n.parent.is("Storage definition") {
			return newException(codeReadonly, q.user+": Cannot modify settings in readonly mode: a read-only user's query may carry no SETTINGS clause")
		}
		for _, c := range n.children {
			if err := walk(c); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(top); err != nil {
		return err
	}
	if top.is("InsertQuery") || top.is("SelectWithUnionQuery") {
		for _, c := range top.children {
			if c.is("Literal") {
				return newException(codeSupportIsDisabled, "FROM INFILE and INTO OUTFILE are not served over HTTP: the data travels in the request and response bodies")
			}
		}
	}
	return nil
}

// settingsAtTop reports whether the Set node n is a SETTINGS clause the
// engine checks against its constraints: the statement's own (a child of
// the statement, or of its top-level SELECT), or a table's storage
// settings (CREATE TABLE ... SETTINGS, ALTER TABLE ... MODIFY SETTING).
func settingsAtTop(n, top *astNode) bool {
	p := n.parent
	switch {
	case p == top, p.is("Storage definition"), p.is("AlterCommand"):
		return true
	case p.is("SelectQuery") && p.parent != nil && p.parent.is("ExpressionList") && p.parent.parent == top:
		return true
	}
	return false
}
