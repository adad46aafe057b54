package admin

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"regexp"

	"github.com/tollgate/tollgate/internal/model"
	"github.com/tollgate/tollgate/internal/store"
)

// Error is the one error shape of the admin API:
// {"code": "...", "message": "...", "details": [...]}.
type Error struct {
	Status  int      `json:"-"`
	Code    string   `json:"code"`
	Message string   `json:"message"`
	Details []Detail `json:"details,omitempty"`
}

// Detail locates one problem of a request body.
type Detail struct {
	Path    string `json:"path,omitempty"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return e.Message }

// Error codes.
const (
	CodeInvalid            = "invalid"
	CodeUnauthenticated    = "unauthenticated"
	CodeForbidden          = "forbidden"
	CodeNotFound           = "notFound"
	CodeConflict           = "conflict"
	CodePreconditionFailed = "preconditionFailed"
	CodeTooLarge           = "tooLarge"
	CodeIdempotencyReused  = "idempotencyKeyReused"
	CodeInternal           = "internal"
)

func invalid(msg string, details ...Detail) *Error {
	return &Error{Status: http.StatusBadRequest, Code: CodeInvalid, Message: msg, Details: details}
}

func forbidden(msg string) *Error {
	return &Error{Status: http.StatusForbidden, Code: CodeForbidden, Message: msg}
}

func notFound(msg string) *Error {
	return &Error{Status: http.StatusNotFound, Code: CodeNotFound, Message: msg}
}

func conflict(msg string) *Error {
	return &Error{Status: http.StatusConflict, Code: CodeConflict, Message: msg}
}

// problems turns the data plane's validation problems into a 400.
func problems(what string, ps []model.Problem) *Error {
	e := invalid(what + " is not valid")
	for _, p := range ps {
		e.Details = append(e.Details, Detail{Path: p.Path, Message: p.Msg})
	}
	return e
}

// asError maps any error to the API's shape. Store errors carry only
// kinds and ids; anything unexpected is logged and answered as 500
// without its text.
func asError(err error, log *slog.Logger) *Error {
	var e *Error
	var claim *store.ClaimError
	switch {
	case errors.As(err, &e):
		return e
	case errors.As(err, &claim):
		return conflict(claim.Error())
	case errors.Is(err, store.ErrNotFound):
		return notFound(err.Error())
	case errors.Is(err, store.ErrExists):
		return conflict(err.Error())
	case errors.Is(err, store.ErrVersion):
		return &Error{Status: http.StatusPreconditionFailed, Code: CodePreconditionFailed,
			Message: err.Error() + ": it changed since it was read; read it again and retry"}
	}
	log.Error("admin API request failed", "error", redact(err.Error()))
	return &Error{Status: http.StatusInternalServerError, Code: CodeInternal, Message: "internal error; see the control plane's log"}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// keyLike is a whole key of Tollgate's format, wherever it appears.
var keyLike = regexp.MustCompile(`tg_([0-9a-z]{12})_[0-9A-Za-z]{38}`)

// redact keeps a key's id and drops its secret: an error may quote what
// a caller sent, and a caller may send a key where it does not belong.
func redact(s string) string { return keyLike.ReplaceAllString(s, "tg_${1}_…") }

func writeError(w http.ResponseWriter, e *Error) {
	red := *e
	red.Message = redact(e.Message)
	red.Details = make([]Detail, len(e.Details))
	for i, d := range e.Details {
		red.Details[i] = Detail{Path: redact(d.Path), Message: redact(d.Message)}
	}
	e = &red
	if e.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="tollgate"`)
	}
	writeJSON(w, e.Status, e)
}
