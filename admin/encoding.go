package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"slices"
	"strings"

	"github.com/gin-gonic/gin"
)

// Media types the admin API reads. PATCH also takes JSON merge patches
// (RFC 7396), which is what its bodies are.
const (
	mediaJSON       = "application/json"
	mediaMergePatch = "application/merge-patch+json"
)

func jsonEncode(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

func (s *Server) writeJSON(c *gin.Context, status int, v any) {
	c.Header("Content-Type", "application/json; charset=utf-8")
	c.Header("Cache-Control", "no-store")
	c.Status(status)
	if err := jsonEncode(c.Writer, v); err != nil {
		s.log.WarnContext(c.Request.Context(), "write admin response", "err", err)
	}
}

// validator is a request body that checks its own fields.
type validator interface{ Valid() error }

// read decodes the request body into v and validates it. On failure it
// answers the client itself and returns false.
func (s *Server) read(c *gin.Context, v validator, mediaTypes ...string) bool {
	err := decode(c.Request, v, mediaTypes...)
	if err == nil {
		err = v.Valid()
	}
	if err != nil {
		s.respondError(c, err)
		return false
	}
	return true
}

// decode reads exactly one JSON object into dst and maps every client
// mistake to its status: 415 for another media type, 413 for a body too
// large, 400 for anything that is not one JSON object, 422 for an unknown
// field or a field of the wrong type.
func decode(r *http.Request, dst any, mediaTypes ...string) error {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || !slices.Contains(mediaTypes, mt) {
		return newRequestError(http.StatusUnsupportedMediaType, "unsupported-media-type", "Unsupported media type",
			"Send the body as "+strings.Join(mediaTypes, " or ")+".")
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	err = dec.Decode(dst)
	if err == nil {
		if _, terr := dec.Token(); !errors.Is(terr, io.EOF) {
			err = errors.New("trailing data")
		}
	}
	var (
		syn *json.SyntaxError
		typ *json.UnmarshalTypeError
		mb  *http.MaxBytesError
	)
	malformed := func(detail string) error {
		return newRequestError(http.StatusBadRequest, "malformed-json", "Malformed JSON", detail)
	}
	switch {
	case err == nil:
		return nil
	case errors.As(err, &mb):
		return errTooLarge
	case errors.As(err, &typ) && typ.Field != "":
		return invalid(FieldError{Field: typ.Field, Message: "must be a JSON " + jsonKind(typ.Type)})
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return invalid(FieldError{Field: field, Message: "is not a field of this request"})
	case errors.As(err, &syn):
		return malformed(fmt.Sprintf("The body is not valid JSON (at byte %d).", syn.Offset))
	case errors.Is(err, io.EOF):
		return malformed("The body is empty; send a JSON object.")
	default:
		return malformed("The body must be exactly one JSON object.")
	}
}

// jsonKind names the JSON type a Go value of type t is read from.
func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "whole number"
	case reflect.Slice, reflect.Array:
		return "array"
	}
	return "value of another type"
}
