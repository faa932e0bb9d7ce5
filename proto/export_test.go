package proto

// DecodeTelemetryReference decodes b with the reference decoder alone, the
// one the fast path is checked against.
func DecodeTelemetryReference(b []byte) (*Telemetry, error) {
	m := new(Telemetry)
	return m, decodeReference(b, DefaultMaxPayload, m)
}

// DecodeStatusReference decodes b with the reference decoder alone.
func DecodeStatusReference(b []byte) (*StatusEvent, error) {
	m := new(StatusEvent)
	return m, decodeReference(b, DefaultMaxPayload, m)
}

// WireTime exposes the fast path's timestamp parser.
var WireTime = wireTime

// FastPathTakes reports whether the fast path decodes b as kind on its own.
func FastPathTakes(kind Kind, b []byte) bool {
	if kind == KindTelemetry {
		return decodeFast(b, new(Telemetry))
	}
	return decodeFast(b, new(StatusEvent))
}
