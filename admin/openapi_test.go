package admin_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"tenantry/admin"
	"tenantry/internal/testenv"
)

// TestOpenAPIDocument checks GET /admin/openapi.yaml: the document given in
// Deps, only with the token, and 404 for a server built without one.
func TestOpenAPIDocument(t *testing.T) {
	spec := []byte("openapi: 3.1.0\n")
	for _, tc := range []struct {
		name        string
		spec        []byte
		auth        string
		status      int
		contentType string
	}{
		{"with the token", spec, "Bearer " + token, http.StatusOK, "application/yaml"},
		{"without the token", spec, "", http.StatusUnauthorized, "application/problem+json"},
		{"with a wrong token", spec, "Bearer wrong", http.StatusUnauthorized, "application/problem+json"},
		{"no document", nil, "Bearer " + token, http.StatusNotFound, "application/problem+json"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, err := admin.NewServer(admin.Deps{Log: testenv.Logger(t), Token: token, OpenAPI: tc.spec})
			if err != nil {
				t.Fatal(err)
			}
			req := httptest.NewRequest(http.MethodGet, "/admin/openapi.yaml", nil)
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			rec := httptest.NewRecorder()
			srv.ServeHTTP(rec, req)
			body, _ := io.ReadAll(rec.Body)
			if rec.Code != tc.status || rec.Header().Get("Content-Type") != tc.contentType {
				t.Fatalf("status %d, Content-Type %q; want %d, %q: %s", rec.Code, rec.Header().Get("Content-Type"), tc.status, tc.contentType, body)
			}
			if tc.status == http.StatusOK && string(body) != string(spec) {
				t.Errorf("body = %q, want the document %q", body, spec)
			}
			if tc.status != http.StatusOK && string(body) == string(spec) {
				t.Errorf("the document was served with status %d", tc.status)
			}
		})
	}
}
