package proto

import (
	"strconv"
	"time"
	"unicode/utf8"
)

// The fast path. Telemetry and status events are every message the
// ingestor decodes, and the reference decoder (decode.go, presence.go) reads
// each one twice: the presence pass, then encoding/json with reflection. The
// fast path reads a payload once, without reflection, straight into the
// message, and accepts only what it fully understands: one JSON object of
// the message's keys, each exactly once, each value of its Go field's JSON
// type with no escapes in strings, every required key present, nothing after
// the object. Anything else, valid or not, goes to the reference decoder,
// which then says what is wrong (or accepts it) exactly as before. A key
// twice (ErrDuplicateKey), bytes that are not UTF-8 or an escape, which may
// be half a surrogate pair (ErrInvalidUTF8), and nesting past the result
// object (ErrTooDeep) are all declined, so those errors are the
// reference's alone. The fast path never produces a decoding error of its
// own, only Validate's, through the same validateDecoded on the same
// struct (a ts of 0001-01-01 is ErrTSOutOfRange on both paths). So its
// accept/reject behaviour and its errors are the reference's by
// construction, provided that a payload it accepts the reference accepts
// with an equal message; FuzzFastDecode checks that on arbitrary inputs.

// Field bits of the fast path, one per key of a message.
const (
	fV = 1 << iota
	fDeviceID
	fTS
	fSeq
	fRegion
	fFirmware
	fState
	fBatteryPct
	fCharging
	fRSSI
	fTemperatureC
	fUptimeS
	fTargetFirmware
	fWave
	fDetail
	fResult
	fBatteryMV
	fBatteryCycles
	fHWModel
	fStorage
	fBootCount
)

const (
	fastHeader            = fV | fDeviceID | fTS | fSeq
	fastTelemetryRequired = fastHeader | fRegion | fFirmware | fState | fBatteryPct | fCharging | fRSSI | fTemperatureC | fUptimeS
	// firmware is left to Validate, as in the presence pass.
	fastStatusRequired = fastHeader | fRegion | fState
)

// Result's keys.
const (
	fCommandID = 1 << iota
	fAction
	fOutcome
	fastResultRequired = fCommandID | fAction | fOutcome
)

// decodeFast decodes b, already within the size cap, into m when m is a
// *Telemetry or *StatusEvent and b is plain enough for the fast path. ok
// false means the caller must decode b with the reference decoder; m may
// then hold part of b and must be reset first.
func decodeFast(b []byte, m Message) (ok bool) {
	lx := lexer{b: b}
	switch v := m.(type) {
	case *Telemetry:
		ok = lx.telemetry(v)
	case *StatusEvent:
		ok = lx.status(v)
	default:
		return false
	}
	if !ok {
		return false
	}
	lx.space()
	return lx.i == len(b)
}

// lexer reads JSON from b at i. Every method returns false on anything it
// does not handle, leaving the rest to the reference decoder.
type lexer struct {
	b []byte
	i int
}

func (lx *lexer) space() {
	for lx.i < len(lx.b) {
		switch lx.b[lx.i] {
		case ' ', '\t', '\n', '\r':
			lx.i++
		default:
			return
		}
	}
}

// next skips whitespace and consumes c if it is the next byte.
func (lx *lexer) next(c byte) bool {
	lx.space()
	if lx.i < len(lx.b) && lx.b[lx.i] == c {
		lx.i++
		return true
	}
	return false
}

// object reads an object whose keys are all handled by field, which
// reads the value of one key and returns its bit (0: not handled). It
// returns the bits of the keys seen, each at most once.
func (lx *lexer) object(field func(key []byte) uint32) (seen uint32, ok bool) {
	if !lx.next('{') {
		return 0, false
	}
	if lx.next('}') {
		return 0, true
	}
	for {
		lx.space()
		key, ok := lx.raw()
		if !ok || !lx.next(':') {
			return 0, false
		}
		lx.space()
		bit := field(key)
		if bit == 0 || seen&bit != 0 {
			return 0, false
		}
		seen |= bit
		if lx.next(',') {
			continue
		}
		if lx.next('}') {
			return seen, true
		}
		return 0, false
	}
}

