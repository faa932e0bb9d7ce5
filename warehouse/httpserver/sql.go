package httpserver

import (
	"strings"
)

// kind is what a statement does, which decides who may run it and how
// settings reach it.
type kind int

const (
	// kindRead is SELECT, WITH, SHOW, DESCRIBE, EXISTS, EXPLAIN: the only
	// statements a read-only user may run. They take a trailing SETTINGS.
	kindRead kind = iota + 1
	// kindInsert is an INSERT whose data follows FORMAT x or VALUES.
	kindInsert
	// kindInsertSelect is INSERT ... SELECT: a write with no data.
	kindInsertSelect
	// kindWrite is everything else: DDL, OPTIMIZE, SYSTEM, ...
	kindWrite
)

func (k kind) String() string {
	switch k {
	case kindRead:
		return "select"
	case kindInsert, kindInsertSelect:
		return "insert"
	default:
		return "other"
	}
}

// statement is the server's reading of one query: enough to authorize it,
// route its data and add settings, not a parse of ClickHouse SQL (the
// engine does that).
type statement struct {
	kind kind
	// text is the statement without a trailing semicolon; for an INSERT
	// with data, only up to the format name.
	text string
	// format is the name after a top-level FORMAT keyword, if any: the
	// output format of a read, the input format of an INSERT.
	format string
	// formatAt and formatEnd bound a read's FORMAT clause in text, so the
	// engine's parse of the query (EXPLAIN AST) prints as a tree, not in
	// the client's format.
	formatAt, formatEnd int
	// For kindInsert: head is "INSERT INTO t (cols)", settings the text of
	// its own SETTINGS clause, and data is the offset in the query where
	// inline data starts (len(query) when all of it is in the body).
	head     string
	settings string
	data     int
}

// parseStatement reads query far enough to classify it. For an INSERT with
// data it stops at the data, which may be partial or binary.
func parseStatement(query string) (*statement, error) {
	lx := lexer{src: query}
	first := lx.next()
	if first.kind == tokEOF {
		return nil, newException(codeSyntaxError, "Empty query")
	}
	st := &statement{}
	word := strings.ToUpper(first.text)
	switch {
	case first.kind == tokPunct && first.text == "(":
		st.kind = kindRead
	case first.kind != tokWord:
		return nil, newException(codeSyntaxError, "Syntax error: the query does not start with a keyword")
	case word == "SELECT" || word == "WITH" || word == "SHOW" || word == "DESCRIBE" || word == "DESC" ||
		word == "EXISTS" || word == "EXPLAIN":
		st.kind = kindRead
	case word == "INSERT":
		st.kind = kindInsert
	case word == "SET" || word == "USE":
		return nil, newException(codeSupportIsDisabled, word+" is not supported: the server has no sessions; pass settings as URL parameters and name databases in the query")
	default:
		st.kind = kindWrite
	}

	prev := first
	settingsAt := -1
	for {
		t := lx.next()
		switch {
		case t.kind == tokEOF:
			st.text = strings.TrimRightFunc(query, isSpace)
			return st, st.finishInsert(query, settingsAt)
		case t.kind == tokPunct && t.text == ";":
			st.text = strings.TrimRightFunc(query[:t.start], isSpace)
			if rest := lx.next(); rest.kind != tokEOF {
				return nil, newException(codeSyntaxError, "Multi-statements are not allowed: send one statement per request")
			}
			return st, st.finishInsert(query, settingsAt)
		case t.kind == tokError:
			return nil, newException(codeSyntaxError, "Syntax error: "+t.text)
		}
		up := strings.ToUpper(t.text)
		if t.kind == tokWord && prev.kind == tokWord && (strings.EqualFold(prev.text, "INTO") && up == "OUTFILE" || strings.EqualFold(prev.text, "FROM") && up == "INFILE") {
			return nil, newException(codeSupportIsDisabled, prev.text+" "+t.text+" is not supported over HTTP: the data travels in the request and response bodies")
		}
		if t.kind == tokWord && t.depth == 0 {
			switch {
			case st.kind == kindInsert && (up == "SELECT" || up == "WITH") && st.format == "":
				st.kind = kindInsertSelect
			case st.kind == kindInsert && up == "SETTINGS" && settingsAt < 0:
				settingsAt = t.start
			case st.kind == kindInsert && up == "VALUES":
				st.format, st.data = "Values", t.end
				st.text = query[:t.start]
				return st, st.finishInsert(query, settingsAt)
			}
		}
		if prev.kind == tokWord && strings.EqualFold(prev.text, "FORMAT") && prev.depth == 0 && t.kind == tokWord && st.format == "" {
			st.format, st.formatAt, st.formatEnd = t.text, prev.start, t.end
			if st.kind == kindInsert {
				st.text = query[:prev.start]
				st.data = dataStart(query, t.end)
				return st, st.finishInsert(query, settingsAt)
			}
		}
		prev = t
	}
}

