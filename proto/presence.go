package proto

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/bits"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"unicode/utf16"
	"unicode/utf8"
)

// The presence pass. encoding/json alone cannot tell an absent or null
// field from a zero one (a missing battery_pct decodes as 0), and it matches
// keys case-insensitively ("V", "DEVICE_ID"). So before unmarshalling,
// decodeReference walks the payload's keys once (the top-level object and, where the
// message has one, the nested result object) and checks, in this order:
//
//   - every string, key or value at any depth, is valid UTF-8 with every
//     surrogate escape paired, else ErrInvalidUTF8: encoding/json would
//     quietly store U+FFFD in place of each fault;
//   - no value nests objects and arrays deeper than MaxDepth, else
//     ErrTooDeep, before the missing fields a deep value hides;
//   - every key is, exactly and case-sensitively, a JSON name of the message
//     type, else ErrUnknownField naming the dotted path ("result.x");
//   - no key appears twice in one object, else ErrDuplicateKey: encoding/json
//     would keep the last, and a consumer reading the first would see
//     another message;
//   - no value is JSON null: null is never a value on the v1 wire, a field
//     without a value is left out, so a null is reported as ErrMissingField,
//     for optional fields too;
//   - every required field is present, else ErrMissingField naming the first
//     missing one in declaration order.
//
// The key sets and the required sets come from the struct's json tags, by
// reflection, once per type: a field without omitempty is required. The one
// exception is StatusEvent.firmware, required unless the state is offline,
// which the pass leaves to Validate. The pass does not validate JSON syntax;
// when it cannot follow the payload, or finds a problem in a payload that is
// not valid JSON, encoding/json's syntax error (ErrMalformed) wins.

// wireSchema is the set of keys one JSON object of a message accepts.
type wireSchema struct {
	// prefix is the dotted path of the object, "" or "result.".
	prefix string
	// fields are the object's keys in declaration order, embedded Header first.
	fields []wireField
	// required has bit i set when fields[i] must be present.
	required uint64
}

type wireField struct {
	// name is the JSON key.
	name string
	// path is the name errors report: "seq", "result.outcome".
	path string
	// sub is the schema of a nested object, nil for a leaf value.
	sub *wireSchema
}

var unmarshalerType = reflect.TypeFor[json.Unmarshaler]()

// Schemas of the four messages, built once at package initialisation.
var (
	telemetrySchema = buildSchema(reflect.TypeFor[Telemetry](), "")
	// Validate requires firmware unless the state is offline.
	statusSchema   = buildSchema(reflect.TypeFor[StatusEvent](), "").optional("firmware")
	commandSchema  = buildSchema(reflect.TypeFor[Command](), "")
	decisionSchema = buildSchema(reflect.TypeFor[Decision](), "")
)

// otherSchemas caches the schemas of other Message types, by reflect.Type.
var otherSchemas sync.Map

func schemaFor(m Message) *wireSchema {
	switch m.(type) {
	case *Telemetry:
		return telemetrySchema
	case *StatusEvent:
		return statusSchema
	case *Command:
		return commandSchema
	case *Decision:
		return decisionSchema
	}
	t := reflect.TypeOf(m).Elem()
	if s, ok := otherSchemas.Load(t); ok {
		return s.(*wireSchema)
	}
	s, _ := otherSchemas.LoadOrStore(t, buildSchema(t, ""))
	return s.(*wireSchema)
}

// buildSchema derives the schema of struct type t the way encoding/json
// names its fields: untagged embedded structs are flattened, unexported and
// "-" fields are skipped, a struct field that does not unmarshal itself is a
// nested object. It panics on a type the wire cannot have (more than 64 keys,
// a key twice), which is a programming error caught by any test.
func buildSchema(t reflect.Type, prefix string) *wireSchema {
	s := &wireSchema{prefix: prefix}
	s.add(t)
	return s
}

func (s *wireSchema) add(t reflect.Type) {
	for i := range t.NumField() {
		f := t.Field(i)
		tag, tagged := f.Tag.Lookup("json")
		ft := f.Type
		if ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if f.Anonymous && !tagged && ft.Kind() == reflect.Struct {
			s.add(ft)
			continue
		}
		if !f.IsExported() || tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if name == "" {
			name = f.Name
		}
		wf := wireField{name: name, path: s.prefix + name}
		if ft.Kind() == reflect.Struct && !reflect.PointerTo(ft).Implements(unmarshalerType) {
			wf.sub = buildSchema(ft, wf.path+".")
		}
		for _, g := range s.fields {
			if g.name == name {
				panic(fmt.Sprintf("proto: %v: JSON key %q twice", t, name))
			}
		}
		if len(s.fields) == 64 {
			panic(fmt.Sprintf("proto: %v: more than 64 JSON keys", t))
		}
		if !hasOption(opts, "omitempty") {
			s.required |= 1 << len(s.fields)
		}
		s.fields = append(s.fields, wf)
	}
}

