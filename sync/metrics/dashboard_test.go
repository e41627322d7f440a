package metrics

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// dashboardPath is the Grafana dashboard shipped in packaging/.
const dashboardPath = "../../packaging/grafana/chatsync-dashboard.json"

// dashboard is the part of a Grafana dashboard the tests read.
type dashboard struct {
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query any    `json:"query"` // a string, or an object with "query"
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID         int        `json:"id"`
	Type       string     `json:"type"`
	Title      string     `json:"title"`
	Datasource datasource `json:"datasource"`
	Targets    []target   `json:"targets"`
	Panels     []panel    `json:"panels"` // of a collapsed row
}

type target struct {
	Datasource datasource `json:"datasource"`
	Expr       string     `json:"expr"`
}

type datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

func loadDashboard(t *testing.T) dashboard {
	t.Helper()
	b, err := os.ReadFile(dashboardPath)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s is not valid JSON: %v", dashboardPath, err)
	}
	return d
}

// allPanels flattens the rows.
func allPanels(ps []panel) []panel {
	var out []panel
	for _, p := range ps {
		out = append(out, p)
		out = append(out, allPanels(p.Panels)...)
	}
	return out
}

// exprs returns every query of the dashboard, by panel title.
func exprs(d dashboard) map[string][]string {
	out := map[string][]string{}
	for _, p := range allPanels(d.Panels) {
		for _, tg := range p.Targets {
			out[p.Title] = append(out[p.Title], tg.Expr)
		}
	}
	return out
}

// selector is a metric name with its label matchers, if any.
var selector = regexp.MustCompile(`chatsync_[a-z_]+(\{[^}]*\})?`)

func TestDashboardQueriesNameRealMetrics(t *testing.T) {
	d := loadDashboard(t)
	served := scrape(t, newHandler(fullSource(), clock))
	used := map[string]bool{}
	for title, es := range exprs(d) {
		for _, e := range es {
			ms := selector.FindAllStringSubmatch(e, -1)
			if len(ms) == 0 {
				t.Errorf("panel %q: query %q reads no chatsync metric", title, e)
			}
			for _, m := range ms {
				name := strings.TrimSuffix(m[0], m[1])
				used[name] = true
				f := served[name]
				if f == nil {
					t.Errorf("panel %q: %s is not a metric the handler serves", title, name)
					continue
				}
				// The account variable must filter every per-account series.
				_, perAccount := labelsOf(f.Metric[0])["account"]
				if perAccount && !strings.Contains(m[1], `account=~"$account"`) {
					t.Errorf("panel %q: %s is not filtered by $account in %q", title, name, e)
				}
			}
		}
	}
	// The metrics SPEC §8b names are all on the dashboard.
	for _, name := range []string{
		"chatsync_outbox_depth", "chatsync_push_entries_total", "chatsync_poll_rows_total",
		"chatsync_skipped_rows_total", "chatsync_last_poll_success_timestamp_seconds", "chatsync_device_behind",
	} {
		if !used[name] {
			t.Errorf("%s is not on the dashboard", name)
		}
	}
}

func TestDashboardIsAGrafanaDashboardWithPanelsAndVariables(t *testing.T) {
	d := loadDashboard(t)
	if d.SchemaVersion < 36 {
		t.Errorf("schemaVersion %d, want at least 36", d.SchemaVersion)
	}
	ids := map[int]bool{}
	graphs := 0
	for _, p := range allPanels(d.Panels) {
		if ids[p.ID] {
			t.Errorf("panel id %d repeats", p.ID)
		}
		ids[p.ID] = true
		if p.Type == "row" {
			continue
		}
		graphs++
		if p.Title == "" || len(p.Targets) == 0 {
			t.Errorf("panel %d (%q): no title or no query", p.ID, p.Title)
		}
		for _, tg := range append([]target{{Datasource: p.Datasource}}, p.Targets...) {
			if tg.Datasource.UID != "${datasource}" {
				t.Errorf("panel %q: data source %+v, want the ${datasource} variable", p.Title, tg.Datasource)
			}
		}
	}
	if graphs < 10 {
		t.Errorf("%d panels, want at least 10", graphs)
	}

	vars := map[string]string{}
	for _, v := range d.Templating.List {
		q, _ := v.Query.(string)
		if m, ok := v.Query.(map[string]any); ok {
			q, _ = m["query"].(string)
		}
		vars[v.Name] = v.Type + " " + q
	}
	want := map[string]string{
		"datasource": "datasource prometheus",
		"account":    "query label_values(chatsync_outbox_depth, account)",
	}
	for name, w := range want {
		if vars[name] != w {
			t.Errorf("variable %s = %q, want %q", name, vars[name], w)
		}
	}
	// The panels the dashboard is for.
	var titles []string
	for _, p := range allPanels(d.Panels) {
		titles = append(titles, p.Title)
	}
	for _, w := range []string{"Outbox depth", "Oldest unsent entry age", "Time since last successful push / poll",
		"Entries pushed / rows applied per minute", "Skipped rows by reason (per minute)", "Bytes per second",
		"Failures and backoff", "Problem", "Stalled", "Versions not applied by other devices", "Other devices last seen"} {
		if !slices.Contains(titles, w) {
			t.Errorf("no panel %q", w)
		}
	}
}
