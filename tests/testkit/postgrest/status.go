package postgrest

import (
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// Status is the HTTP status PostgREST 12 answers a request with, given what the database
// returned: 200 without an error, else its documented mapping of SQLSTATEs to statuses
// (docs.postgrest.org, Errors, "HTTP Status Codes"; src/PostgREST/Error.hs, mapSQLtoHTTP).
// authed is whether the request carried a valid token (42501 is 403 then, 401 without).
// An error that is no database error (the connection broke) is 503, as PostgREST's client
// errors are.
func Status(err error, authed bool) int {
	if err == nil {
		return http.StatusOK
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return http.StatusServiceUnavailable
	}
	return StatusOf(pgErr.Code, pgErr.Message, authed)
}

// StatusOf maps one SQLSTATE (and, where PostgREST looks at it, the message) to the status.
func StatusOf(code, message string, authed bool) int {
	switch code {
	case "23503", "23505":
		return http.StatusConflict
	case "25006":
		return http.StatusMethodNotAllowed
	case "21000":
		if strings.HasSuffix(message, "requires a WHERE clause") {
			return http.StatusBadRequest
		}
		return http.StatusInternalServerError
	case "22023":
		if strings.HasPrefix(message, "role") && strings.HasSuffix(message, "does not exist") {
			return http.StatusUnauthorized
		}
		return http.StatusBadRequest
	case "53400":
		return http.StatusInternalServerError
	case "57P01":
		return http.StatusServiceUnavailable
	case "P0001":
		return http.StatusBadRequest
	case "42883":
		if strings.HasPrefix(message, "function xmlagg(") {
			return http.StatusNotAcceptable
		}
		return http.StatusNotFound
	case "42P01":
		return http.StatusNotFound
	case "42P17":
		return http.StatusInternalServerError
	case "42501":
		if authed {
			return http.StatusForbidden
		}
		return http.StatusUnauthorized
	}
	if len(code) < 2 {
		return http.StatusBadRequest
	}
	switch code[:2] {
	case "08", "53":
		return http.StatusServiceUnavailable
	case "0L", "0P", "28":
		return http.StatusForbidden
	case "09", "25", "2D", "38", "39", "3B", "40", "54", "55", "57", "58", "F0", "HV", "P0", "XX":
		return http.StatusInternalServerError
	case "PT":
		// A custom status: PTnnn answers nnn (500 when nnn is no number).
		if n, err := strconv.Atoi(code[2:]); err == nil {
			return n
		}
		return http.StatusInternalServerError
	}
	return http.StatusBadRequest
}
