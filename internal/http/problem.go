package http

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"

	"github.com/cloudmedical/pulse/internal/pulse"
)

// statusOf maps each domain error code to its HTTP status: the one place where this is decided.
var statusOf = map[string]int{
	pulse.EINVALID:       http.StatusBadRequest,
	pulse.EUNPROCESSABLE: http.StatusUnprocessableEntity,
	pulse.ENOTFOUND:      http.StatusNotFound,
	pulse.ECONFLICT:      http.StatusConflict,
	pulse.ETOOLARGE:      http.StatusRequestEntityTooLarge,
	pulse.EUNAVAILABLE:   http.StatusServiceUnavailable,
	pulse.EINTERNAL:      http.StatusInternalServerError,
}

// Problem is an RFC 9457 problem details object, with Pulse's extension members.
type Problem struct {
	Type      string `json:"type"`
	Title     string `json:"title"`
	Status    int    `json:"status"`
	Detail    string `json:"detail"`
	Instance  string `json:"instance,omitempty"`
	Code      string `json:"code"`
	Field     string `json:"field,omitempty"`
	Row       int    `json:"row,omitempty"`
	RequestID string `json:"request_id,omitempty"`
}

// writeError answers with the problem details for err. Internal errors are logged with their
// full text and shown to the client only as "internal error".
func writeError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	code := pulse.ErrorCode(err)
	status, ok := statusOf[code]
	if !ok {
		status = http.StatusInternalServerError
	}
	p := Problem{
		Type:      "urn:pulse:problem:" + code,
		Title:     http.StatusText(status),
		Status:    status,
		Detail:    pulse.ErrorMessage(err),
		Instance:  r.URL.Path,
		Code:      code,
		RequestID: requestID(r.Context()),
	}
	var e *pulse.Error
	if errors.As(err, &e) {
		p.Field, p.Row = e.Field, e.Row
	}
	if status >= 500 {
		log.ErrorContext(r.Context(), "request failed", "err", err, "path", r.URL.Path, "request_id", p.RequestID)
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(p)
}

// writeJSON answers with v as JSON.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, `{"title":"internal error"}`, http.StatusInternalServerError)
		return
	}
	writeRawJSON(w, status, b)
}

func writeRawJSON(w http.ResponseWriter, status int, b []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
