package adminclient

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"text/tabwriter"
	"time"
)

// usageSteps are the API's bucket sizes.
var usageSteps = map[string]time.Duration{"1m": time.Minute, "5m": 5 * time.Minute, "15m": 15 * time.Minute, "1h": time.Hour, "1d": 24 * time.Hour}

// usage prints GET /api/v1/usage: a row per bucket and the totals.
func (x *cli) usage(args []string) error {
	fs := newFlags("usage")
	app := fs.String("application", "", "")
	fs.StringVar(app, "app", "", "")
	api := fs.String("api", "", "")
	since := fs.String("since", "1h", "")
	step := fs.String("step", "1m", "")
	args = slices.DeleteFunc(args, func(s string) bool { return s == "" })
	if _, err := flags(fs, args, 0); err != nil {
		return err
	}
	d, err := time.ParseDuration(*since)
	if err != nil || d <= 0 {
		return UsageError{"usage: --since wants a duration such as 1h or 24h"}
	}
	// --since counts back from the end of the current step, so that the
	// last hour by the minute is sixty buckets, not sixty-one.
	end := time.Now().UTC()
	if size, ok := usageSteps[*step]; ok {
		if t := end.Truncate(size); t.Before(end) {
			end = t.Add(size)
		}
	}
	from := end.Add(-d).Format(time.RFC3339)
	a := x.get("/api/v1/usage" + query("application", *app, "api", *api, "from", from, "step", *step))
	if a.err != nil || x.json {
		return x.show(a)
	}
	type counts struct {
		Requests     int64   `json:"requests"`
		Errors       int64   `json:"errors"`
		Throttled    int64   `json:"throttled"`
		LatencyAvgMs float64 `json:"latencyAvgMs"`
	}
	var u struct {
		Buckets []struct {
			Start string `json:"start"`
			counts
		} `json:"buckets"`
		Totals counts `json:"totals"`
	}
	if err := json.Unmarshal(a.data, &u); err != nil {
		return x.printJSON(a.data)
	}
	tw := tabwriter.NewWriter(x.io.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "START\tREQUESTS\tERRORS\tTHROTTLED\tLATENCY_AVG_MS")
	row := func(start string, c counts) {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\n", start, c.Requests, c.Errors, c.Throttled, strconv.FormatFloat(c.LatencyAvgMs, 'f', -1, 64))
	}
	for _, b := range u.Buckets {
		row(b.Start, b.counts)
	}
	row("TOTAL", u.Totals)
	return tw.Flush()
}
