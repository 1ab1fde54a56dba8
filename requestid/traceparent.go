package requestid

// TraceParentHeader is the W3C Trace Context header TraceID reads.
const TraceParentHeader = "traceparent"

// traceParentLen is the length of a version 00 traceparent:
// "00-" + 32 hex digits + "-" + 16 hex digits + "-" + 2 hex digits.
const traceParentLen = 55

// TraceID returns the trace id (32 lowercase hex digits) of a W3C
// traceparent header value, and false when the value is not well formed:
// a version that is not two lowercase hex digits or is ff; a version 00
// value of any length but 55; a later version shorter than 55 or not
// followed by "-" (later versions may append fields, which are ignored);
// separators out of place; a trace id, parent id or flags that are not
// lowercase hex; an all-zero trace id or parent id. The result shares
// memory with value.
func TraceID(value string) (string, bool) {
	if len(value) < traceParentLen {
		return "", false
	}
	version := value[0:2]
	if !hex(version) || version == "ff" {
		return "", false
	}
	if version == "00" && len(value) != traceParentLen {
		return "", false
	}
	if len(value) > traceParentLen && value[traceParentLen] != '-' {
		return "", false
	}
	if value[2] != '-' || value[35] != '-' || value[52] != '-' {
		return "", false
	}
	trace, parent, flags := value[3:35], value[36:52], value[53:55]
	if !hex(trace) || !hex(parent) || !hex(flags) || zero(trace) || zero(parent) {
		return "", false
	}
	return trace, true
}

// hex reports whether s is lowercase hex digits only, as Trace Context
// writes every field.
func hex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// zero reports whether s is all zeros, which Trace Context reserves as
// invalid for both ids.
func zero(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] != '0' {
			return false
		}
	}
	return true
}
