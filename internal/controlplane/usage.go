package controlplane

import (
	"context"
	"log/slog"
	"time"

	"github.com/tollgate/tollgate/internal/store"
	"github.com/tollgate/tollgate/internal/usage"
)

// storeUsage keeps replicas' usage reports in the store.
type storeUsage struct{ st *store.Store }

func (s storeUsage) AddUsage(ctx context.Context, rows []usage.Row) error {
	out := make([]store.UsageRow, len(rows))
	for i, r := range rows {
		// The receiver bounds the counts well within int64.
		out[i] = store.UsageRow{Minute: r.Minute, Application: r.Application, API: r.API, Class: r.Class,
			Requests: int64(r.Requests), LatencySumUS: int64(r.LatencySumUS)}
	}
	return s.st.AddUsage(ctx, out)
}

// purgeUsage deletes usage older than the retention at once and then
// every interval, until ctx is done. Several control planes on one
// database each purge; the deletes are the same.
func purgeUsage(ctx context.Context, st *store.Store, retention, every time.Duration, now func() time.Time, log *slog.Logger) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		n, err := st.PurgeUsage(ctx, now().Add(-retention))
		switch {
		case err != nil && ctx.Err() == nil:
			log.Warn("usage past its retention not purged; trying again later", "error", err.Error())
		case n > 0:
			log.Info("usage past its retention purged", "rows", n, "retention", retention.String())
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