// finishInsert splits an INSERT's head from its SETTINGS clause.
func (st *statement) finishInsert(query string, settingsAt int) error {
	if st.kind != kindInsert {
		return nil
	}
	if st.format == "" {
		return newException(codeSyntaxError, "INSERT without FORMAT, VALUES or SELECT: say how the data in the body is formatted, e.g. INSERT INTO t FORMAT JSONEachRow")
	}
	head := st.text
	if settingsAt >= 0 && settingsAt < len(head) {
		st.settings = strings.TrimSpace(head[settingsAt+len("SETTINGS"):])
		head = head[:settingsAt]
	}
	st.head = strings.TrimSpace(head)
	return nil
}

// dataStart skips the blanks after an INSERT's format name, up to and
// including the first line break, as ClickHouse does.
func dataStart(query string, i int) int {
	for i < len(query) && (query[i] == ' ' || query[i] == '\t') {
		i++
	}
	if i < len(query) && query[i] == '\r' {
		i++
	}
	if i < len(query) && query[i] == '\n' {
		i++
	}
	return i
}

func isSpace(r rune) bool { return r == ' ' || r == '\t' || r == '\n' || r == '\r' || r == '\f' }

type tokKind int

const (
	tokEOF tokKind = iota
	tokWord
	tokString
	tokNumber
	tokPunct
	tokError
)

type token struct {
	kind       tokKind
	text       string
	start, end int
	depth      int
}

// lexer splits ClickHouse SQL into words, literals and punctuation,
// skipping comments and tracking parenthesis depth. It is lazy, so it never
// reads past what the caller asks for (an INSERT's data).
type lexer struct {
	src   string
	pos   int
	depth int
}

func (l *lexer) next() token {
	l.skipBlanks()
	if l.pos >= len(l.src) {
		return token{kind: tokEOF, start: l.pos, end: l.pos}
	}
	start := l.pos
	c := l.src[l.pos]
	switch {
	case c == '\'' || c == '"' || c == '`':
		end, ok := closeQuote(l.src, l.pos)
		if !ok {
			return token{kind: tokError, text: "unterminated quoted text", start: start}
		}
		l.pos = end
		k := tokString
		if c != '\'' {
			k = tokWord // a quoted identifier
		}
		return token{kind: k, text: l.src[start:end], start: start, end: end, depth: l.depth}
	case isWordByte(c):
		for l.pos < len(l.src) && (isWordByte(l.src[l.pos]) || l.src[l.pos] >= '0' && l.src[l.pos] <= '9') {
			l.pos++
		}
		return token{kind: tokWord, text: l.src[start:l.pos], start: start, end: l.pos, depth: l.depth}
	case c >= '0' && c <= '9':
		for l.pos < len(l.src) && (isWordByte(l.src[l.pos]) || l.src[l.pos] >= '0' && l.src[l.pos] <= '9' || l.src[l.pos] == '.') {
			l.pos++
		}
		return token{kind: tokNumber, text: l.src[start:l.pos], start: start, end: l.pos, depth: l.depth}
	}
	l.pos++
	t := token{kind: tokPunct, text: l.src[start:l.pos], start: start, end: l.pos, depth: l.depth}
	switch c {
	case '(', '[':
		l.depth++
	case ')', ']':
		if l.depth > 0 {
			l.depth--
		}
		t.depth = l.depth
	}
	return t
}

func (l *lexer) skipBlanks() {
	for l.pos < len(l.src) {
		c := l.src[l.pos]
		switch {
		case isSpace(rune(c)):
			l.pos++
		case strings.HasPrefix(l.src[l.pos:], "--") || c == '#' && strings.HasPrefix(l.src[l.pos:], "#!") || strings.HasPrefix(l.src[l.pos:], "# "):
			if i := strings.IndexByte(l.src[l.pos:], '\n'); i >= 0 {
				l.pos += i + 1
			} else {
				l.pos = len(l.src)
			}
		case strings.HasPrefix(l.src[l.pos:], "/*"):
			if i := strings.Index(l.src[l.pos+2:], "*/"); i >= 0 {
				l.pos += i + 4
			} else {
				l.pos = len(l.src)
			}
		default:
			return
		}
	}
}

// closeQuote returns the offset after the quoted text starting at i, which
// may escape its quote with a backslash or by doubling it.
func closeQuote(s string, i int) (int, bool) {
	q := s[i]
	for j := i + 1; j < len(s); j++ {
		switch s[j] {
		case '\\':
			j++
		case q:
			if j+1 < len(s) && s[j+1] == q {
				j++
				continue
			}
			return j + 1, true
		}
	}
	return 0, false
}

func isWordByte(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80
}
