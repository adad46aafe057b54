package portal

import (
	"fmt"
	"math"
	"net/http"
	"net/url"
	"time"
)

// usageAnswer is GET /api/v1/usage.
type usageAnswer struct {
	From    string        `json:"from"`
	To      string        `json:"to"`
	Step    string        `json:"step"`
	Buckets []usageBucket `json:"buckets"`
	Totals  usageBucket   `json:"totals"`
}

type usageBucket struct {
	Start        string  `json:"start"`
	Requests     int64   `json:"requests"`
	Errors       int64   `json:"errors"`
	Throttled    int64   `json:"throttled"`
	LatencyAvgMs float64 `json:"latencyAvgMs"`
}

// usageRange is a period the charts offer and the step that keeps it
// under 200 bars.
type usageRange struct {
	Key, Label string
	Period     time.Duration
	Step       string
}

var usageRanges = []usageRange{
	{"1h", "Last hour", time.Hour, "1m"},
	{"24h", "Last 24 hours", 24 * time.Hour, "15m"},
	{"7d", "Last 7 days", 7 * 24 * time.Hour, "1h"},
}

// usageView is the charts of an application's page.
type usageView struct {
	Range    string
	Ranges   []usageRange
	API      string
	APIs     []string
	Totals   usageBucket
	Requests chart
	Latency  chart
	Err      string
}

// chart is an SVG chart drawn on the server: no script, and the figures
// are also in a table for screen readers and tests.
type chart struct {
	Title         string
	Width, Height float64
	Bars          []bar
	Line          string // polyline points
	YMax          string
	XStart, XEnd  string
	Rows          []usageBucket
	Empty         bool
}

type bar struct {
	X, Y, W, H float64
	Class      string
	Label      string
}

const chartW, chartH = 640.0, 160.0

func (p *Portal) usage(rq *request, app, api, rangeKey string, subs []subscriptionRecord) usageView {
	v := usageView{Ranges: usageRanges, API: api, Range: usageRanges[0].Key}
	for _, s := range subs {
		v.APIs = append(v.APIs, s.API)
	}
	r := usageRanges[0]
	for _, c := range usageRanges {
		if c.Key == rangeKey {
			r, v.Range = c, c.Key
		}
	}
	step, _ := time.ParseDuration(r.Step)
	to := p.now().UTC().Truncate(step).Add(step)
	q := url.Values{"application": {app}, "from": {to.Add(-r.Period).Format(time.RFC3339)}, "to": {to.Format(time.RFC3339)}, "step": {r.Step}}
	if api != "" {
		q.Set("api", api)
	}
	var ans usageAnswer
	if err := p.api.do(rq.ctx(), rq.who, http.MethodGet, "/usage", q, nil, &ans); err != nil {
		v.Err = "Usage is not available: " + err.Error()
		return v
	}
	v.Totals = ans.Totals
	v.Requests, v.Latency = requestChart(ans), latencyChart(ans)
	return v
}

func requestChart(ans usageAnswer) chart {
	c := chart{Title: "Requests", Width: chartW, Height: chartH, Rows: nonEmpty(ans.Buckets)}
	n := len(ans.Buckets)
	if n == 0 {
		c.Empty = true
		return c
	}
	var top int64
	for _, b := range ans.Buckets {
		top = max(top, b.Requests)
	}
	c.Empty = top == 0
	top = max(top, 1)
	c.YMax = fmt.Sprint(top)
	w := chartW / float64(n)
	for i, b := range ans.Buckets {
		x := float64(i) * w
		ok := b.Requests - b.Errors - b.Throttled
		y := chartH
		for _, part := range []struct {
			n     int64
			class string
			what  string
		}{{ok, "ok", "succeeded"}, {b.Errors, "error", "errors"}, {b.Throttled, "throttled", "throttled"}} {
			if part.n <= 0 {
				continue
			}
			h := float64(part.n) / float64(top) * chartH
			y -= h
			c.Bars = append(c.Bars, bar{X: round(x), Y: round(y), W: round(math.Max(w-1, 1)), H: round(h), Class: part.class,
				Label: fmt.Sprintf("%s: %d %s", when(b.Start), part.n, part.what)})
		}
	}
	c.XStart, c.XEnd = when(ans.From), when(ans.To)
	return c
}

func latencyChart(ans usageAnswer) chart {
	c := chart{Title: "Average latency (ms)", Width: chartW, Height: chartH}
	n := len(ans.Buckets)
	var top float64
	for _, b := range ans.Buckets {
		top = math.Max(top, b.LatencyAvgMs)
	}
	c.Empty = top == 0
	if n == 0 || c.Empty {
		return c
	}
	c.YMax = fmt.Sprintf("%.1f", top)
	w := chartW / float64(n)
	for i, b := range ans.Buckets {
		c.Line += fmt.Sprintf("%.1f,%.1f ", float64(i)*w+w/2, chartH-b.LatencyAvgMs/top*chartH)
	}
	c.XStart, c.XEnd = when(ans.From), when(ans.To)
	return c
}

func nonEmpty(bs []usageBucket) []usageBucket {
	var out []usageBucket
	for _, b := range bs {
		if b.Requests > 0 {
			out = append(out, b)
		}
	}
	return out
}

func round(f float64) float64 { return math.Round(f*10) / 10 }
