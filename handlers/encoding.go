package handlers

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"tenantry/models"
)

func jsonEncode(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

func (s *Server) writeJSON(c *gin.Context, status int, v any) {
	c.Header("Content-Type", "application/json; charset=utf-8")
	c.Status(status)
	if err := jsonEncode(c.Writer, v); err != nil {
		s.Log.WarnContext(c.Request.Context(), "write response", "err", err)
	}
}

// decodeJSON reads one JSON object into dst. It answers the client's
// mistakes with the right status: 415 for another media type, 413 for a
// body too large, 400 for malformed JSON, 422 for a field of the wrong
// type or an unknown field.
func decodeJSON(r *http.Request, dst any, mediaTypes ...string) error {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || !contains(mediaTypes, mt) {
		return &requestError{status: http.StatusUnsupportedMediaType, slug: "unsupported-media-type",
			title: "Unsupported media type", detail: "Send the body as " + strings.Join(mediaTypes, " or ") + "."}
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
	switch {
	case err == nil:
		return nil
	case errors.As(err, &mb):
		return errTooLarge
	case errors.As(err, &typ) && typ.Field != "":
		return &models.ValidationError{Fields: []models.FieldError{{Field: typ.Field, Message: "must be a " + jsonKind(typ.Type.String())}}}
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return &models.ValidationError{Fields: []models.FieldError{{Field: field, Message: "is not a known field"}}}
	case errors.As(err, &syn):
		return badRequest("malformed-json", "Malformed JSON", fmt.Sprintf("The body is not valid JSON (at byte %d).", syn.Offset))
	case errors.Is(err, io.EOF):
		return badRequest("malformed-json", "Malformed JSON", "The body is empty; send a JSON object.")
	case errors.As(err, &typ):
		return badRequest("malformed-json", "Malformed JSON", "The body must be a JSON object.")
	default:
		return badRequest("malformed-json", "Malformed JSON", "The body is not a valid JSON object.")
	}
}

func jsonKind(goType string) string {
	switch {
	case strings.Contains(goType, "string"):
		return "string"
	case strings.Contains(goType, "int"), strings.Contains(goType, "float"):
		return "number"
	default:
		return "value of another type"
	}
}

func badRequest(slug, title, detail string, fields ...models.FieldError) error {
	return &requestError{status: http.StatusBadRequest, slug: slug, title: title, detail: detail, fields: fields}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// paging reads ?limit= and ?offset=, refusing values out of range rather
// than silently clamping them.
func paging(c *gin.Context, defaultLimit int) (limit, offset int, err error) {
	var fields []models.FieldError
	limit, offset = defaultLimit, 0
	if v, ok := c.GetQuery("limit"); ok {
		n, convErr := strconv.Atoi(v)
		if convErr != nil || n < 1 || n > models.MaxLimit {
			fields = append(fields, models.FieldError{Field: "limit", Message: fmt.Sprintf("must be a whole number from 1 to %d", models.MaxLimit)})
		}
		limit = n
	}
	if v, ok := c.GetQuery("offset"); ok {
		n, convErr := strconv.Atoi(v)
		if convErr != nil || n < 0 {
			fields = append(fields, models.FieldError{Field: "offset", Message: "must be a whole number, 0 or more"})
		}
		offset = n
	}
	if fields != nil {
		return 0, 0, badRequest("invalid-query", "Invalid query parameters", "One or more query parameters are invalid.", fields...)
	}
	return limit, offset, nil
}

// userID parses the :id path parameter; anything but a positive integer
// names no user.
func userID(c *gin.Context) (uint64, error) {
	id, err := strconv.ParseUint(c.Param("id"), 10, 63)
	if err != nil || id == 0 {
		return 0, errUserNotFound
	}
	return id, nil
}