// raw reads a string without escapes or control characters and with valid
// UTF-8, and returns the bytes between its quotes: what encoding/json
// decodes it to.
func (lx *lexer) raw() ([]byte, bool) {
	if lx.i >= len(lx.b) || lx.b[lx.i] != '"' {
		return nil, false
	}
	start := lx.i + 1
	ascii := true
	for j := start; j < len(lx.b); j++ {
		switch c := lx.b[j]; {
		case c == '"':
			s := lx.b[start:j]
			if !ascii && !utf8.Valid(s) {
				return nil, false
			}
			lx.i = j + 1
			return s, true
		case c == '\\' || c < 0x20:
			return nil, false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return nil, false
}

func (lx *lexer) str(dst *string) bool {
	s, ok := lx.raw()
	*dst = string(s)
	return ok
}

// digits reads JSON's integer part, 0 or [1-9][0-9]*, into a uint64, and
// fails on overflow. A fraction or exponent after it is left unread, so the
// object reader fails on it.
func (lx *lexer) digits() (uint64, bool) {
	start := lx.i
	var n uint64
	for lx.i < len(lx.b) && lx.b[lx.i] >= '0' && lx.b[lx.i] <= '9' {
		d := uint64(lx.b[lx.i] - '0')
		if n > (1<<64-1-d)/10 {
			return 0, false
		}
		n = n*10 + d
		lx.i++
		if n == 0 && lx.i-start == 1 {
			break // a leading 0 is the whole integer part
		}
	}
	return n, lx.i > start
}

func (lx *lexer) uint(dst *uint64) bool {
	n, ok := lx.digits()
	*dst = n
	return ok
}

func (lx *lexer) int64(dst *int64) bool {
	neg := lx.i < len(lx.b) && lx.b[lx.i] == '-'
	if neg {
		lx.i++
	}
	n, ok := lx.digits()
	switch {
	case !ok:
		return false
	case neg && n <= 1<<63:
		*dst = int64(-n) // -1<<63 included
	case !neg && n < 1<<63:
		*dst = int64(n)
	default:
		return false
	}
	return true
}

func (lx *lexer) int(dst *int) bool {
	var n int64
	if !lx.int64(&n) || int64(int(n)) != n {
		return false
	}
	*dst = int(n)
	return true
}

// float reads a JSON number and parses it as encoding/json does.
func (lx *lexer) float(dst *float64) bool {
	start := lx.i
	if lx.i < len(lx.b) && lx.b[lx.i] == '-' {
		lx.i++
	}
	if _, ok := lx.digits(); !ok {
		// An integer part too large for a uint64 is still a float; rare.
		return false
	}
	if lx.i < len(lx.b) && lx.b[lx.i] == '.' {
		lx.i++
		if !lx.someDigits() {
			return false
		}
	}
	if lx.i < len(lx.b) && (lx.b[lx.i] == 'e' || lx.b[lx.i] == 'E') {
		lx.i++
		if lx.i < len(lx.b) && (lx.b[lx.i] == '+' || lx.b[lx.i] == '-') {
			lx.i++
		}
		if !lx.someDigits() {
			return false
		}
	}
	f, err := strconv.ParseFloat(string(lx.b[start:lx.i]), 64)
	*dst = f
	return err == nil
}

func (lx *lexer) someDigits() bool {
	start := lx.i
	for lx.i < len(lx.b) && lx.b[lx.i] >= '0' && lx.b[lx.i] <= '9' {
		lx.i++
	}
	return lx.i > start
}

func (lx *lexer) bool(dst *bool) bool {
	rest := lx.b[lx.i:]
	switch {
	case len(rest) >= 4 && string(rest[:4]) == "true":
		*dst = true
		lx.i += 4
	case len(rest) >= 5 && string(rest[:5]) == "false":
		*dst = false
		lx.i += 5
	default:
		return false
	}
	return true
}

// time reads a timestamp as Time.UnmarshalJSON does: the wire's own form,
// 2006-01-02T15:04:05.000Z, directly, anything else through time.Parse.
func (lx *lexer) time(dst *Time) bool {
	s, ok := lx.raw()
	if !ok {
		return false
	}
	if t, ok := wireTime(s); ok {
		dst.Time = t
		return true
	}
	t, err := time.Parse(time.RFC3339Nano, string(s))
	if err != nil {
		return false
	}
	dst.Time = t.UTC().Truncate(time.Millisecond)
	return true
}

// wireTime parses s when it has exactly the form of TimeFormat in UTC and
// time.Parse would accept it.
func wireTime(s []byte) (time.Time, bool) {
	if len(s) != len("2006-01-02T15:04:05.000Z") || s[4] != '-' || s[7] != '-' || s[10] != 'T' ||
		s[13] != ':' || s[16] != ':' || s[19] != '.' || s[23] != 'Z' {
		return time.Time{}, false
	}
	num := func(from, to int) int {
		n := 0
		for _, c := range s[from:to] {
			if c < '0' || c > '9' {
				return -1
			}
			n = n*10 + int(c-'0')
		}
		return n
	}
	y, mo, d := num(0, 4), num(5, 7), num(8, 10)
	h, mi, sec, ms := num(11, 13), num(14, 16), num(17, 19), num(20, 23)
	if y < 0 || mo < 1 || mo > 12 || d < 1 || h < 0 || h > 23 || mi < 0 || mi > 59 || sec < 0 || sec > 59 || ms < 0 {
		return time.Time{}, false
	}
	if d > 28 && time.Date(y, time.Month(mo), d, 0, 0, 0, 0, time.UTC).Day() != d {
		return time.Time{}, false // past the end of the month
	}
	return time.Date(y, time.Month(mo), d, h, mi, sec, ms*int(time.Millisecond), time.UTC), true
}

// The values of State, Action and Outcome, so a decoded one shares the
// constant's bytes instead of allocating.
var (
	fastStates   = []State{StateIdle, StateDownloading, StateVerifying, StateInstalling, StateRebooting, StateUpdated, StateDownloadFailed, StateVerifyFailed, StateInstallFailed, StatePartial, StateBootFailed, StateRollingBack, StateRolledBack, StateBricked, StateOffline}
	fastActions  = []Action{ActionRetry, ActionRollback, ActionDefer, ActionHalt, ActionNone}
	fastOutcomes = []Outcome{OutcomeOK, OutcomeFailed, OutcomeRejected, OutcomeDuplicate}
	fastStorages = []Storage{StorageAB, StorageSingle}
)

// enum reads a string into dst, one of known when it is one.
func enum[E ~string](lx *lexer, dst *E, known []E) bool {
	s, ok := lx.raw()
	if !ok {
		return false
	}
	for _, k := range known {
		if string(s) == string(k) {
			*dst = k
			return true
		}
	}
	*dst = E(s)
	return true
}

// header reads the value of key when it is a Header key: its bit, 0 if not
// a Header key, and false on a value the fast path does not handle.
func (lx *lexer) header(h *Header, key []byte) (uint32, bool) {
	switch string(key) {
	case "v":
		return fV, lx.int(&h.V)
	case "device_id":
		return fDeviceID, lx.str(&h.DeviceID)
	case "ts":
		return fTS, lx.time(&h.TS)
	case "seq":
		return fSeq, lx.uint(&h.Seq)
	}
	return 0, true
}

func (lx *lexer) telemetry(m *Telemetry) bool {
	seen, ok := lx.object(func(key []byte) uint32 {
		if bit, ok := lx.header(&m.Header, key); bit != 0 || !ok {
			return keep(bit, ok)
		}
		switch string(key) {
		case "region":
			return keep(fRegion, lx.str(&m.Region))
		case "firmware":
			return keep(fFirmware, lx.str(&m.Firmware))
		case "state":
			return keep(fState, enum(lx, &m.State, fastStates))
		case "battery_pct":
			return keep(fBatteryPct, lx.float(&m.BatteryPct))
		case "charging":
			return keep(fCharging, lx.bool(&m.Charging))
		case "rssi_dbm":
			return keep(fRSSI, lx.int(&m.RSSI))
		case "temperature_c":
			return keep(fTemperatureC, lx.float(&m.TemperatureC))
		case "uptime_s":
			return keep(fUptimeS, lx.int64(&m.UptimeS))
		case "battery_mv":
			return keep(fBatteryMV, lx.int(&m.BatteryMV))
		case "battery_cycles":
			return keep(fBatteryCycles, lx.int(&m.BatteryCycles))
		case "hw_model":
			return keep(fHWModel, lx.str(&m.HWModel))
		case "storage":
			return keep(fStorage, enum(lx, &m.Storage, fastStorages))
		case "boot_count":
			return keep(fBootCount, lx.int64(&m.BootCount))
		}
		return 0
	})
	return ok && seen&fastTelemetryRequired == fastTelemetryRequired
}

func (lx *lexer) status(m *StatusEvent) bool {
	seen, ok := lx.object(func(key []byte) uint32 {
		if bit, ok := lx.header(&m.Header, key); bit != 0 || !ok {
			return keep(bit, ok)
		}
		switch string(key) {
		case "region":
			return keep(fRegion, lx.str(&m.Region))
		case "state":
			return keep(fState, enum(lx, &m.State, fastStates))
		case "firmware":
			return keep(fFirmware, lx.str(&m.Firmware))
		case "target_firmware":
			return keep(fTargetFirmware, lx.str(&m.TargetFirmware))
		case "wave":
			return keep(fWave, lx.int(&m.Wave))
		case "detail":
			return keep(fDetail, lx.str(&m.Detail))
		case "result":
			m.Result = new(CommandResult)
			return keep(fResult, lx.result(m.Result))
		}
		return 0
	})
	return ok && seen&fastStatusRequired == fastStatusRequired
}

func (lx *lexer) result(r *CommandResult) bool {
	seen, ok := lx.object(func(key []byte) uint32 {
		switch string(key) {
		case "command_id":
			return keep(fCommandID, lx.str(&r.CommandID))
		case "action":
			return keep(fAction, enum(lx, &r.Action, fastActions))
		case "outcome":
			return keep(fOutcome, enum(lx, &r.Outcome, fastOutcomes))
		}
		return 0
	})
	return ok && seen == fastResultRequired
}

// keep is bit when the value was read, else 0, which stops the object.
func keep(bit uint32, ok bool) uint32 {
	if !ok {
		return 0
	}
	return bit
}
