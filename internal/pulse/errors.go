// Package pulse holds Pulse's domain types and the contracts that several packages share:
// datasets and their schemas, model versions with metrics and lineage, the storage interfaces
// that the metadata adapters implement, and the one error type that every layer returns.
//
// It imports only the standard library, so every other package may depend on it.
package pulse

import (
	"errors"
	"fmt"
)

// Error codes. The HTTP layer maps each code to a status in exactly one place.
const (
	EINVALID       = "invalid"       // the request is malformed (bad JSON, bad query parameter)
	EUNPROCESSABLE = "unprocessable" // well-formed but not acceptable (wrong type, bad row)
	ENOTFOUND      = "not_found"     // the named thing does not exist
	ECONFLICT      = "conflict"      // the request conflicts with the current state
	ETOOLARGE      = "too_large"     // the request body or batch is over a documented limit
	EUNAVAILABLE   = "unavailable"   // the service is shutting down or not ready
	EINTERNAL      = "internal"      // a bug or an infrastructure failure
)

// Error is Pulse's domain error. Field and Row, when set, point at the part of the input that
// is wrong: a JSON field or CSV column name, and a 1-based data row of a file.
type Error struct {
	Code    string
	Message string
	Field   string
	Row     int
}

func (e *Error) Error() string {
	return e.Message
}

// Errorf returns an *Error with the given code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// FieldErrorf returns an *Error about one named field (or column).
func FieldErrorf(code, field, format string, args ...any) *Error {
	return &Error{Code: code, Field: field, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first *Error in err's chain, EINTERNAL for any other
// non-nil error, and "" for nil.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the message of the first *Error in err's chain; for other errors it
// returns a generic text so that internal details never reach a client.
func ErrorMessage(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}
