package httpserver

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/sentinel-iot/sentinel/warehouse/chdb"
)

// ClickHouse error codes the server raises itself; the engine's own errors
// keep the code the engine gave.
const (
	codeUnsupportedMethod          = 1
	codeSyntaxError                = 62
	codeUnknownDatabase            = 81
	codeTimeoutExceeded            = 159
	codeReadonly                   = 164
	codeTooManyQueries             = 202
	codeLimitExceeded              = 290
	codeSupportIsDisabled          = 344
	codeUnknownQueryParameter      = 456
	codeAccessDenied               = 497
	codeCannotParseNumber          = 27
	codeSettingConstraintViolation = 452
	codeAuthenticationFailed       = 516
	codeCannotDecompress           = 271
	codeUnknownException           = 1002
)

var codeNames = map[int]string{
	codeUnsupportedMethod: "UNSUPPORTED_METHOD", codeSyntaxError: "SYNTAX_ERROR",
	codeUnknownDatabase: "UNKNOWN_DATABASE", codeTimeoutExceeded: "TIMEOUT_EXCEEDED",
	codeReadonly: "READONLY", codeTooManyQueries: "TOO_MANY_SIMULTANEOUS_QUERIES",
	codeLimitExceeded: "LIMIT_EXCEEDED", codeSupportIsDisabled: "SUPPORT_IS_DISABLED",
	codeUnknownQueryParameter: "UNKNOWN_QUERY_PARAMETER", codeAccessDenied: "ACCESS_DENIED",
	codeCannotParseNumber: "CANNOT_PARSE_NUMBER", codeSettingConstraintViolation: "SETTING_CONSTRAINT_VIOLATION", codeAuthenticationFailed: "AUTHENTICATION_FAILED",
	codeUnknownException: "UNKNOWN_EXCEPTION", codeCannotDecompress: "CANNOT_DECOMPRESS",
}

// Exception is an error as ClickHouse reports it over HTTP: a numeric code,
// a message whose text starts "Code: N. DB::Exception:", and an HTTP status.
// Clients such as clickhouse-go turn it into their own exception type with
// the same code.
type Exception struct {
	// Code is ClickHouse's error code, e.g. 60 for UNKNOWN_TABLE.
	Code int
	// Name is the code's name, e.g. "UNKNOWN_TABLE", when known.
	Name string
	// Message is the full text, starting "Code: N. DB::Exception:".
	Message string
	// Status is the HTTP status the response carries.
	Status int
}

// Error implements error.
func (e *Exception) Error() string { return e.Message }

// newException is an error the server raises itself, worded the way the
// engine words its own.
func newException(code int, msg string) *Exception {
	name := codeNames[code]
	text := fmt.Sprintf("Code: %d. DB::Exception: %s", code, msg)
	if name != "" {
		text += " (" + name + ")"
	}
	return &Exception{Code: code, Name: name, Message: text, Status: statusOf(code)}
}

// exceptionOf turns any error into an Exception: the engine's own text and
// code when it came from the engine, code 1002 otherwise.
func exceptionOf(err error) *Exception {
	var ex *Exception
	if errors.As(err, &ex) {
		return ex
	}
	var ce *chdb.Error
	if errors.As(err, &ce) {
		msg := strings.TrimSpace(ce.Message)
		if code, name, ok := ce.Code(); ok {
			return &Exception{Code: code, Name: name, Message: msg, Status: statusOf(code)}
		}
		return newException(codeUnknownException, msg)
	}
	return newException(codeUnknownException, err.Error())
}

// statusOf maps an error code to an HTTP status the way ClickHouse's HTTP
// handler does for the codes Sentinel meets: bad input is 4xx, the rest 500.
func statusOf(code int) int {
	switch code {
	case codeAuthenticationFailed, 192, 193, 194: // AUTHENTICATION_FAILED, UNKNOWN_USER, WRONG_PASSWORD, REQUIRED_PASSWORD
		return http.StatusUnauthorized
	case codeReadonly, codeAccessDenied:
		return http.StatusForbidden
	case 60, codeUnknownDatabase: // UNKNOWN_TABLE, UNKNOWN_DATABASE
		return http.StatusNotFound
	case codeUnsupportedMethod:
		return http.StatusMethodNotAllowed
	case codeLimitExceeded:
		return http.StatusRequestEntityTooLarge
	case codeTooManyQueries:
		return http.StatusServiceUnavailable
	case codeSyntaxError, codeSupportIsDisabled, codeSettingConstraintViolation, codeUnknownQueryParameter, codeCannotDecompress,
		6, 16, 26, 27, 32, 33, 36, 38, 41, 42, 43, 44, 46, 47, 53, 73, 115, 117:
		// SYNTAX_ERROR ..., CANNOT_PARSE_*, NO_SUCH_COLUMN_IN_TABLE, BAD_ARGUMENTS,
		// argument and type errors, UNKNOWN_FUNCTION/IDENTIFIER/FORMAT/SETTING,
		// INCORRECT_DATA.
		return http.StatusBadRequest
	}
	return http.StatusInternalServerError
}
