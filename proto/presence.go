package proto

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/bits"
	"reflect"
	"strings"
	"sync"
)

// The presence pass. encoding/json alone cannot tell an absent or null
// field from a zero one (a missing battery_pct decodes as 0), and it matches
// keys case-insensitively ("V", "DEVICE_ID"). So before unmarshalling,
// decodeReference walks the payload's keys once (the top-level object and, where the
// message has one, the nested result object) and checks, in this order:
//
//   - every key is, exactly and case-sensitively, a JSON name of the message
//     type, else ErrUnknownField naming the dotted path ("result.x");
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
	if err := s.object(&sc); err != nil {
		return err
	}
	sc.skipSpace()
	if sc.i != len(b) {
		return errScan
	}
	return nil
}

// object checks the object whose '{' is at the cursor and consumes it.
func (s *wireSchema) object(sc *scanner) error {
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
			key, escaped, ok := sc.string()
			if !ok {
				return errScan
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
			seen |= 1 << k
			if f.sub != nil && sc.at('{') {
				if err := f.sub.object(sc); err != nil {
					return err
				}
			} else {
				null, ok := sc.value()
				switch {
				case !ok:
					return errScan
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
// returns the bytes between the quotes, escapes untouched.
func (sc *scanner) string() (raw []byte, escaped, ok bool) {
	start := sc.i + 1
	for i := start; i <= len(sc.b); {
		q := bytes.IndexByte(sc.b[i:], '"')
		if q < 0 {
			return nil, false, false
		}
		if e := bytes.IndexByte(sc.b[i:i+q], '\\'); e >= 0 {
			// Skip the escape and the byte it escapes, then look again.
			escaped = true
			i += e + 2
			continue
		}
		sc.i = i + q + 1
		return sc.b[start : i+q], escaped, true
	}
	return nil, false, false
}

// value consumes the value at the cursor and reports whether it is null.
func (sc *scanner) value() (null, ok bool) {
	if sc.i >= len(sc.b) {
		return false, false
	}
	switch sc.b[sc.i] {
	case '"':
		_, _, ok = sc.string()
		return false, ok
	case '{', '[':
		return false, sc.composite()
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
	return string(tok) == "null", len(tok) > 0
}

// composite consumes the object or array whose opening bracket is at the cursor.
func (sc *scanner) composite() bool {
	depth := 0
	for sc.i < len(sc.b) {
		switch sc.b[sc.i] {
		case '"':
			if _, _, ok := sc.string(); !ok {
				return false
			}
			continue
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth == 0 {
				sc.i++
				return true
			}
		}
		sc.i++
	}
	return false
}
