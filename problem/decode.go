package problem

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"os"
	"reflect"
	"slices"
	"strings"
)

// MediaType returns the media type of r's body when it is one of
// allowed, and otherwise a 415 that says to send the noun ("body",
// "form") as one of them.
func MediaType(r *http.Request, noun string, allowed ...string) (string, error) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || !slices.Contains(allowed, mt) {
		return "", New(http.StatusUnsupportedMediaType, "unsupported-media-type", "Unsupported media type",
			"Send the "+noun+" as "+strings.Join(allowed, " or ")+".")
	}
	return mt, nil
}

// ErrBodyTimeout answers a body that did not arrive before the server's
// read deadline (server.read_timeout): a client sending too slowly, or one
// that stalled part way. It is the client's to retry, faster.
var ErrBodyTimeout = New(http.StatusRequestTimeout, "request-timeout", "Request timeout",
	"The request body arrived too slowly; send the request again.")

// BodyError returns the problem for a request body that its decoder
// refused with err, when the fault is not in the body's content: ErrTooLarge
// for a body past the http.MaxBytesReader limit, ErrBodyTimeout for a body
// that hit the connection's read deadline. It returns nil when the content
// is to blame, for the caller to answer as its own format's mistake
// (malformed JSON, a malformed form).
//
// The limits win over the content, and wherever they are crossed: before
// giving its verdict, BodyError reads what is left of body and discards
// it, so a body that is malformed at its first byte and over the limit
// after it is a 413, and one that stalls after a mistake is a 408. body
// must therefore be bounded, by http.MaxBytesReader and by the server's
// read deadline, as every body the servers hand to handlers is.
func BodyError(body io.Reader, err error) *Error {
	if pe := limitError(err); pe != nil {
		return pe
	}
	_, err = io.Copy(io.Discard, body)
	return limitError(err)
}

// limitError returns the problem for err when err is a reader's report of
// a limit (MaxBytesError, a deadline), and nil otherwise. The decoders
// (encoding/json, net/url, mime/multipart) pass these errors up unchanged
// or wrapped, where a client could take them for a syntax error.
func limitError(err error) *Error {
	var (
		mb *http.MaxBytesError
		ne net.Error
	)
	switch {
	case err == nil:
		return nil
	case errors.As(err, &mb):
		return ErrTooLarge
	case errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return ErrBodyTimeout
	}
	return nil
}

// DecodeJSON reads exactly one JSON object from r's body into dst. It
// answers the client's mistakes with the right status: 415 for a media
// type not in mediaTypes, 413 for a body over the http.MaxBytesReader
// limit, 408 for a body that did not arrive before the read deadline, 400
// for anything that is not one JSON object, and 422 for unknown fields and
// fields of the wrong type. The 422 lists every such field, not only the
// first, so a client can fix its body in one go; dst is then only partly
// filled, and callers may still validate what it holds to report the other
// fields' mistakes in the same answer.
//
// The size and the time limits win over the content: a body is read to its
// end before it is called malformed, so one over the limit is a 413
// wherever the excess lies (inside the value, in whitespace after it, after
// a syntax error), chunked or not. r.Body is therefore expected to be
// bounded by http.MaxBytesReader, as both servers' limitBody does, and by
// the server's read deadline.
func DecodeJSON(r *http.Request, dst any, mediaTypes ...string) error {
	if _, err := MediaType(r, "body", mediaTypes...); err != nil {
		return err
	}
	// The body is checked as JSON as a whole first, so a syntax error is a
	// 400 however many fields precede it; only a well-formed object is
	// then read field by field.
	dec := json.NewDecoder(r.Body)
	var raw json.RawMessage
	err := dec.Decode(&raw)
	if err == nil {
		// Reading on to the end of the body is what finds a limit crossed
		// in the whitespace after the value: Token then fails with the
		// reader's own error, kept in the chain for refused to find.
		if _, terr := dec.Token(); !errors.Is(terr, io.EOF) {
			err = errors.Join(errTrailing, terr)
		}
	}
	if err != nil {
		return refused(r.Body, err)
	}
	// Most bodies are right: one strict decode settles them. Only a body
	// it refuses is gone through member by member to name every bad
	// field. (The '{' check keeps `null`, which decodes into anything
	// without complaint, for decodeFields to refuse.)
	if bytes.HasPrefix(raw, []byte("{")) && strictDecode(raw, dst) == nil {
		return nil
	}
	fields, ok := decodeFields(raw, dst)
	if !ok {
		return malformed("The body must be exactly one JSON object.")
	}
	if len(fields) > 0 {
		return Invalid(fields...)
	}
	return nil
}

// errTrailing is a JSON value followed by more than whitespace.
var errTrailing = errors.New("trailing data after the JSON object")

// malformed is a 400 for a body that is not one JSON object.
func malformed(detail string) *Error {
	return New(http.StatusBadRequest, "malformed-json", "Malformed JSON", detail)
}

// refused answers a body that DecodeJSON could not read as one JSON value
// because of err: a 413 or 408 when BodyError finds one, a 400 otherwise.
func refused(body io.Reader, err error) error {
	if pe := BodyError(body, err); pe != nil {
		return pe
	}
	var syn *json.SyntaxError
	switch {
	case errors.Is(err, errTrailing):
		return malformed("The body must be exactly one JSON object.")
	case errors.As(err, &syn):
		return malformed(fmt.Sprintf("The body is not valid JSON (at byte %d).", syn.Offset))
	case errors.Is(err, io.EOF):
		return malformed("The body is empty; send a JSON object.")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return malformed("The body ends in the middle of the JSON object.")
	}
	return malformed("The body must be exactly one JSON object.")
}

// strictDecode decodes raw into dst, refusing unknown fields.
func strictDecode(raw []byte, dst any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	return dec.Decode(dst)
}

// decodeFields decodes the object raw into dst one member at a time, so
// that one member of the wrong type or an unknown one does not hide the
// next: each member is decoded as an object of its own, by encoding/json
// with its usual rules (field tags, case-insensitive names, later
// duplicates winning). It returns one error per bad field, in the order of
// the body, and false when raw is not an object.
func decodeFields(raw json.RawMessage, dst any) ([]FieldError, bool) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, false
	}
	var fields []FieldError
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		key, isKey := tok.(string)
		var value json.RawMessage
		if err != nil || !isKey || dec.Decode(&value) != nil {
			return nil, false // cannot happen: raw is one valid JSON value
		}
		member, err := json.Marshal(map[string]json.RawMessage{key: value})
		if err != nil {
			return nil, false
		}
		if err := strictDecode(member, dst); err != nil {
			if fe := fieldError(key, err); !seen[fe.Field] {
				seen[fe.Field] = true
				fields = append(fields, fe)
			}
		}
	}
	return fields, true
}

// fieldError says what is wrong with the member key that err refused.
func fieldError(key string, err error) FieldError {
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &typ):
		field := typ.Field // the path to a nested field, when it is one
		if field == "" {
			field = key
		}
		return FieldError{Field: field, Message: "must be " + jsonKind(typ.Type)}
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		if field == "" {
			// A member named "" names no field; its JSON spelling does,
			// where an empty name would read as no field at all.
			field = `""`
		}
		return FieldError{Field: field, Message: "is not a known field"}
	}
	// A type's own UnmarshalJSON refused the value.
	return FieldError{Field: key, Message: "is not a valid value"}
}

// jsonKind names, with its article, the JSON type a Go value of type t is
// read from.
func jsonKind(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Map, reflect.Struct:
		return "an object"
	}
	return "a value of another type"
}
