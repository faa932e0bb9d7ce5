package httpserver

import (
	"encoding/binary"
	"strings"
)

// helloQuery is what clickhouse-go asks first on every HTTP connection.
const helloQuery = "SELECT displayName(), version(), revision(), timezone()"

// isHello reports whether text is clickhouse-go's hello query.
func isHello(text string) bool {
	return strings.EqualFold(strings.Join(strings.Fields(text), " "), helloQuery)
}

// helloBlock encodes the answer to the hello query as one Native block.
//
// clickhouse-go decodes this one reply at its own protocol revision (it
// sends it as client_protocol_version), which puts block info before the
// columns and a custom-serialization flag after each column's type. It then
// speaks the revision the reply reports. The engine writes Native the way
// revision 0 reads it, so the reply reports revision 0, and every later
// block, both ways, is plain Native as the engine reads and writes it.
func helloBlock(displayName, version, timezone string, withInfo bool) []byte {
	var b []byte
	uvarint := func(v uint64) { b = binary.AppendUvarint(b, v) }
	str := func(s string) { uvarint(uint64(len(s))); b = append(b, s...) }
	if withInfo {
		// Block info: field 1 is_overflows=false, field 2 bucket_num=-1, end.
		uvarint(1)
		b = append(b, 0)
		uvarint(2)
		b = binary.LittleEndian.AppendUint32(b, 0xFFFFFFFF)
		uvarint(0)
	}
	uvarint(4) // columns
	uvarint(1) // rows
	column := func(name, typ string, data func()) {
		str(name)
		str(typ)
		if withInfo {
			b = append(b, 0) // no custom serialization
		}
		data()
	}
	column("displayName()", "String", func() { str(displayName) })
	column("version()", "String", func() { str(version) })
	column("revision()", "UInt32", func() { b = binary.LittleEndian.AppendUint32(b, 0) })
	column("timezone()", "String", func() { str(timezone) })
	return b
}