func hasOption(opts, want string) bool {
	for opts != "" {
		var o string
		o, opts, _ = strings.Cut(opts, ",")
		if o == want {
			return true
		}
	}
	return false
}

// optional marks the top-level key name optional for the presence pass.
func (s *wireSchema) optional(name string) *wireSchema {
	for i, f := range s.fields {
		if f.name == name {
			s.required &^= 1 << i
			return s
		}
	}
	panic(fmt.Sprintf("proto: no JSON key %q to make optional", name))
}

// errScan means the presence pass could not follow the payload's structure:
// the payload is not valid JSON.
var errScan = errors.New("proto: presence pass lost in payload")

// check runs the presence pass over b, a payload trimmed of whitespace whose
// first byte is '{'. It returns errScan when b does not look like one JSON
// object, or a *FieldError.
func (s *wireSchema) check(b []byte) error {
	sc := scanner{b: b}
	if err := s.object(&sc, 1); err != nil {
		return err
	}
	sc.skipSpace()
	if sc.i != len(b) {
		return errScan
	}
	return nil
}

// object checks the object whose '{' is at the cursor, depth levels deep
// (the payload itself is 1), and consumes it.
func (s *wireSchema) object(sc *scanner, depth int) error {
	sc.i++ // '{'
	var seen uint64
	sc.skipSpace()
	if sc.at('}') {
		sc.i++
	} else {
		for {
			sc.skipSpace()
			if !sc.at('"') {
				return errScan
			}
			key, escaped, err := sc.string()
			if err != nil {
				return inField(err, strings.TrimSuffix(s.prefix, "."))
			}
			sc.skipSpace()
			if !sc.at(':') {
				return errScan
			}
			sc.i++
			sc.skipSpace()
			k, err := s.lookup(key, escaped)
			if err != nil {
				return err
			}
			f := &s.fields[k]
			if seen&(1<<k) != 0 {
				return fieldErr(f.path, ErrDuplicateKey, "a key appears once in an object")
			}
			seen |= 1 << k
			if f.sub != nil && sc.at('{') {
				if err := f.sub.object(sc, depth+1); err != nil {
					return err
				}
			} else {
				null, err := sc.value(depth)
				switch {
				case err != nil:
					return inField(err, f.path)
				case null && s.required&(1<<k) != 0:
					return fieldErr(f.path, ErrMissingField, "null; a value is required")
				case null:
					return fieldErr(f.path, ErrMissingField, "null; leave an optional field out instead")
				}
			}
			sc.skipSpace()
			if sc.at(',') {
				sc.i++
				continue
			}
			if !sc.at('}') {
				return errScan
			}
			sc.i++
			break
		}
	}
	if missing := s.required &^ seen; missing != 0 {
		return fieldErr(s.fields[bits.TrailingZeros64(missing)].path, ErrMissingField, "required")
	}
	return nil
}

// lookup returns the index of key, the raw bytes between a key's quotes.
func (s *wireSchema) lookup(key []byte, escaped bool) (int, error) {
	if escaped {
		// Rare: a key with escapes ("\u0076" is "v"). Unescape it as JSON does.
		var k string
		if json.Unmarshal(append(append([]byte{'"'}, key...), '"'), &k) != nil {
			return 0, errScan
		}
		key = []byte(k)
	}
	for i := range s.fields {
		if string(key) == s.fields[i].name {
			return i, nil
		}
	}
	detail := fmt.Sprintf("not defined in wire version %d", Version)
	for _, f := range s.fields {
		if strings.EqualFold(string(key), f.name) {
			detail += fmt.Sprintf("; keys are case-sensitive, did you mean %q?", f.name)
			break
		}
	}
	return 0, fieldErr(s.prefix+string(key), ErrUnknownField, "%s", detail)
}

// scanner walks a JSON text without validating it: it finds where strings,
// objects, arrays and literals end, which is all the presence pass needs.
// On valid JSON it is exact; on anything else it may stop (ok false) or
// accept, and encoding/json reports the syntax error.
type scanner struct {
	b []byte
	i int
}

func (sc *scanner) at(c byte) bool { return sc.i < len(sc.b) && sc.b[sc.i] == c }

func (sc *scanner) skipSpace() {
	for sc.i < len(sc.b) {
		switch sc.b[sc.i] {
		case ' ', '\t', '\n', '\r':
			sc.i++
		default:
			return
		}
	}
}

