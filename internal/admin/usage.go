package admin

import (
	"fmt"
	"math"
	"net/http"
	"net/url"
	"time"

	"github.com/tollgate/tollgate/internal/analytics"
	"github.com/tollgate/tollgate/internal/store"
)

// usageSteps are the bucket sizes GET /usage offers.
var usageSteps = map[string]time.Duration{
	"1m": time.Minute, "5m": 5 * time.Minute, "15m": 15 * time.Minute, "1h": time.Hour, "1d": 24 * time.Hour,
}

// maxUsageBuckets bounds one answer: a day by the minute, or four years
// by the day.
const maxUsageBuckets = 1440

// usageRequest is a GET /usage query, its range aligned to the step.
type usageRequest struct {
	application, api string
	from, to         time.Time
	step             time.Duration
	stepName         string
}

// parseUsageQuery reads a usage query: from and to in RFC 3339, by
// default the hour up to now; step 1m by default. from is moved back and
// to forward to whole steps (since the Unix epoch, so days are UTC days),
// so that every bucket is a whole one.
func parseUsageQuery(q url.Values, now time.Time) (usageRequest, error) {
	r := usageRequest{application: q.Get("application"), api: q.Get("api"), stepName: q.Get("step")}
	if r.stepName == "" {
		r.stepName = "1m"
	}
	var ok bool
	if r.step, ok = usageSteps[r.stepName]; !ok {
		return r, invalid("step: want 1m, 5m, 15m, 1h or 1d", Detail{Path: "step", Message: "not a step: " + clipQuery(r.stepName)})
	}
	instant := func(name string, def time.Time) (time.Time, error) {
		v := q.Get(name)
		if v == "" {
			return def, nil
		}
		t, err := time.Parse(time.RFC3339, v)
		if err != nil || t.Before(time.Unix(0, 0)) {
			return t, invalid(name+": want an RFC 3339 time such as 2026-12-01T10:00:00Z, from 1970",
				Detail{Path: name, Message: "not a time: " + clipQuery(v)})
		}
		return t, nil
	}
	step := int64(r.step / time.Second)
	to, err := instant("to", now)
	if err != nil {
		return r, err
	}
	end := to.Unix() - to.Unix()%step
	if end < to.Unix() || to.Nanosecond() > 0 {
		end += step
	}
	// By default the hour (or the step, if longer) up to the end of to's
	// step.
	from, err := instant("from", time.Unix(end, 0).Add(-max(time.Hour, r.step)))
	if err != nil {
		return r, err
	}
	if !to.After(from) {
		return r, invalid("to must be after from", Detail{Path: "to", Message: "not after from"})
	}
	start := from.Unix() - from.Unix()%step
	if n := (end - start) / step; n > maxUsageBuckets {
		return r, invalid(fmt.Sprintf("from to to is %d buckets of %s: at most %d; take a larger step or a shorter range", n, r.stepName, maxUsageBuckets),
			Detail{Path: "step", Message: "too many buckets"})
	}
	r.from, r.to = time.Unix(start, 0).UTC(), time.Unix(end, 0).UTC()
	return r, nil
}

// clipQuery cuts a query value for an error message.
func clipQuery(v string) string {
	if len(v) > 64 {
		return v[:64] + "…"
	}
	return v
}

// usageCounts are the numbers of a bucket, or of the whole range.
type usageCounts struct {
	Requests  int64 `json:"requests"`
	Errors    int64 `json:"errors"`    // 4xx and 5xx
	Throttled int64 `json:"throttled"` // 429 of the rate limiter
	// LatencyAvgMs is the mean over all the requests; 0 when none.
	LatencyAvgMs float64 `json:"latencyAvgMs"`
	latencyUS    int64
}

func (c *usageCounts) add(class string, requests, latencyUS int64) {
	c.Requests += requests
	c.latencyUS += latencyUS
	switch class {
	case analytics.Class4xx, analytics.Class5xx:
		c.Errors += requests
	case analytics.ClassThrottled:
		c.Throttled += requests
	}
}

func (c *usageCounts) average() {
	if c.Requests > 0 {
		c.LatencyAvgMs = math.Round(float64(c.latencyUS)/float64(c.Requests)) / 1000
	}
}

type usageBucket struct {
	Start string `json:"start"`
	usageCounts
}

// usageAnswer is GET /usage's answer: every bucket of [from, to), those
// without requests too.
type usageAnswer struct {
	From        string        `json:"from"`
	To          string        `json:"to"`
	Step        string        `json:"step"`
	Application string        `json:"application"` // "": every application
	API         string        `json:"api"`         // "": every API
	Buckets     []usageBucket `json:"buckets"`
	Totals      usageCounts   `json:"totals"`
}

// getUsage answers the usage replicas reported. A developer names one of
// their own applications (another's is 404, as everywhere); publishers
// and admins may leave out either filter.
func (s *Server) getUsage(w http.ResponseWriter, c *call) error {
	q, err := parseUsageQuery(c.r.URL.Query(), s.now())
	if err != nil {
		return err
	}
	if c.caller.developer() {
		if q.application == "" {
			return invalid("application: required; name one of your applications", Detail{Path: "application", Message: "required"})
		}
		if _, err := ownedApp(c, s.storeGet(c), q.application); err != nil {
			return err
		}
	}
	rows, err := s.st.Usage(c.r.Context(), store.UsageQuery{Application: q.application, API: q.api, From: q.from, To: q.to, Step: q.step})
	if err != nil {
		return err
	}
	out := usageAnswer{From: q.from.Format(time.RFC3339), To: q.to.Format(time.RFC3339), Step: q.stepName,
		Application: q.application, API: q.api}
	n := int(q.to.Sub(q.from) / q.step)
	out.Buckets = make([]usageBucket, n)
	for i := range out.Buckets {
		out.Buckets[i].Start = q.from.Add(time.Duration(i) * q.step).Format(time.RFC3339)
	}
	for _, r := range rows {
		i := int(r.Start.Sub(q.from) / q.step)
		if i < 0 || i >= n {
			continue
		}
		out.Buckets[i].add(r.Class, r.Requests, r.LatencySumUS)
		out.Totals.add(r.Class, r.Requests, r.LatencySumUS)
	}
	for i := range out.Buckets {
		out.Buckets[i].average()
	}
	out.Totals.average()
	writeJSON(w, http.StatusOK, out)
	return nil
}
