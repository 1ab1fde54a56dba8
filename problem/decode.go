package problem

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
)

// DecodeJSON reads exactly one JSON object from r's body into dst. It
// answers the client's mistakes with the right status: 415 for a media
// type not in mediaTypes, 413 for a body over the http.MaxBytesReader
// limit, 400 for anything that is not one JSON object, and 422 for an
// unknown field or a field of the wrong type.
func DecodeJSON(r *http.Request, dst any, mediaTypes ...string) error {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || !slices.Contains(mediaTypes, mt) {
		return New(http.StatusUnsupportedMediaType, "unsupported-media-type", "Unsupported media type",
			"Send the body as "+strings.Join(mediaTypes, " or ")+".")
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	err = dec.Decode(dst)
	if err == nil {
		if _, terr := dec.Token(); !errors.Is(terr, io.EOF) {
			err = errors.New("trailing data after the JSON object")
		}
	}
	var (
		syn *json.SyntaxError
		typ *json.UnmarshalTypeError
		mb  *http.MaxBytesError
	)
	malformed := func(detail string) error {
		return New(http.StatusBadRequest, "malformed-json", "Malformed JSON", detail)
	}
	switch {
	case err == nil:
		return nil
	case errors.As(err, &mb):
		return ErrTooLarge
	case errors.As(err, &typ) && typ.Field != "":
		return Invalid(FieldError{Field: typ.Field, Message: "must be a " + jsonKind(typ.Type)})
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return Invalid(FieldError{Field: field, Message: "is not a known field"})
	case errors.As(err, &syn):
		return malformed(fmt.Sprintf("The body is not valid JSON (at byte %d).", syn.Offset))
	case errors.Is(err, io.EOF):
		return malformed("The body is empty; send a JSON object.")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return malformed("The body ends in the middle of the JSON object.")
	default:
		return malformed("The body must be exactly one JSON object.")
	}
}

// jsonKind names the JSON type a Go value of type t is read from.
func jsonKind(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "whole number"
	case reflect.Float32, reflect.Float64:
		return "number"
	case reflect.Slice, reflect.Array:
		return "array"
	case reflect.Map, reflect.Struct:
		return "object"
	}
	return "value of another type"
}