// string consumes the string whose opening quote is at the cursor and
// returns the bytes between the quotes, escapes untouched. Its error is
// errScan, or an ErrInvalidUTF8 FieldError without a field when the string
// is valid JSON but not valid Unicode.
func (sc *scanner) string() (raw []byte, escaped bool, err error) {
	start := sc.i + 1
	for i := start; i <= len(sc.b); {
		q := bytes.IndexByte(sc.b[i:], '"')
		if q < 0 {
			return nil, false, errScan
		}
		if e := bytes.IndexByte(sc.b[i:i+q], '\\'); e >= 0 {
			// Skip the escape and the byte it escapes, then look again.
			escaped = true
			i += e + 2
			continue
		}
		sc.i = i + q + 1
		raw = sc.b[start : i+q]
		if at, what := unicodeFault(raw, escaped); at >= 0 {
			return nil, false, &FieldError{Err: ErrInvalidUTF8, Detail: fmt.Sprintf("byte %d: %s", start+at, what)}
		}
		return raw, escaped, nil
	}
	return nil, false, errScan
}

// unicodeFault returns the offset in raw, the bytes between a string's
// quotes, of the first byte that is not UTF-8 or the first \u escape of an
// unpaired surrogate, and what it is; -1 when there is none. A malformed
// escape is not a fault here: encoding/json reports it as a syntax error.
func unicodeFault(raw []byte, escaped bool) (int, string) {
	if !utf8.Valid(raw) {
		for i := 0; i < len(raw); {
			r, n := utf8.DecodeRune(raw[i:])
			if r == utf8.RuneError && n == 1 {
				return i, fmt.Sprintf("0x%02x is not UTF-8", raw[i])
			}
			i += n
		}
	}
	if !escaped {
		return -1, ""
	}
	for i := 0; i < len(raw); i++ {
		if raw[i] != '\\' {
			continue
		}
		r, ok := hexEscape(raw, i)
		switch {
		case !ok:
			i++ // \", \\, \n, ...: skip the escaped byte
			continue
		case utf16.IsSurrogate(r) && r < 0xdc00:
			if low, ok := hexEscape(raw, i+6); ok && utf16.DecodeRune(r, low) != utf8.RuneError {
				i += 11
				continue
			}
			fallthrough
		case utf16.IsSurrogate(r):
			return i, fmt.Sprintf("%s is half a surrogate pair", raw[i:i+6])
		}
		i += 5
	}
	return -1, ""
}

// hexEscape decodes the \uXXXX escape at raw[i:], if there is one.
func hexEscape(raw []byte, i int) (rune, bool) {
	if i+6 > len(raw) || raw[i] != '\\' || raw[i+1] != 'u' {
		return 0, false
	}
	n, err := strconv.ParseUint(string(raw[i+2:i+6]), 16, 16)
	return rune(n), err == nil
}

// value consumes the value at the cursor, in an object depth levels deep,
// and reports whether it is null. Its error is errScan or a FieldError
// without a field (ErrInvalidUTF8, ErrTooDeep).
func (sc *scanner) value(depth int) (null bool, err error) {
	if sc.i >= len(sc.b) {
		return false, errScan
	}
	switch sc.b[sc.i] {
	case '"':
		_, _, err = sc.string()
		return false, err
	case '{', '[':
		return false, sc.composite(depth)
	}
	start := sc.i
literal:
	for sc.i < len(sc.b) {
		switch sc.b[sc.i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			break literal
		}
		sc.i++
	}
	tok := sc.b[start:sc.i]
	if len(tok) == 0 {
		return false, errScan
	}
	return string(tok) == "null", nil
}

// composite consumes the object or array whose opening bracket is at the
// cursor, a value in an object depth levels deep.
func (sc *scanner) composite(depth int) error {
	open := 0
	for sc.i < len(sc.b) {
		switch sc.b[sc.i] {
		case '"':
			if _, _, err := sc.string(); err != nil {
				return err
			}
			continue
		case '{', '[':
			open++
			if depth+open > MaxDepth {
				return &FieldError{Err: ErrTooDeep, Detail: fmt.Sprintf("byte %d opens level %d, past %d", sc.i, depth+open, MaxDepth)}
			}
		case '}', ']':
			open--
			if open == 0 {
				sc.i++
				return nil
			}
		}
		sc.i++
	}
	return errScan
}

// inField names field in err when err is a FieldError without a field:
// the scanner finds a fault in a string or a nested value, the object
// walking it knows whose.
func inField(err error, field string) error {
	if fe, ok := err.(*FieldError); ok && fe.Field == "" {
		fe.Field = field
	}
	return err
}
