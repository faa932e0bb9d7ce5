package warehouse

import (
	"errors"
	"strconv"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/sentinel-iot/sentinel/warehouse/chdb"
)

// ClickHouse error codes the writer branches on, from ClickHouse's
// src/Common/ErrorCodes.cpp; the names are the ones the engine appends to
// its messages.
const (
	// CodeTooManyParts (TOO_MANY_PARTS) is raised both for an INSERT block
	// spanning more partitions than max_partitions_per_insert_block and for
	// a table whose merges lag behind its inserts: the first is the batch's
	// doing and goes away when it is split by partition, the second is
	// backpressure and goes away with time.
	CodeTooManyParts = 252
	// CodeViolatedConstraint (VIOLATED_CONSTRAINT): a row fails a CHECK
	// constraint of its table.
	CodeViolatedConstraint = 469
)

// dataCodes are the ClickHouse errors that blame the values of the rows
// sent, not the warehouse's state: the same rows fail the same way however
// often they are retried, and other rows of the same batch would pass.
// Errors about the statement or the schema (SYNTAX_ERROR, UNKNOWN_TABLE,
// NO_SUCH_COLUMN_IN_TABLE, ACCESS_DENIED) are not here on purpose: they
// fail every row alike, a person fixes them, and until then the rows wait.
// So are truncated-stream errors (ATTEMPT_TO_READ_AFTER_EOF,
// CANNOT_READ_ALL_DATA), which a connection cut mid-request raises too.
var dataCodes = map[int]string{
	6:                      "CANNOT_PARSE_TEXT",
	26:                     "CANNOT_PARSE_QUOTED_STRING",
	27:                     "CANNOT_PARSE_INPUT_ASSERTION_FAILED",
	38:                     "CANNOT_PARSE_DATE",
	41:                     "CANNOT_PARSE_DATETIME",
	53:                     "TYPE_MISMATCH",
	69:                     "ARGUMENT_OUT_OF_BOUND",
	70:                     "CANNOT_CONVERT_TYPE",
	72:                     "CANNOT_PARSE_NUMBER",
	117:                    "INCORRECT_DATA",
	131:                    "TOO_LARGE_STRING_SIZE",
	321:                    "VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE",
	349:                    "CANNOT_INSERT_NULL_IN_ORDINARY_COLUMN",
	376:                    "CANNOT_PARSE_UUID",
	407:                    "DECIMAL_OVERFLOW",
	441:                    "CANNOT_PARSE_DOMAIN_VALUE_FROM_STRING",
	467:                    "CANNOT_PARSE_BOOL",
	CodeViolatedConstraint: "VIOLATED_CONSTRAINT",
}

// ErrorKind says what a failed insert calls for.
type ErrorKind int

const (
	// Retryable: the warehouse cannot take the rows now (an outage, a
	// timeout, a lost connection, overload, a schema or permission problem
	// a person must fix, or an error with no ClickHouse code at all). The
	// same rows are tried again later and stay unacknowledged meanwhile.
	Retryable ErrorKind = iota
	// DataError: the engine refused the values of some rows. Retrying the
	// same batch would fail forever; the writer bisects it to find the rows
	// at fault and stores those in dead_letters.
	DataError
	// TooManyPartitions: TOO_MANY_PARTS on an insert spanning several
	// partitions; the writer splits the insert by partition. On an insert
	// into one partition the same code means merges lag, and is Retryable.
	TooManyPartitions
)

// String names the kind, for logs.
func (k ErrorKind) String() string {
	switch k {
	case DataError:
		return "data"
	case TooManyPartitions:
		return "too_many_partitions"
	}
	return "retryable"
}

// ErrorCode returns the ClickHouse error code of err and the code's name
// when known, from either engine: the embedded engine's *chdb.Error, or
// clickhouse-go's *clickhouse.Exception (native protocol or HTTP, which
// includes Sentinel's own warehouse HTTP server). ok is false when err
// carries no code: a network error, a timeout, a closed DB.
func ErrorCode(err error) (code int, name string, ok bool) {
	var ce *chdb.Error
	var ex *clickhouse.Exception
	switch {
	case errors.As(err, &ce):
		code, name, ok = ce.Code()
	case errors.As(err, &ex):
		code, name, ok = int(ex.Code), ex.CodeName, ex.Code > 0
	}
	if ok && name == "" {
		name = dataCodes[code]
		if code == CodeTooManyParts {
			name = "TOO_MANY_PARTS"
		}
	}
	return code, name, ok
}

// ClassifyInsertError tells a retryable failure of an insert from one the
// rows caused, by ClickHouse error code; an error without a code is
// retryable. See ErrorKind.
func ClassifyInsertError(err error) ErrorKind {
	code, _, ok := ErrorCode(err)
	switch {
	case !ok:
		return Retryable
	case code == CodeTooManyParts:
		return TooManyPartitions
	case dataCodes[code] != "":
		return DataError
	}
	return Retryable
}

// RejectReason is the dead_letters reason for a row the engine refused
// with err: "warehouse_" and the lower-cased name of the engine's error
// code ("warehouse_violated_constraint"), or its number when the name is
// unknown ("warehouse_code_469"). A short, bounded code, fit for a metric
// label; the engine's full message goes in the dead letter's error.
func RejectReason(err error) string {
	code, name, ok := ErrorCode(err)
	switch {
	case !ok:
		return "warehouse_rejected"
	case name == "":
		return "warehouse_code_" + strconv.Itoa(code)
	}
	return "warehouse_" + strings.ToLower(name)
}
