package metrics_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"tenantry/internal/testenv"
	"tenantry/metrics"
)

// deployFiles are the Prometheus files shipped under deploy/prometheus.
var deployFiles = []string{"prometheus.yml", "alerts.yml", "alerts_test.yml"}

// TestDeployPrometheus checks the shipped Prometheus files with promtool,
// as an operator's Prometheus would load them: the configuration (with a
// token file beside it, which it names), the alert rules, and the rules'
// unit tests (alerts_test.yml), in which each alert fires on the failure
// it names and stays quiet otherwise. promtool is Debian's prometheus
// package; the test is skipped without it, and fails under CI=true.
func TestDeployPrometheus(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	testenv.RequireTool(t, "promtool", err == nil)
	dir := t.TempDir()
	src := filepath.Join(testenv.ModuleRoot(t), "deploy", "prometheus")
	for _, name := range deployFiles {
		b, err := os.ReadFile(filepath.Join(src, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "tenantry-metrics-token"), []byte("a-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"check", "config", "prometheus.yml"},
		{"check", "rules", "alerts.yml"},
		{"test", "rules", "alerts_test.yml"},
	} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// TestAlertsNameRealMetrics holds every tenantry metric the alert rules
// name to a real scrape, so that a renamed metric cannot leave an alert
// that never fires (promtool checks syntax, not names).
func TestAlertsNameRealMetrics(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(testenv.ModuleRoot(t), "deploy", "prometheus", "alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	_, url := busyFleet(t, 10, 5)
	s := metrics.ScrapeURL(t, url, "")
	named := regexp.MustCompile(`tenantry_[a-z_]+`).FindAllString(string(b), -1)
	if len(named) == 0 {
		t.Fatal("alerts.yml names no tenantry metric")
	}
	for _, name := range named {
		family := name
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(name, suffix); ok && s.Families[base] != nil {
				family = base
			}
		}
		if s.Families[family] == nil {
			t.Errorf("alerts.yml names %s, which /metrics does not serve", name)
		}
	}
}
