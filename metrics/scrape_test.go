package metrics

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Scrape is one answer of a /metrics endpoint, fetched over HTTP as
// Prometheus fetches it and parsed with Prometheus' own parser. It is
// exported for the package's external tests.
type Scrape struct {
	Body     []byte
	Families map[string]*dto.MetricFamily
}

// ScrapeURL fetches url with token as bearer token ("" for none) and
// fails t unless it answers 200 with a text exposition that parses.
func ScrapeURL(t testing.TB, url, token string) Scrape {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s = %d: %s", url, resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("GET %s: Content-Type %q, want the text exposition format", url, ct)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("GET %s: the answer does not parse: %v", url, err)
	}
	return Scrape{Body: body, Families: fams}
}

// Series counts the samples of the scrape: every line that is not a
// comment, which is what Prometheus stores a series for.
func (s Scrape) Series() int {
	n := 0
	for line := range bytes.Lines(s.Body) {
		if len(bytes.TrimSpace(line)) > 0 && line[0] != '#' {
			n++
		}
	}
	return n
}

// Value adds up the values of family's metrics whose labels include
// labels (name, value pairs): a counter's or gauge's value, a histogram's
// sample count. found is false when no metric matched.
func (s Scrape) Value(family string, labels ...string) (sum float64, found bool) {
	f := s.Families[family]
	if f == nil {
		return 0, false
	}
	for _, m := range f.GetMetric() {
		if !hasLabels(m, labels) {
			continue
		}
		found = true
		switch {
		case m.GetCounter() != nil:
			sum += m.GetCounter().GetValue()
		case m.GetGauge() != nil:
			sum += m.GetGauge().GetValue()
		case m.GetHistogram() != nil:
			sum += float64(m.GetHistogram().GetSampleCount())
		case m.GetUntyped() != nil:
			sum += m.GetUntyped().GetValue()
		}
	}
	return sum, found
}

// LabelValues returns the values label takes in family.
func (s Scrape) LabelValues(family, label string) map[string]bool {
	out := map[string]bool{}
	for _, m := range s.Families[family].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == label {
				out[l.GetValue()] = true
			}
		}
	}
	return out
}

func hasLabels(m *dto.Metric, pairs []string) bool {
	for i := 0; i+1 < len(pairs); i += 2 {
		ok := false
		for _, l := range m.GetLabel() {
			if l.GetName() == pairs[i] && l.GetValue() == pairs[i+1] {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}
